#!/usr/bin/env python3
"""First data RTO after a handshake whose SYN was retransmitted.

Spec §2.1 (`tcp_timestamps`, `tcp_no_metrics_save`, `tcp_early_retrans`),
§2.6 (data retransmission).  Kernel: tcp_init_metrics() (RTO from the
metrics cache, or TCP_TIMEOUT_FALLBACK = 3 s with no RTT sample and no
cache entry), tcp_ack_update_rtt() (an RTT sample from TSecr even for a
retransmitted SYN), tcp_update_metrics() (saves the RTT at close),
tcp_schedule_loss_probe() (TLP).

Setup per case: client and server namespaces joined by a TUN relay (optional
one-way delay = RTT/2).  'warm' cases first run 3 complete connections to the
same server (client closes first, so tcp_time_wait() -> tcp_update_metrics());
'nometrics' does the same with tcp_no_metrics_save=1 on the client; 'fresh'
runs none.  Then the measured connection (client port 40000): its first SYN is
dropped (so the SYN is retransmitted at ~1 s), the handshake completes, the
client sends 100 bytes and the relay drops every data segment of it for 12 s.
The probe reads tcpi_rto / tcpi_rtt right after connect() and prints the
times of every transmission of the data after the first send.

Usage: sudo python3 tools/kernel-probes/rto_after_synretrans.py [--runs N]
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

PORT = 40000
WATCH_S = 12.0


def server_loop(lsock):
    while True:
        try:
            c, _ = lsock.accept()
        except OSError:
            return
        threading.Thread(target=serve_one, args=(c,), daemon=True).start()


def serve_one(c):
    try:
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(b"ok")
    except OSError:
        pass
    finally:
        c.close()


def run_case(case):
    c, s = case["c"], case["s"]
    for _ in range(case["warm"]):
        k = c.socket()
        k.connect(("10.0.0.2", 80))
        k.sendall(b"hello")
        k.recv(10)
        k.close()
        time.sleep(0.05)
    time.sleep(0.3)
    case["metrics_before"] = c.exec("ip", "tcp_metrics", "show", check=False).strip() or "(empty)"
    k = c.socket()
    k.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    k.bind(("10.0.0.1", PORT))
    t = time.monotonic_ns()
    k.connect(("10.0.0.2", 80))
    case["connect_s"] = (time.monotonic_ns() - t) / 1e9
    case["info_connect"] = P.tcp_info(k)
    case["t_send"] = time.monotonic_ns()
    k.send(b"x" * 100)
    case["info_send"] = P.tcp_info(k)
    time.sleep(WATCH_S)
    case["info_end"] = P.tcp_info(k)
    k.close()


def main():
    runs = 2
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    P.out(P.header("rto_after_synretrans"))
    variants = []
    for ts in (1, 0):
        for cache in ("fresh", "warm", "nometrics"):
            for rtt_ms, er in ((0, 0), (100, 0), (0, 3)):
                variants.append(dict(ts=ts, cache=cache, rtt_ms=rtt_ms, er=er))
    cases = []
    with P.Lab() as lab:
        links = {}
        by_fd = {}
        for vi, v in enumerate(variants):
            for r in range(runs):
                c = lab.netns(f"r{vi}{r}c")
                s = lab.netns(f"r{vi}{r}s")
                for ns in (c, s):
                    ns.sysctl("net.ipv4.tcp_timestamps", v["ts"])
                    ns.sysctl("net.ipv4.tcp_early_retrans", v["er"])
                if v["cache"] == "nometrics":
                    c.sysctl("net.ipv4.tcp_no_metrics_save", 1)
                fc, fs = P.tun_pair(lab, c, s)
                links[fc], links[fs] = fs, fc
                lsock = s.socket()
                lsock.bind(("10.0.0.2", 80))
                lsock.listen(64)
                threading.Thread(target=server_loop, args=(lsock,), daemon=True).start()
                case = dict(v, c=c, s=s, fc=fc, fs=fs, warm=0 if v["cache"] == "fresh" else 3,
                            syn_dropped=False, lsock=lsock)
                cases.append(case)
                by_fd[fc] = case
                by_fd[fs] = case

        def rule(fd, p, t):
            case = by_fd[fd]
            d = case["rtt_ms"] / 2000
            if fd == case["fc"] and p.sport == PORT:
                if p.is_syn() and not case["syn_dropped"]:
                    case["syn_dropped"] = True
                    return None
                if p.plen > 0:
                    return None
            return d

        relay = P.Relay(links, rule)
        relay.start()
        time.sleep(0.2)
        threads = [threading.Thread(target=run_case, args=(cs,)) for cs in cases]
        for th in threads:
            th.start()
            time.sleep(0.02)
        for th in threads:
            th.join()
        relay.stop()
        for cs in cases:
            cs["data"] = [t for (t, fd, p, v) in relay.log
                          if fd == cs["fc"] and p.sport == PORT and p.plen > 0]
            cs["syns"] = [t for (t, fd, p, v) in relay.log
                          if fd == cs["fc"] and p.sport == PORT and p.is_syn()]

    P.out("Per case: SYNs of the measured connection (s after its first SYN), tcpi_rto and")
    P.out("tcpi_rtt right after connect() (ms), and every transmission of the 100 data bytes")
    P.out("(s after the first; all dropped).  ts = tcp_timestamps, er = tcp_early_retrans.")
    summary = []
    groups = {}
    for cs in cases:
        key = (cs["ts"], cs["cache"], cs["rtt_ms"], cs["er"])
        groups.setdefault(key, []).append(cs)
    for key, cl in groups.items():
        ts, cache, rtt, er = key
        P.out("")
        P.out(f"== ts={ts} cache={cache} rtt={rtt} ms er={er}")
        P.out("   client tcp_metrics before the measured connection: " +
              cl[0]["metrics_before"].replace("\n", " | "))
        firsts = []
        rtos = []
        for cs in cl:
            syns = [(t - cs["syns"][0]) / 1e9 for t in cs["syns"]]
            tx = [(t - cs["data"][0]) / 1e9 for t in cs["data"]]
            ic = cs["info_connect"]
            rtos.append(ic["rto"] / 1000)
            if len(tx) > 1:
                firsts.append(tx[1])
            P.out(f"   run: SYNs at {', '.join(f'{x:.3f}' for x in syns)}; connect() took "
                  f"{cs['connect_s']:.3f} s; after connect tcpi_rto {ic['rto'] / 1000:.0f} ms, "
                  f"tcpi_rtt {ic['rtt'] / 1000:.3f} ms")
            P.out(f"        data transmissions at {', '.join(f'{x:.3f}' for x in tx)}")
        summary.append(f"  ts={ts} cache={cache:9s} rtt={rtt:3d}ms er={er}: tcpi_rto after connect "
                       f"{P.mmm(rtos, '{:.0f}')} ms; first retransmission after {P.mmm(firsts)} s")
    P.out("")
    P.out("== summary")
    for s in summary:
        P.out(s)


if __name__ == "__main__":
    main()
