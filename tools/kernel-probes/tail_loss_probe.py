#!/usr/bin/env python3
"""Tail loss probe and RTO schedule of a lost request (client) or a lost
response (server).

Spec §2.1 (`tcp_early_retrans`), §2.6 (data retransmission).  Kernel:
tcp_schedule_loss_probe() (PTO = 2*srtt + TCP_RTO_MIN with one packet out,
TCP_TIMEOUT_INIT with no RTT sample, never later than the RTO),
tcp_send_loss_probe(), tcp_retransmit_timer() (RTO doubling),
tcp_rtt_estimator()/tcp_set_rto() (first RTO = rtt + max(2*rtt, 200 ms)).

Setup per case: client and server namespaces joined by a TUN relay with a
one-way delay of RTT/2.  A normal handshake (timestamps on), then
- side=client: the client sends a 100-byte request and the relay drops every
  client data segment for 8 s;
- side=server: the request passes, the server answers 100 bytes and the relay
  drops every server data segment for 8 s.
Printed: tcpi_rtt/tcpi_rto of the sender just after its send, and every
transmission of those 100 bytes (s after the first).

Usage: sudo python3 tools/kernel-probes/tail_loss_probe.py [--runs N]
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

WATCH_S = 8.0


def run_case(cs):
    lsock, c = cs["lsock"], cs["c"]
    k = c.socket()
    k.connect(("10.0.0.2", 80))
    srv, _ = lsock.accept()
    time.sleep(0.3)   # let delayed ACKs settle
    if cs["side"] == "client":
        k.send(b"q" * 100)
        cs["info"] = P.tcp_info(k)
    else:
        k.send(b"q" * 100)
        srv.recv(100)
        srv.send(b"r" * 100)
        cs["info"] = P.tcp_info(srv)
    time.sleep(WATCH_S)
    cs["info_end"] = P.tcp_info(k if cs["side"] == "client" else srv)
    k.close()
    srv.close()


def main():
    runs = 2
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    P.out(P.header("tail_loss_probe"))
    cases = []
    with P.Lab() as lab:
        links, by_fd = {}, {}
        i = 0
        for side in ("client", "server"):
            for rtt in (0, 20, 100):
                for er in (3, 0):
                    for r in range(runs):
                        c = lab.netns(f"t{i}c")
                        s = lab.netns(f"t{i}s")
                        i += 1
                        for ns in (c, s):
                            ns.sysctl("net.ipv4.tcp_early_retrans", er)
                        fc, fs = P.tun_pair(lab, c, s)
                        links[fc], links[fs] = fs, fc
                        lsock = s.socket()
                        lsock.bind(("10.0.0.2", 80))
                        lsock.listen(8)
                        cs = dict(side=side, rtt=rtt, er=er, c=c, s=s, fc=fc, fs=fs, lsock=lsock)
                        cases.append(cs)
                        by_fd[fc] = by_fd[fs] = cs

        def rule(fd, p, t):
            cs = by_fd[fd]
            lossy = cs["fc"] if cs["side"] == "client" else cs["fs"]
            if fd == lossy and p.plen > 0:
                return None
            return cs["rtt"] / 2000

        relay = P.Relay(links, rule)
        relay.start()
        time.sleep(0.2)
        threads = [threading.Thread(target=run_case, args=(cs,)) for cs in cases]
        for th in threads:
            th.start()
            time.sleep(0.013)
        for th in threads:
            th.join()
        relay.stop()
        for cs in cases:
            lossy = cs["fc"] if cs["side"] == "client" else cs["fs"]
            cs["tx"] = [t for (t, fd, p, v) in relay.log if fd == lossy and p.plen > 0]

    P.out("Times: s after the first transmission of the 100 bytes (all transmissions dropped).")
    P.out("'nominal' = PTO then RTO doubling, from tcpi_rto/tcpi_rtt (er=3), or RTO doubling (er=0).")
    groups = {}
    for cs in cases:
        groups.setdefault((cs["side"], cs["rtt"], cs["er"]), []).append(cs)
    summary = []
    for (side, rtt, er), cl in groups.items():
        P.out("")
        P.out(f"== sender={side} rtt={rtt} ms tcp_early_retrans={er}")
        firsts, seconds = [], []
        for cs in cl:
            tx = [(t - cs["tx"][0]) / 1e9 for t in cs["tx"]]
            inf = cs["info"]
            rto = inf["rto"] / 1e6
            srtt = inf["rtt"] / 1e6
            if er == 3:
                pto = min(2 * srtt + 0.2, rto)
                nom = [pto] + [pto + rto * (2 ** k - 1) for k in range(1, len(tx))]
            else:
                nom = [rto * (2 ** k - 1) for k in range(1, len(tx) + 1)]
            P.out(f"   run: tcpi_rtt {srtt * 1000:.1f} ms, tcpi_rto {rto * 1000:.0f} ms; "
                  f"transmissions at {', '.join(f'{x:.3f}' for x in tx)}")
            P.out(f"        nominal                                  {', '.join(f'{x:.3f}' for x in nom[:len(tx) - 1])}")
            if len(tx) > 1:
                firsts.append(tx[1])
            if len(tx) > 2:
                seconds.append(tx[2])
        summary.append(f"  sender={side:6s} rtt={rtt:3d} er={er}: first retransmission {P.mmm(firsts)} s, "
                       f"second {P.mmm(seconds)} s")
    P.out("")
    P.out("== summary")
    for s in summary:
        P.out(s)


if __name__ == "__main__":
    main()
