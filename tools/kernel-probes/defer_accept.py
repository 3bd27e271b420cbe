#!/usr/bin/env python3
"""TCP_DEFER_ACCEPT: what happens to a request whose final ACK carries no data.

Spec §5.3 ("an acked request is kept until the defer period ends and
SYN-ACKs are not resent meanwhile", syn_ack_recalc) and §2.4 (`acked`).
Kernel: do_tcp_setsockopt(TCP_DEFER_ACCEPT) -> secs_to_retrans() (seconds ->
number of SYN-ACK timeouts), tcp_check_req() (a bare ACK while
req->num_timeout < rskq_defer_accept sets acked=1, counts
TCPDeferAcceptDrop and is dropped), reqsk_timer_handler() ->
syn_ack_recalc() (expire = num_timeout >= max_retries && (!acked ||
num_timeout >= defer); resend = !acked || num_timeout >= defer - 1).

Setup: client and server namespaces joined by a logging TUN relay.  Cases:
  data     TCP_DEFER_ACCEPT=5; client sends 10 bytes 0.5 s after connect()
  nodata5  TCP_DEFER_ACCEPT=5; client never sends
  nodata30 TCP_DEFER_ACCEPT=30; client never sends
  lostack  TCP_DEFER_ACCEPT=5, tcp_synack_retries=3; the relay passes the
           client's first pure ACK and drops all later ones; the client sends
           10 bytes at 17 s
Printed: SYN-ACK times, client ACK times (and drops), when accept() returns
(and what it reads), the request in /proc/net/tcp, counters, and what the
client sees.

Usage: sudo python3 tools/kernel-probes/defer_accept.py
"""
import os
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

CASES = {
    "data": dict(defer=5, retries=5, send_at=0.5, watch=4, drop_later_acks=False),
    "nodata5": dict(defer=5, retries=5, send_at=None, watch=12, drop_later_acks=False),
    "nodata30": dict(defer=30, retries=5, send_at=None, watch=36, drop_later_acks=False),
    "lostack": dict(defer=5, retries=3, send_at=17.0, watch=19, drop_later_acks=True),
}
COUNTERS = ["TcpExtTCPDeferAcceptDrop", "TcpExtTCPTimeouts", "TcpRetransSegs", "TcpOutRsts",
            "TcpExtEmbryonicRsts"]


def run(cs):
    s, c = cs["s"], cs["c"]
    cfg = cs["cfg"]
    l = cs["lsock"]
    k = c.socket()
    cs["t0"] = time.monotonic_ns()
    k.connect(("10.0.0.2", 80))
    t_end = time.monotonic() + cfg["watch"]
    sent = False
    poll_t = 0
    while time.monotonic() < t_end:
        now = (time.monotonic_ns() - cs["t0"]) / 1e9
        if cfg["send_at"] is not None and not sent and now >= cfg["send_at"]:
            try:
                k.send(b"0123456789")
                cs["client_send"] = f"sent 10 bytes at {now:.3f} s"
            except OSError as e:
                cs["client_send"] = f"send at {now:.3f} s failed: {e}"
            sent = True
        r, _, _ = select.select([l, k], [], [], 0.01)
        if l in r and "accept_at" not in cs:
            child, _ = l.accept()
            cs["accept_at"] = (time.monotonic_ns() - cs["t0"]) / 1e9
            child.setblocking(False)
            time.sleep(0.05)
            try:
                cs["accept_read"] = child.recv(100)
            except BlockingIOError:
                cs["accept_read"] = "nothing (EAGAIN)"
            cs["child"] = child
        if k in r and "client_event" not in cs:
            try:
                d = k.recv(100)
                cs["client_event"] = f"recv -> {d!r} at {now:.3f} s"
            except OSError as e:
                cs["client_event"] = f"recv -> {type(e).__name__} at {now:.3f} s"
        if time.monotonic() >= poll_t:
            rows = [r_ for r_ in P.proc_tcp(s) if r_["state"] == "SYN_RECV"]
            if rows:
                cs["req_last_seen"] = (now, rows[0]["retrnsmt"])
            elif "req_last_seen" in cs and "req_gone" not in cs:
                cs["req_gone"] = now
            poll_t = time.monotonic() + 0.05
    k.close()


def fmt(x):
    return "never" if x is None else f"{x:.3f} s"


def main():
    P.out(P.header("defer_accept"))
    cases = []
    with P.Lab() as lab:
        links, by_fd = {}, {}
        for i, (name, cfg) in enumerate(CASES.items()):
            c = lab.netns(f"da{i}c")
            s = lab.netns(f"da{i}s")
            s.sysctl("net.ipv4.tcp_synack_retries", cfg["retries"])
            fc, fs = P.tun_pair(lab, c, s)
            links[fc], links[fs] = fs, fc
            lsock = s.socket()
            lsock.bind(("10.0.0.2", 80))
            lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, cfg["defer"])
            got = lsock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)
            lsock.listen(8)
            lsock.setblocking(False)
            cs = dict(name=name, cfg=cfg, c=c, s=s, fc=fc, fs=fs, lsock=lsock, got=got, acks=0)
            cases.append(cs)
            by_fd[fc] = by_fd[fs] = cs

        def rule(fd, p, t):
            cs = by_fd[fd]
            if fd == cs["fc"] and p.is_pure_ack():
                cs["acks"] += 1
                if cs["cfg"]["drop_later_acks"] and cs["acks"] > 1:
                    return None
            return 0

        relay = P.Relay(links, rule)
        relay.start()
        time.sleep(0.2)
        before = {cs["name"]: cs["s"].counters() for cs in cases}
        ths = [threading.Thread(target=run, args=(cs,)) for cs in cases]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        relay.stop()
        for cs in cases:
            cs["counters"] = P.counter_delta(before[cs["name"]], cs["s"].counters(), COUNTERS)
            t0 = cs["t0"]
            cs["synacks"] = [(t - t0) / 1e9 for (t, fd, p, v) in relay.log if fd == cs["fs"] and p.is_synack()]
            cs["cacks"] = [((t - t0) / 1e9, v is None) for (t, fd, p, v) in relay.log
                           if fd == cs["fc"] and p.is_pure_ack()]
            cs["srst"] = [(t - t0) / 1e9 for (t, fd, p, v) in relay.log if fd == cs["fs"] and p.is_rst()]

    summary = []
    for cs in cases:
        cfg = cs["cfg"]
        P.out("")
        P.out(f"== {cs['name']}: TCP_DEFER_ACCEPT={cfg['defer']} (getsockopt returns {cs['got']}), "
              f"tcp_synack_retries={cfg['retries']}, client sends at {cfg['send_at']}")
        P.out(f"   SYN-ACKs at {', '.join(f'{x:.3f}' for x in cs['synacks'])} s")
        P.out("   client pure ACKs at " + ", ".join(f"{t:.3f}{' (dropped)' if d else ''}" for t, d in cs["cacks"]))
        P.out(f"   accept() returned at {fmt(cs.get('accept_at'))}"
              + (f", first read: {cs['accept_read']!r}" if "accept_read" in cs else ""))
        if "req_last_seen" in cs:
            P.out(f"   request (SYN_RECV) last seen at {cs['req_last_seen'][0]:.2f} s with num_timeout "
                  f"{cs['req_last_seen'][1]}; gone at {fmt(cs.get('req_gone'))}")
        P.out(f"   client: {cs.get('client_send', 'sent nothing')}; {cs.get('client_event', 'no event')}")
        P.out(f"   server RSTs at {[fmt(x) for x in cs['srst']]}; counters {cs['counters']}")
        summary.append(f"  {cs['name']}: defer {cfg['defer']}s->{cs['got']}s; SYN-ACKs "
                       f"{[round(x, 2) for x in cs['synacks']]}; accept at {fmt(cs.get('accept_at'))}; "
                       f"client {cs.get('client_event', 'no event')}; "
                       f"TCPDeferAcceptDrop {cs['counters'].get('TcpExtTCPDeferAcceptDrop')}")
    P.out("")
    P.out("== summary")
    for s in summary:
        P.out(s)


if __name__ == "__main__":
    main()
