#!/usr/bin/env python3
"""SYN-queue admission with syncookies off: the "proven peer" exception.

Spec §5.2 step 3: with tcp_syncookies=0, a SYN is dropped when
`tcp_max_syn_backlog - syn_qlen < tcp_max_syn_backlog / 4` unless the peer
is "proven".  Kernel: tcp_conn_request() (net/ipv4/tcp_input.c):

    else if (!syncookies && (max_syn_backlog - inet_csk_reqsk_queue_len(sk) <
             (max_syn_backlog >> 2)) && !tcp_peer_is_proven(req, dst)) {
            pr_drop_req(...); goto drop_and_release;      /* ListenDrops */
    }

tcp_peer_is_proven() (tcp_metrics.c): the listener's namespace has a TCP
metrics entry for the peer's address with a non-zero RTT.  Such an entry is
written by tcp_update_metrics() when an earlier connection with that peer
closed (LAST_ACK or TIME_WAIT).

Setup: server tcp_syncookies=0, tcp_max_syn_backlog=16 (drop when
qlen >= 13), listen backlog 128.  The SYN queue is filled with SYNs injected
into the server's TUN from spoofed unproven sources 10.0.1.x (the relay drops
the server's SYN-ACKs to them, so they stay in the queue).  Then
  - a crafted SYN from another unproven source (10.0.2.1),
  - a real connect() from the client 10.0.0.1.
Run twice: 'proven' (the client first completed and closed a connection, so
the server has a metrics entry for 10.0.0.1) and 'control' (no earlier
connection).

Usage: sudo python3 tools/kernel-probes/proven_peer.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

CLI, SRV = "10.0.0.1", "10.0.0.2"


def run(lab, tag, prove):
    c, s = lab.netns(f"pp{tag}c"), lab.netns(f"pp{tag}s")
    s.sysctl("net.ipv4.tcp_syncookies", 0)
    s.sysctl("net.ipv4.tcp_max_syn_backlog", 16)
    fc, fs = P.tun_pair(lab, c, s)
    s.ip("route", "add", "10.0.0.0/8", "dev", "ptun0")

    def rule(fd, p, t):
        if fd == fs and p.dst != CLI:
            return None     # SYN-ACKs to spoofed sources vanish
        return 0
    relay = P.Relay({fc: fs, fs: fc}, rule)
    relay.start()
    l = s.socket()
    l.bind((SRV, 80))
    l.listen(128)
    lines = []
    if prove:
        k = c.socket()
        k.connect((SRV, 80))
        a, _ = l.accept()
        k.sendall(b"hi")
        a.recv(10)
        a.sendall(b"ho")
        k.recv(10)
        k.close()
        time.sleep(0.05)
        a.close()
        time.sleep(0.2)
    lines.append("server tcp_metrics: " + (s.exec("ip", "tcp_metrics", "show", check=False).strip().replace("\n", " | ")
                                            or "(empty)"))
    before = s.counters()
    accepted = 0
    for i in range(20):
        src = f"10.0.1.{i + 1}"
        pkt = P.build_tcp(src, SRV, 30000 + i, 80, 1000 * (i + 1), 0, "S", options=P.opt_mss())
        os.write(fs, pkt)
        time.sleep(0.01)
        q = sum(1 for r in P.proc_tcp(s) if r["state"] == "SYN_RECV")
        accepted = q
    lines.append(f"20 spoofed SYNs from 10.0.1.1-20: SYN queue length now {accepted}")
    t = time.monotonic_ns()
    os.write(fs, P.build_tcp("10.0.2.1", SRV, 31000, 80, 555, 0, "S", options=P.opt_mss()))
    time.sleep(0.05)
    sa = [p for (tt, fd, p, v) in relay.log if tt > t and fd == fs and p.dst == "10.0.2.1"]
    lines.append(f"SYN from unproven 10.0.2.1: {'SYN-ACK' if sa else 'no answer (dropped)'}")
    k = c.socket()
    k.settimeout(0.5)
    t = time.monotonic_ns()
    try:
        k.connect((SRV, 80))
        res = f"connected in {(time.monotonic_ns() - t) / 1e6:.1f} ms"
    except OSError as e:
        res = f"not connected within 0.5 s ({e})"
    syns = [p for (tt, fd, p, v) in relay.log if tt > t and fd == fc and p.is_syn()]
    sas = [p for (tt, fd, p, v) in relay.log if tt > t and fd == fs and p.dst == CLI and p.is_synack()]
    lines.append(f"real connect() from {CLI}: {res} ({len(syns)} SYN, {len(sas)} SYN-ACK)")
    after = s.counters()
    lines.append("server counter deltas: " + str(P.counter_delta(
        before, after, ["TcpExtListenDrops", "TcpExtListenOverflows", "TcpExtTCPReqQFullDrop",
                        "TcpExtTCPReqQFullDoCookies", "TcpPassiveOpens"])))
    relay.stop()
    return lines


def main():
    P.out(P.header("proven_peer"))
    with P.Lab() as lab:
        for tag, prove in (("proven", True), ("control", False)):
            lines = run(lab, tag, prove)
            P.out("")
            P.out(f"== {tag}: {'client completed and closed one connection first' if prove else 'no earlier connection'}")
            for line in lines:
                P.out("   " + line)


if __name__ == "__main__":
    main()
