#!/usr/bin/env python3
"""listen() on a socket that is already listening changes its backlog.

Spec §5.1 ("If the socket is already Listen, only backlog changes") and
§5.2 step 2 (accept queue full when sk_ack_backlog > backlog: backlog + 1
children fit).  Kernel: __inet_listen_sk() (net/ipv4/af_inet.c: for a
TCP_LISTEN socket only WRITE_ONCE(sk->sk_max_ack_backlog, backlog)),
sk_acceptq_is_full() (sk_ack_backlog > sk_max_ack_backlog),
tcp_conn_request() / tcp_check_req() (ListenOverflows).

Setup: client and server namespaces joined by a TUN relay; clients connect
non-blocking and nobody calls accept().  The probe reads the listener's
accept-queue length and backlog with `ss -ltn` (Recv-Q / Send-Q) and the
server's ListenOverflows / ListenDrops.  Steps:
  1 listen(4); 8 clients                -> children queued?
  2 listen(10) again; wait 2.5 s (SYN and SYN-ACK retransmissions)
  3 5 more clients
  4 listen(2) again; 1 more client      -> nothing evicted?
  5 accept() everything; 4 more clients

Usage: sudo python3 tools/kernel-probes/relisten_backlog.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

SRV = "10.0.0.2"


def queue(s):
    line = s.exec("ss", "-ltnH", "sport", "= :80").split()
    return int(line[1]), int(line[2])


def main():
    P.out(P.header("relisten_backlog"))
    with P.Lab() as lab:
        c, s = lab.netns("rlc"), lab.netns("rls")
        fc, fs = P.tun_pair(lab, c, s)
        relay = P.Relay({fc: fs, fs: fc})
        relay.start()
        l = s.socket()
        l.bind((SRV, 80))
        l.listen(4)
        clients = []
        c0 = s.counters()
        names = ["TcpExtListenOverflows", "TcpExtListenDrops"]

        def connect(n):
            for _ in range(n):
                k = c.socket()
                k.setblocking(False)
                k.connect_ex((SRV, 80))
                clients.append(k)
                time.sleep(0.01)

        def show(step):
            rq, sq = queue(s)
            reqs = sum(1 for r in P.proc_tcp(s) if r["state"] == "SYN_RECV")
            P.out(f"{step}\n    accept queue (Recv-Q) {rq}, backlog (Send-Q) {sq}, requests in SYN queue {reqs}, "
                  f"counters {P.counter_delta(c0, s.counters(), names)}")

        connect(8)
        time.sleep(0.5)
        show("1 listen(4), 8 clients connected, 0.5 s later:")
        l.listen(10)
        show("2 listen(10) called on the listening socket:")
        time.sleep(2.5)
        show("  ... 2.5 s later (clients' SYN / server's SYN-ACK retransmissions):")
        connect(5)
        time.sleep(0.5)
        show("3 5 more clients, 0.5 s later:")
        l.listen(2)
        show("4 listen(2) called:")
        connect(1)
        time.sleep(0.5)
        show("  1 more client, 0.5 s later:")
        l.setblocking(False)
        n = 0
        while True:
            try:
                a, _ = l.accept()
                a.close()
                n += 1
            except BlockingIOError:
                break
        show(f"5 accept()ed {n} children:")
        time.sleep(2.5)
        show("  ... 2.5 s later:")
        connect(4)
        time.sleep(0.5)
        show("  4 more clients, 0.5 s later:")
        relay.stop()


if __name__ == "__main__":
    main()
