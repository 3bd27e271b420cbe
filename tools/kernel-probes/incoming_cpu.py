#!/usr/bin/env python3
"""SO_INCOMING_CPU on SO_REUSEPORT listeners: which listener gets a SYN
processed on CPU x.

Spec §4.2 ("prefer one whose SO_INCOMING_CPU equals the current CPU when any
member has SO_INCOMING_CPU set").  Kernel (net/core/sock_reuseport.c, 6.1+):
reuseport_select_sock_by_hash() starts at reciprocal_scale(hash, num_socks);
if reuse->incoming_cpu == 0 (no member set SO_INCOMING_CPU) it returns that
socket; otherwise it scans cyclically for a non-ESTABLISHED member with
sk_incoming_cpu == raw_smp_processor_id() and falls back to the first valid
one (the hash pick).  reuse->incoming_cpu counts members with the option
set (reuseport_update_incoming_cpu / __reuseport_get_incoming_cpu).

Setup: one namespace, listeners on 127.0.0.1:80 with SO_REUSEPORT, clients
connect over loopback from a thread pinned to one CPU (loopback_xmit ->
netif_rx queues the SYN on the sending CPU's backlog, and with RPS off
it is processed there).  40 connections per CPU and configuration; the probe
accept()s on every listener to see which one got each child.

Usage: sudo python3 tools/kernel-probes/incoming_cpu.py
"""
import os
import select
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

N = 40
CONFIGS = [
    ("no SO_INCOMING_CPU", [None, None]),
    ("L0 -> CPU 0, L1 -> CPU 1", [0, 1]),
    ("L0 unset, L1 -> CPU 1", [None, 1]),
    ("L0 -> CPU 1, L1 -> CPU 1", [1, 1]),
    ("3 listeners: L0 unset, L1 -> CPU 0, L2 unset", [None, 0, None]),
]


def run_config(ns, port, cpus_set):
    ls = []
    for cpu in cpus_set:
        l = ns.socket()
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if cpu is not None:
            l.setsockopt(socket.SOL_SOCKET, socket.SO_INCOMING_CPU, cpu)
        l.bind(("127.0.0.1", port))
        l.listen(128)
        l.setblocking(False)
        ls.append(l)
    got = {}
    for send_cpu in (0, 1):
        counts = [0] * len(ls)
        res = {}

        def worker():
            os.sched_setaffinity(0, {send_cpu})
            with ns.entered():
                cs = []
                for _ in range(N):
                    k = socket.socket()
                    k.connect(("127.0.0.1", port))
                    cs.append(k)
                res["cs"] = cs
        th = threading.Thread(target=worker)
        th.start()
        th.join()
        select.select(ls, [], [], 0.2)
        for i, l in enumerate(ls):
            while True:
                try:
                    a, _ = l.accept()
                    a.close()
                    counts[i] += 1
                except BlockingIOError:
                    break
        for k in res["cs"]:
            k.close()
        got[send_cpu] = counts
    for l in ls:
        l.close()
    return got


def main():
    P.out(P.header("incoming_cpu"))
    if os.cpu_count() < 2:
        P.out("needs 2 CPUs; skipped")
        return
    with P.Lab() as lab:
        ns = lab.netns("icpu")
        P.out(f"RPS on lo: {ns.exec('cat', '/sys/class/net/lo/queues/rx-0/rps_cpus', check=False).strip()}")
        for i, (label, cpus) in enumerate(CONFIGS):
            got = run_config(ns, 8000 + i, cpus)
            P.out("")
            P.out(f"== {label}")
            for send_cpu, counts in got.items():
                P.out(f"   clients on CPU {send_cpu}: children per listener "
                      + ", ".join(f"L{j}{'(cpu ' + str(c) + ')' if c is not None else ''}={n}"
                                  for j, (c, n) in enumerate(zip(cpus, counts))))


if __name__ == "__main__":
    main()
