#!/usr/bin/env python3
"""TIME_WAIT: who gets it, how long it lasts, what a new SYN on it gets,
the tcp_max_tw_buckets limit, and tcp_tw_reuse / ephemeral-port choice.

Spec: not covered (§5.2 only says "If it [a SYN] matches a TIME_WAIT socket,
steps 1 and 3 are skipped").  Kernel: tcp_time_wait() (TCP_TIMEWAIT_LEN,
inet_twsk_alloc() refusing beyond tcp_max_tw_buckets ->
TCPTimeWaitOverflow), tcp_timewait_state_process() (a SYN with seq after
rcv_nxt or a newer timestamp -> TCP_TW_SYN, the listener gets it with
ISN = tw_snd_nxt + 65537; else an ACK, rate limited; PAWS reject), 
tcp_twsk_unique() (tcp_tw_reuse), __inet_hash_connect() (ephemeral ports).

Parts (each in its own namespace pair, client 10.0.0.1, server 10.0.0.2:80):
  A  lifetime: one connection closed server-first, one client-first; who
     holds TIME_WAIT and for how long (polled every 100 ms in /proc/net/tcp),
     compared with the timer-wheel bucket of jiffies + 60 s.
  B  a SYN for the 4-tuple of a server TIME_WAIT socket: the real client
     reconnecting from the same port, and crafted SYNs injected into the
     server's TUN (old/new sequence number, old/new timestamp, none).
  C  tcp_max_tw_buckets=4 on the server, 8 connections closed server-first.
  D  client ip_local_port_range 40000-40001: connects after client-first
     closes, with tcp_tw_reuse 2 (default), 0 and 1.

Usage: sudo python3 tools/kernel-probes/time_wait.py [--skip-lifetime]
"""
import errno
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

CLI, SRV = "10.0.0.1", "10.0.0.2"


def tw_rows(ns, port=None):
    return [r for r in P.proc_tcp(ns) if r["state"] == "TIME_WAIT"
            and (port is None or r["local"].endswith(f":{port}") or r["remote"].endswith(f":{port}"))]


def connection(c, s_l, cport, server_first, payload=b"hello"):
    """Open, exchange, close in the given order; returns nothing."""
    k = c.socket()
    k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if cport:
        k.bind((CLI, cport))
    k.connect((SRV, 80))
    a, _ = s_l.accept()
    k.sendall(payload)
    a.recv(100)
    a.sendall(b"world")
    k.recv(100)
    first, second = (a, k) if server_first else (k, a)
    first.close()
    time.sleep(0.05)
    second.close()
    time.sleep(0.05)
    return k


def part_a(lab, jc, out):
    c, s = lab.netns("twAc"), lab.netns("twAs")
    fc, fs = P.tun_pair(lab, c, s)
    relay = P.Relay({fc: fs, fs: fc})
    relay.start()
    l = s.socket()
    l.bind((SRV, 80))
    l.listen(16)
    t_close = {}
    for port, sf in ((41001, True), (41002, False)):
        t_close[port] = time.monotonic_ns()
        connection(c, l, port, sf)
    seen = {}
    deadline = time.monotonic() + 70
    while time.monotonic() < deadline:
        now = time.monotonic_ns()
        for port in (41001, 41002):
            for side, ns in (("server", s), ("client", c)):
                if tw_rows(ns, port):
                    seen.setdefault((port, side), [now, now])[1] = now
        if seen and all(now - v[1] > 300_000_000 for v in seen.values()) and now - min(
                v[0] for v in seen.values()) > 55e9:
            break
        time.sleep(0.1)
    relay.stop()
    lines = []
    for port, sf in ((41001, True), (41002, False)):
        # TIME_WAIT starts when the last FIN is received by the side that closed first
        fin_pkts = [(t, fd, p) for (t, fd, p, v) in relay.log if p.flags & 0x01 and port in (p.sport, p.dport)]
        last_fin_t = fin_pkts[-1][0] if fin_pkts else None
        for (pp, side), (a, b) in sorted(seen.items()):
            if pp != port:
                continue
            life_lo = (b - last_fin_t) / 1e9
            pred, bucket = P.predict_fire(jc, last_fin_t, 60 * jc.hz, False)
            lines.append(f"  {'server' if sf else 'client'} closed first (port {port}): TIME_WAIT on the "
                         f"{side}; last seen {life_lo:.2f} s after the peer's FIN, gone by {life_lo + 0.1:.2f} s; "
                         f"wheel model (jiffies + 60 s, level {P.wheel_level(60 * jc.hz)}) fires at "
                         f"{(pred - last_fin_t) / 1e9:.3f} s")
        others = [side for (pp, side) in seen if pp == port]
        if len(others) == 1:
            lines.append(f"    (no TIME_WAIT on the {'client' if others[0] == 'server' else 'server'})")
    out["A"] = lines


def part_b(lab, out):
    c, s = lab.netns("twBc"), lab.netns("twBs")
    fc, fs = P.tun_pair(lab, c, s)
    inj_ports = {42002, 42003, 42004, 42005}

    def rule(fd, p, t):
        if fd == fs and p.dport in inj_ports and t > state.get("inject_t", 1 << 62):
            return None     # replies to injected SYNs: keep them from the client kernel
        return 0
    state = {}
    relay = P.Relay({fc: fs, fs: fc}, rule)
    relay.start()
    l = s.socket()
    l.bind((SRV, 80))
    l.listen(16)
    l.settimeout(2)
    ports = [42001, 42002, 42003, 42004, 42005]
    for port in ports:
        connection(c, l, port, True)
    time.sleep(0.3)
    info = {}
    for port in ports:
        pk = [p for (t, fd, p, v) in relay.log if port in (p.sport, p.dport)]
        cfin = [p for p in pk if p.sport == port and p.flags & 0x01][-1]
        sfin = [p for p in pk if p.dport == port and p.flags & 0x01][-1]
        info[port] = dict(rcv_nxt=cfin.seq + cfin.plen + 1, snd_nxt=sfin.seq + 1,
                          ts_recent=cfin.tsval, isn=[p for p in pk if p.is_syn()][0].seq)
    before = s.counters()
    tw_before = {p: bool(tw_rows(s, p)) for p in ports}
    lines = [f"  server TIME_WAIT present before the new SYNs: {tw_before}"]
    # B1: the real client reconnects from the same port
    t1 = time.monotonic_ns()
    k = c.socket()
    k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    k.bind((CLI, 42001))
    try:
        k.connect((SRV, 80))
        res = f"connect() succeeded in {(time.monotonic_ns() - t1) / 1e6:.1f} ms"
        a, _ = l.accept()
        a.close()
    except OSError as e:
        res = f"connect() failed: {e}"
    k.close()
    i1 = info[42001]
    syns = [p for (t, fd, p, v) in relay.log if t >= t1 and 42001 in (p.sport, p.dport) and p.flags & 0x02]
    synack = [p for p in syns if p.is_synack()]
    new_syn = [p for p in syns if p.is_syn()]
    lines.append(f"  B1 real client, same port, new SYN seq - old rcv_nxt = "
                 f"{(new_syn[0].seq - i1['rcv_nxt']) % (1 << 32) if new_syn else '?'} (after), TSval newer by "
                 f"{(new_syn[0].tsval - i1['ts_recent']) if new_syn and new_syn[0].tsval else '?'}: {res}; "
                 f"SYN-ACK ISN - (tw_snd_nxt + 65537) = "
                 f"{(synack[0].seq - (i1['snd_nxt'] + 65537)) % (1 << 32) if synack else 'no SYN-ACK'}")
    # B2..B5: crafted SYNs
    variants = {
        42002: ("seq before rcv_nxt, no timestamp", -100000, None),
        42003: ("seq after rcv_nxt, no timestamp", +100000, None),
        42004: ("seq after rcv_nxt, timestamp OLDER than ts_recent", +100000, -1000),
        42005: ("seq before rcv_nxt, timestamp NEWER than ts_recent", -100000, +1000),
    }
    state["inject_t"] = time.monotonic_ns()
    for port, (desc, dseq, dts) in variants.items():
        i = info[port]
        opts = P.opt_mss()
        if dts is not None:
            opts += P.opt_ts(i["ts_recent"] + dts, 0)
        pkt = P.build_tcp(CLI, SRV, port, 80, i["rcv_nxt"] + dseq, 0, "S", options=opts)
        os.write(fs, pkt)
        time.sleep(0.05)
    time.sleep(0.3)
    after = s.counters()
    for port, (desc, dseq, dts) in variants.items():
        i = info[port]
        rep = [p for (t, fd, p, v) in relay.log if t >= state["inject_t"] and fd == fs and p.dport == port]
        what = []
        for p in rep:
            if p.is_synack():
                what.append(f"SYN-ACK (ISN - (tw_snd_nxt + 65537) = {(p.seq - (i['snd_nxt'] + 65537)) % (1 << 32)})")
            elif p.is_rst():
                what.append("RST")
            else:
                what.append(f"[{p.fl}] seq-tw_snd_nxt={(p.seq - i['snd_nxt']) % (1 << 32)} "
                            f"ack-rcv_nxt={(p.ack - i['rcv_nxt']) % (1 << 32)}")
        lines.append(f"  {'B' + str(port - 42000)} crafted SYN, {desc}: server replies {what or 'nothing'}; "
                     f"TIME_WAIT still there: {bool(tw_rows(s, port))}; "
                     f"request (SYN_RECV) created: {any(r['state'] == 'SYN_RECV' and r['remote'].endswith(f':{port}') for r in P.proc_tcp(s))}")
    lines.append("  server TCP counter deltas over B: " + str({k: v for k, v in P.counter_delta(before, after).items()
                                                          if k.startswith("Tcp")}))
    relay.stop()
    out["B"] = lines


def part_c(lab, out):
    c, s = lab.netns("twCc"), lab.netns("twCs")
    s.sysctl("net.ipv4.tcp_max_tw_buckets", 4)
    fc, fs = P.tun_pair(lab, c, s)
    relay = P.Relay({fc: fs, fs: fc})
    relay.start()
    l = s.socket()
    l.bind((SRV, 80))
    l.listen(16)
    before = s.counters()
    for i in range(8):
        connection(c, l, 43001 + i, True)
    time.sleep(0.3)
    rows = tw_rows(s)
    after = s.counters()
    cli_rst = [f"{'server' if fd == fs else 'client'}->{'client' if fd == fs else 'server'} "
               f"port {p.dport if fd == fs else p.sport}" for (t, fd, p, v) in relay.log if p.is_rst()]
    fw2 = []
    for i in range(8):
        port = 43001 + i
        seq = [f"{'S' if fd == fs else 'C'}:{p.fl}" for (t, fd, p, v) in relay.log
               if port in (p.sport, p.dport) and (p.flags & 0x05)]
        fw2.append(f"{port}: {' '.join(seq)}")
    relay.stop()
    out["C"] = [f"  8 connections closed server-first with tcp_max_tw_buckets=4: server TIME_WAIT sockets "
                f"{len(rows)} (ports {sorted(int(r['remote'].split(':')[1]) for r in rows)}); "
                f"TcpExtTCPTimeWaitOverflow +{after.get('TcpExtTCPTimeWaitOverflow', 0) - before.get('TcpExtTCPTimeWaitOverflow', 0)}; "
                f"RSTs on the wire: {cli_rst}; client TIME_WAIT: {len(tw_rows(c))}",
                "  FIN/RST per connection (S = from server, C = from client): " + "; ".join(fw2)]


def try_connect(c, bind_port=None):
    k = c.socket()
    if bind_port:
        k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            k.bind((CLI, bind_port))
        except OSError as e:
            k.close()
            return None, f"bind({bind_port}) failed: {errno.errorcode.get(e.errno, e.errno)}"
    try:
        k.connect((SRV, 80))
        return k, f"connected from port {k.getsockname()[1]}"
    except OSError as e:
        k.close()
        return None, f"connect() failed: {errno.errorcode.get(e.errno, e.errno)}"


def part_d(lab, out):
    c, s = lab.netns("twDc"), lab.netns("twDs")
    c.sysctl("net.ipv4.ip_local_port_range", "40000 40001")
    fc, fs = P.tun_pair(lab, c, s)
    relay = P.Relay({fc: fs, fs: fc})
    relay.start()
    l = s.socket()
    l.bind((SRV, 80))
    l.listen(16)
    lines = [f"  client sysctls: tcp_tw_reuse={c.get_sysctl('net.ipv4.tcp_tw_reuse')} (default), "
             f"tcp_tw_reuse_delay={c.exec('sysctl', '-n', 'net.ipv4.tcp_tw_reuse_delay', check=False).strip() or 'absent'}"]
    used = []
    for i in range(2):
        k, r = try_connect(c)
        lines.append(f"  connect #{i + 1}: {r}")
        if k:
            used.append(k.getsockname()[1])
            a, _ = l.accept()
            k.close()           # client closes first -> client TIME_WAIT
            time.sleep(0.05)
            a.close()
            time.sleep(0.05)
    t_tw = time.monotonic()
    lines.append(f"  client TIME_WAIT on ports {sorted(int(r['local'].split(':')[1]) for r in tw_rows(c))}")
    before = c.counters()
    for reuse in ("2", "0"):
        c.sysctl("net.ipv4.tcp_tw_reuse", reuse)
        k, r = try_connect(c)
        lines.append(f"  tcp_tw_reuse={reuse}: connect #3 at +{time.monotonic() - t_tw:.2f} s: {r}")
        if k:
            k.close()
    k, r = try_connect(c, bind_port=used[0] if used else 40000)
    lines.append(f"  tcp_tw_reuse=0: bind() to the TIME_WAIT port with SO_REUSEADDR, then connect(): {r}")
    c.sysctl("net.ipv4.tcp_tw_reuse", "1")
    k, r = try_connect(c)
    lines.append(f"  tcp_tw_reuse=1: connect at +{time.monotonic() - t_tw:.2f} s: {r}")
    if k:
        k.close()
    time.sleep(max(0, 1.3 - (time.monotonic() - t_tw)))
    k, r = try_connect(c)
    lines.append(f"  tcp_tw_reuse=1: connect at +{time.monotonic() - t_tw:.2f} s: {r}")
    if k:
        a, _ = l.accept()
        syn = [p for (t, fd, p, v) in relay.log if fd == fc and p.is_syn()][-1]
        lines.append(f"    (the reused connection's SYN: seq {syn.seq}, TSval {syn.tsval})")
        k.close()
        a.close()
    after = c.counters()
    lines.append(f"  client counter deltas: {P.counter_delta(before, after, ['TcpExtTWRecycled', 'TcpExtTWKilled', 'TcpActiveOpens'])}")
    relay.stop()
    out["D"] = lines


def main():
    P.out(P.header("time_wait"))
    out = {}
    with P.Lab() as lab:
        jc = P.JiffyClock()
        th = None
        if "--skip-lifetime" not in sys.argv:
            th = threading.Thread(target=part_a, args=(lab, jc, out))
            th.start()
        part_b(lab, out)
        part_c(lab, out)
        part_d(lab, out)
        if th:
            th.join()
    for k, title in (("A", "A: TIME_WAIT holder and lifetime"),
                     ("B", "B: SYN for the 4-tuple of a server TIME_WAIT socket"),
                     ("C", "C: tcp_max_tw_buckets"),
                     ("D", "D: client ephemeral ports and tcp_tw_reuse")):
        if k in out:
            P.out("")
            P.out("== " + title)
            for line in out[k]:
                P.out(line)


if __name__ == "__main__":
    main()
