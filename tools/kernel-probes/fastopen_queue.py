#!/usr/bin/env python3
"""TCP Fast Open: the listener's pending-TFO limit (TCP_FASTOPEN qlen).

Spec: §5.7 Fast Open note and §9 only.  Kernel: tcp_try_fastopen() ->
tcp_fastopen_queue_check() (net/ipv4/tcp_fastopen.c: fastopenq.qlen >=
max_qlen -> TCPFastOpenListenOverflow, the SYN's data is ignored and the SYN
is handled as a normal request), tcp_fastopen_create_child() (qlen++),
reqsk_fastopen_remove() (qlen-- when the 3WHS completes or the child dies;
a RST for an already *accepted* child puts the request on rskq_rst_head
for 60 s, still counted), inet_csk_accept() (accept does not end the
pending state).

Setup: server netns tcp_fastopen=0x202 (server, no cookie required),
listener TCP_FASTOPEN=2; client netns tcp_fastopen=0x5 (client, no
cookie).  Clients send 10 bytes in the SYN (sendto MSG_FASTOPEN).  The relay
drops every pure ACK from the client, so Fast Open children stay pending
(SYN_RECV).  A SYN's data was accepted when the SYN-ACK acknowledges
ISN+1+10.  Sub-experiments, each in a fresh namespace pair:
  E0  4 TFO SYNs in a row
  E1  2 pending children accept()ed, then a 3rd TFO SYN
  E2  client 1 sends more data (completes its 3WHS), then a 3rd TFO SYN
  E3a client 1 resets (SO_LINGER 0) before its child is accepted, then a 3rd SYN
  E3b both children accepted, client 1 resets, then a 3rd SYN at once and a
      4th 61 s later
  E4  tcp_synack_retries=1: the pending children give up (SYN-ACKs at 1, 3 s,
      dead at ~7 s); a 3rd TFO SYN at 8 s

Usage: sudo python3 tools/kernel-probes/fastopen_queue.py
"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

CLI, SRV = "10.0.0.1", "10.0.0.2"
COUNTERS = ["TcpExtTCPFastOpenPassive", "TcpExtTCPFastOpenListenOverflow",
            "TcpExtTCPFastOpenPassiveFail", "TcpExtTCPFastOpenCookieReqd", "TcpPassiveOpens"]


class Pair:
    def __init__(self, lab, tag, synack_retries=None):
        self.c = lab.netns(f"fo{tag}c")
        self.s = lab.netns(f"fo{tag}s")
        self.s.sysctl("net.ipv4.tcp_fastopen", 0x202)
        self.c.sysctl("net.ipv4.tcp_fastopen", 0x5)
        if synack_retries is not None:
            self.s.sysctl("net.ipv4.tcp_synack_retries", synack_retries)
        self.fc, self.fs = P.tun_pair(lab, self.c, self.s)
        self.l = self.s.socket()
        self.l.bind((SRV, 80))
        self.l.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 2)
        self.l.listen(16)
        self.clients = []
        self.log = []
        self.before = self.s.counters()

    def tfo(self, relay, label):
        k = self.c.socket()
        k.settimeout(3)
        t = time.monotonic_ns()
        k.sendto(b"0123456789", socket.MSG_FASTOPEN, (SRV, 80))
        time.sleep(0.1)
        port = k.getsockname()[1]
        pk = [p for (tt, fd, p, v) in relay.log if tt >= t and port in (p.sport, p.dport)]
        syn = [p for p in pk if p.is_syn()]
        sa = [p for p in pk if p.is_synack()]
        if syn and sa:
            acked = (sa[0].ack - syn[0].seq - 1) % (1 << 32)
            verdict = "data in SYN ACCEPTED (Fast Open child)" if acked == 10 else \
                f"data in SYN IGNORED (SYN-ACK acks ISN+{acked + 1}; normal request)"
        else:
            verdict = f"no SYN/SYN-ACK seen ({len(syn)}/{len(sa)})"
        self.clients.append(k)
        self.log.append(f"    {label} (port {port}, SYN len {syn[0].plen if syn else '?'}): {verdict}")
        return k

    def pending(self):
        return sum(1 for r in P.proc_tcp(self.s) if r["state"] == "SYN_RECV")

    def note(self, text):
        self.log.append(f"    {text}")

    def counters(self):
        return P.counter_delta(self.before, self.s.counters(), COUNTERS)


def e0(p, relay):
    for i in range(4):
        p.tfo(relay, f"TFO SYN {i + 1}")
    p.note(f"SYN_RECV entries on the server: {p.pending()}")


def e1(p, relay):
    p.tfo(relay, "TFO SYN 1")
    p.tfo(relay, "TFO SYN 2")
    p.l.settimeout(1)
    a1, _ = p.l.accept()
    a2, _ = p.l.accept()
    p.note(f"accepted 2 children; first read {a1.recv(100)!r} (state {P.tcp_info(a1)['state']} = "
           f"{P.TCP_STATES.get(P.tcp_info(a1)['state'])})")
    p.tfo(relay, "TFO SYN 3 after accept()")
    p.keep = (a1, a2)


def e2(p, relay):
    k1 = p.tfo(relay, "TFO SYN 1")
    p.tfo(relay, "TFO SYN 2")
    k1.send(b"more")      # data segment (with ACK) passes the relay: 3WHS of child 1 completes
    time.sleep(0.1)
    p.tfo(relay, "TFO SYN 3 after client 1's 3WHS completed")


def reset(k):
    k.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    k.close()


def e3a(p, relay):
    k1 = p.tfo(relay, "TFO SYN 1")
    p.tfo(relay, "TFO SYN 2")
    reset(k1)
    time.sleep(0.1)
    p.tfo(relay, "TFO SYN 3 after client 1 reset its (unaccepted) child")


def e3b(p, relay):
    k1 = p.tfo(relay, "TFO SYN 1")
    p.tfo(relay, "TFO SYN 2")
    p.l.settimeout(1)
    p.keep = (p.l.accept()[0], p.l.accept()[0])
    reset(k1)
    t = time.monotonic()
    time.sleep(0.1)
    p.tfo(relay, "TFO SYN 3 right after client 1 reset its accepted child")
    time.sleep(max(0, 61 - (time.monotonic() - t)))
    p.tfo(relay, f"TFO SYN 4 {time.monotonic() - t:.1f} s after the reset")


def e4(p, relay):
    t = time.monotonic_ns()
    p.tfo(relay, "TFO SYN 1")
    p.tfo(relay, "TFO SYN 2")
    time.sleep(8)
    sas = [(tt - t) / 1e9 for (tt, fd, pk, v) in relay.log if fd == p.fs and pk.is_synack() and tt > t]
    p.note(f"server SYN-ACKs at {', '.join(f'{x:.2f}' for x in sas)} s; SYN_RECV entries now {p.pending()}")
    p.tfo(relay, "TFO SYN 3 at 8 s")


def main():
    P.out(P.header("fastopen_queue"))
    P.out("Sub-experiments" + __doc__.split("Sub-experiments")[1].split("Usage")[0].rstrip())
    exps = [("E0", e0, None), ("E1", e1, None), ("E2", e2, None), ("E3a", e3a, None),
            ("E3b", e3b, None), ("E4", e4, 1)]
    with P.Lab() as lab:
        pairs = {}
        links = {}
        for name, fn, retries in exps:
            p = Pair(lab, name.lower(), retries)
            pairs[name] = p
            links[p.fc], links[p.fs] = p.fs, p.fc
        cfds = {p.fc for p in pairs.values()}

        def rule(fd, pk, t):
            if fd in cfds and pk.is_pure_ack():
                return None
            return 0
        relay = P.Relay(links, rule)
        relay.start()
        time.sleep(0.2)
        ths = []
        for name, fn, retries in exps:
            th = threading.Thread(target=fn, args=(pairs[name], relay))
            th.start()
            ths.append(th)
        for th in ths:
            th.join()
        relay.stop()
        for name, fn, retries in exps:
            p = pairs[name]
            P.out("")
            P.out(f"== {name}: {fn.__name__}" + (f" (tcp_synack_retries={retries})" if retries else ""))
            for line in p.log:
                P.out(line)
            P.out(f"    server counters: {p.counters()}")


if __name__ == "__main__":
    main()
