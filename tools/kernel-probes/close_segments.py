#!/usr/bin/env python3
"""Segments of a connection close: response + FIN coalescing, the closing
handshake's ACKs, and who ends in TIME_WAIT.

Kernel: tcp_close()/tcp_send_fin() (the FIN rides on the last queued data
segment when it is still unsent, else a bare FIN), tcp_fin() (a FIN in
ESTABLISHED -> CLOSE_WAIT, inet_csk_schedule_ack() +
inet_csk_enter_pingpong_mode(), so the ACK may be delayed and ride on our
own FIN), tcp_rcv_state_process() (FIN_WAIT1/2, LAST_ACK), tcp_time_wait().

Two namespaces (client 10.0.0.1, server 10.0.0.2) joined by TUN devices and
the probelib relay, which delays every packet 5 ms one way (RTT 10 ms) and
timestamps it when it leaves its sender (no veth/netem: the relay is the
delay line and the capture).  Namespaces are named probe-close-<pid>-c/s.
Each scenario runs 5 times, on its own server port:
  A  HTTP/1.0, server closes first: server recv 100, send 100, close();
     client recv() until b'', then close().
  B  as A, but the client close()s right after receiving the 100 bytes.
  C  keep-alive, client closes first: server sends 100 and stays in recv();
     client recv()s 100 and close()s; server close()s when recv() gives b''.
Printed per connection: time (ms, from the client's SYN, at the sender),
direction, flags, seq/ack relative to each side's ISN, payload length.
Then TIME_WAIT sockets per namespace (ss -tan state time-wait) and nstat
counter deltas per namespace.

Usage: sudo python3 tools/kernel-probes/close_segments.py
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

CLI, SRV = "10.0.0.1", "10.0.0.2"
DELAY = 0.005
REPS = 5
COUNTERS = ["TcpExtTW", "TcpExtDelayedACKs", "TcpExtTCPTimeWaitOverflow"]


class CloseNs(P.Netns):
    def __init__(self, tag):
        self.name = f"probe-close-{os.getpid()}-{tag}"
        P.sh("ip", "netns", "add", self.name)
        P.sh("ip", "-n", self.name, "link", "set", "lo", "up")


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            break
        b += d
    return b


def server_conn(a, scen, done):
    req = recv_exact(a, 100)
    assert len(req) == 100
    a.sendall(b"r" * 100)
    if scen in ("A", "B"):
        a.close()
    else:
        while a.recv(4096):
            pass
        a.close()
    done.set()


def run_one(c, l, scen, cport):
    done = threading.Event()
    k = c.socket()
    k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    k.bind((CLI, cport))
    k.connect((SRV, l.getsockname()[1]))
    a, _ = l.accept()
    th = threading.Thread(target=server_conn, args=(a, scen, done))
    th.start()
    k.sendall(b"q" * 100)
    if scen == "A":
        got = b""
        while True:
            d = k.recv(4096)
            if not d:
                break
            got += d
    else:
        got = recv_exact(k, 100)
    k.close()
    th.join(5)
    time.sleep(0.3)     # let the closing handshake finish (RTT 10 ms, delayed ACK <= 200 ms)
    return len(got)


def segments(relay, fc, cport):
    pk = [(t, fd, p) for (t, fd, p, v) in relay.log if p.proto == 6 and cport in (p.sport, p.dport)]
    if not pk:
        return [], []
    t0 = pk[0][0]
    isn = {}
    for t, fd, p in pk:
        if p.flags & 0x02:
            isn.setdefault("C" if fd == fc else "S", p.seq)
    rows, sig = [], []
    for t, fd, p in pk:
        d, o = ("C", "S") if fd == fc else ("S", "C")
        rseq = (p.seq - isn.get(d, p.seq)) % (1 << 32)
        rack = (p.ack - isn.get(o, 0)) % (1 << 32) if p.flags & 0x10 else None
        rows.append((t, d, p.fl, rseq, rack, p.plen, (t - t0) / 1e6))
        sig.append(f"{d}>{o}:{p.fl}" + (f"/{p.plen}" if p.plen else ""))
    return rows, sig


def tw(ns, port):
    lines = ns.exec("ss", "-tanH", "state", "time-wait").splitlines()
    return [ln for ln in lines if f":{port} " in ln + " "]


def scenario(c, s, relay, fc, scen, sport, cbase, title):
    P.out("")
    P.out(f"== {scen}: {title}")
    l = s.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((SRV, sport))
    l.listen(16)
    bc, bs = c.counters(), s.counters()
    sigs, fin_gaps, tws = [], [], []
    for r in range(REPS):
        cport = cbase + r
        n = run_one(c, l, scen, cport)
        rows, sig = segments(relay, fc, cport)
        sigs.append(sig)
        P.out(f"  rep {r + 1} (client port {cport}, client got {n} bytes):")
        for (t, d, fl, rseq, rack, plen, rel) in rows:
            arrow = "client > server" if d == "C" else "server > client"
            P.out(f"    {rel:8.2f} ms  {arrow}  [{fl:3}] seq={rseq}" +
                  (f" ack={rack}" if rack is not None else "") + f" len={plen}")
        cfin = [x for x in rows if x[1] == "C" and "F" in x[2]]
        sfin = [x for x in rows if x[1] == "S" and "F" in x[2]]
        if cfin and sfin:
            gap = (sfin[0][0] - cfin[0][0]) / 1e6
            fin_gaps.append(gap)
            P.out(f"    server FIN - client FIN (sender times): {gap:+.2f} ms")
        tws.append((tw(c, sport), tw(s, sport)))
    # TIME_WAIT per namespace (sockets of this scenario's server port)
    ctw, stw = tw(c, sport), tw(s, sport)
    ac, as_ = c.counters(), s.counters()
    l.close()
    agree = all(x == sigs[0] for x in sigs)
    P.out(f"  segment pattern (dir:flags/len): {' '.join(sigs[0])}")
    P.out(f"  all {REPS} repetitions agree on the pattern: {agree}")
    if not agree:
        for i, x in enumerate(sigs):
            P.out(f"    rep {i + 1}: {' '.join(x)}")
    if fin_gaps:
        P.out(f"  server FIN - client FIN: {P.mmm(fin_gaps, '{:+.2f}')} ms")
    P.out(f"  TIME_WAIT (ss -tan state time-wait, port {sport}) after all reps: "
          f"client ns {len(ctw)}, server ns {len(stw)}")
    for ln in ctw:
        P.out(f"    client: {' '.join(ln.split())}")
    for ln in stw:
        P.out(f"    server: {' '.join(ln.split())}")
    P.out(f"  nstat deltas client ns: {P.counter_delta(bc, ac, COUNTERS)}")
    P.out(f"  nstat deltas server ns: {P.counter_delta(bs, as_, COUNTERS)}")


def main():
    P.out(P.header("close_segments"))
    P.out(f"relay delay {DELAY * 1e3:.0f} ms each way (RTT {2 * DELAY * 1e3:.0f} ms); "
          "times are when the sender emitted the segment (it arrives 5 ms later)")
    with P.Lab() as lab:
        c, s = CloseNs("c"), CloseNs("s")
        lab.nss += [c, s]
        fc, fs = P.tun_pair(lab, c, s)
        relay = P.Relay({fc: fs, fs: fc}, lambda fd, p, t: DELAY)
        relay.start()
        try:
            P.out(f"client tcp_delack_min: {c.exec('sysctl', '-n', 'net.ipv4.tcp_delack_min', check=False).strip() or 'absent'}"
                  f"; tcp_fin_timeout {c.get_sysctl('net.ipv4.tcp_fin_timeout')}")
            scenario(c, s, relay, fc, "A", 8001, 41000,
                     "HTTP/1.0, server closes first; client reads to EOF then closes")
            scenario(c, s, relay, fc, "B", 8002, 42000,
                     "server closes first; client closes right after the 100 response bytes (no wait for EOF)")
            scenario(c, s, relay, fc, "C", 8003, 43000,
                     "keep-alive, client closes first; server closes when recv() returns b''")
        finally:
            relay.stop()


if __name__ == "__main__":
    main()
