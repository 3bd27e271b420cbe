#!/usr/bin/env python3
"""Server SYN-ACK retransmission schedule and request (SYN queue) expiry.

Spec §3 (request timer: now + min(timeout << num_timeout, TCP_RTO_MAX)),
§2.1 (`tcp_synack_retries`, `tcp_rto_max_ms` not read by the request timer),
§3.1 (timer wheel lateness).  Kernel: reqsk_timer_handler(),
syn_ack_recalc() (net/ipv4/inet_connection_sock.c), reqsk_queue_hash_req().

Setup: client and server namespaces joined by a TUN relay that drops every
client segment except SYNs, so the client's final ACK (and its duplicate
ACKs) never arrive and the request stays in the listener's SYN queue.  The
probe timestamps each SYN-ACK (relay read time) and polls the server's
/proc/net/tcp every 20 ms for the request (state SYN_RECV; `retrnsmt` is
req->num_timeout) to see when it disappears.  All configurations run at once
in separate namespace pairs.

Usage: sudo python3 tools/kernel-probes/synack_schedule.py [--runs N]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

TCP_RTO_MAX_S = 120


def nominal(retries, rto_max_s=TCP_RTO_MAX_S):
    t, out = 0, []
    for n in range(retries):
        t += min(1 << n, rto_max_s)
        out.append(t)
    return out, t + min(1 << retries, rto_max_s)


def model_chain(jc, t_syn, retries, synacks):
    """Wheel firing times of the request timer, each re-armed in the
    callback at the measured previous SYN-ACK (timeout 1 s << n, capped at
    TCP_RTO_MAX)."""
    res = []
    arm = t_syn
    for n in range(retries + 1):
        fire, _ = P.predict_fire(jc, arm, min(jc.hz << n, TCP_RTO_MAX_S * jc.hz), n > 0)
        res.append(fire)
        arm = synacks[n] if n < len(synacks) else fire
    return res


def main():
    runs = 3
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    configs = [
        ("tcp_synack_retries=5 (default)", {"net.ipv4.tcp_synack_retries": 5}, 5),
        ("tcp_synack_retries=2", {"net.ipv4.tcp_synack_retries": 2}, 2),
        ("tcp_synack_retries=5, tcp_rto_max_ms=1000", {"net.ipv4.tcp_synack_retries": 5,
                                                       "net.ipv4.tcp_rto_max_ms": 1000}, 5),
    ]
    P.out(P.header("synack_schedule"))
    pairs = []
    with P.Lab() as lab:
        jc = P.JiffyClock()
        P.out(f"jiffy clock: jiffies increment at CLOCK_MONOTONIC = {jc.off % jc.tick / 1000:.0f} us "
              f"mod {jc.tick // 1000} us (+/- {jc.uncertainty_ns / 1000:.0f} us)")
        links = {}
        for ci, (label, sysctls, retries) in enumerate(configs):
            for r in range(runs):
                c = lab.netns(f"sa{ci}{r}-c")
                s = lab.netns(f"sa{ci}{r}-s")
                for k, v in sysctls.items():
                    s.sysctl(k, v)
                fc, fs = P.tun_pair(lab, c, s)
                links[fc] = fs
                links[fs] = fc
                lsock = s.socket()
                lsock.bind(("10.0.0.2", 80))
                lsock.listen(128)
                pairs.append(dict(label=label, retries=retries, c=c, s=s, fc=fc, fs=fs,
                                  lsock=lsock, rows=[]))
        client_fds = {p["fc"] for p in pairs}

        def rule(fd, pkt, t):
            if fd in client_fds and not pkt.is_syn():
                return None         # drop the final ACK, dup ACKs, anything else
            return 0

        relay = P.Relay(links, rule)
        relay.start()
        time.sleep(0.2)
        for p in pairs:
            cs = p["c"].socket()
            cs.setblocking(False)
            cs.connect_ex(("10.0.0.2", 80))
            p["csock"] = cs
            time.sleep(0.037)
        c0 = p["s"].counters()
        horizon = max(nominal(p["retries"])[1] for p in pairs) * 1.15 + 3
        t_start = time.monotonic()
        alive = {id(p): True for p in pairs}
        while time.monotonic() - t_start < horizon and any(alive.values()):
            for p in pairs:
                if not alive[id(p)]:
                    continue
                rows = [r for r in P.proc_tcp(p["s"]) if r["state"] == "SYN_RECV"]
                t = time.monotonic_ns()
                if rows:
                    p["last_seen"] = t
                    p["last_num_timeout"] = rows[0]["retrnsmt"]
                elif "last_seen" in p:
                    p["gone_at"] = t
                    alive[id(p)] = False
            time.sleep(0.02)
        relay.stop()
        for p in pairs:
            p["counters"] = P.counter_delta(c0, p["s"].counters(),
                                            ["TcpExtTCPTimeouts", "TcpRetransSegs"])
            log = relay.log
            p["syn"] = [t for (t, fd, k, v) in log if fd == p["fc"] and k.is_syn()]
            p["synacks"] = [t for (t, fd, k, v) in log if fd == p["fs"] and k.is_synack()]
            p["acks_dropped"] = sum(1 for (t, fd, k, v) in log if fd == p["fc"] and v is None)

    P.out("Times in seconds after the SYN reached the server.  'model' = timer-wheel")
    P.out("bucket (request timer armed at the SYN, then re-armed in the callback at")
    P.out("the measured previous SYN-ACK); resid = measured - model.")
    by = {}
    for p in pairs:
        by.setdefault(p["label"], []).append(p)
    summary = []
    for label, pl in by.items():
        retries = pl[0]["retries"]
        nom, nom_exp = nominal(retries)
        P.out("")
        P.out(f"== {label}")
        P.out(f"   nominal SYN-ACK retransmissions {', '.join(map(str, nom))} s; request dropped at {nom_exp} s")
        per_k, exps, resids = {}, [], []
        for p in pl:
            t0 = p["syn"][0]
            retr = p["synacks"][1:]
            model = model_chain(jc, t0, retries, retr)
            P.out(f"   run: {len(p['synacks'])} SYN-ACKs (first {(p['synacks'][0] - t0) / 1e6:.2f} ms after "
                  f"the SYN), {p['acks_dropped']} client ACKs dropped, server counters {p['counters']}")
            for k, t in enumerate(retr):
                m = model[k]
                resids.append((t - m) / 1e6)
                per_k.setdefault(k, []).append((t - t0) / 1e9)
                P.out(f"        retransmission {k + 1}: {(t - t0) / 1e9:.3f} (model {(m - t0) / 1e9:.3f}, "
                      f"{(t - m) / 1e6:+.1f} ms)")
            me = model[retries]
            if "gone_at" in p:
                ls, ga = (p["last_seen"] - t0) / 1e9, (p["gone_at"] - t0) / 1e9
                exps.append((ls + ga) / 2)
                P.out(f"        request last seen at {ls:.3f} s (num_timeout {p['last_num_timeout']}), "
                      f"gone at {ga:.3f} s; model expiry {(me - t0) / 1e9:.3f} s")
            else:
                P.out("        request never disappeared within the horizon!")
        for k in sorted(per_k):
            P.out(f"   retransmission {k + 1} (nominal {nom[k] if k < len(nom) else '?'}): {P.mmm(per_k[k])}")
        P.out(f"   expiry (nominal {nom_exp}, midpoint of last-seen/gone): {P.mmm(exps)}")
        n_ok = all(len(p["synacks"]) - 1 == retries for p in pl)
        summary.append(f"  {label}: SYN-ACK retransmissions "
                       f"{[len(p['synacks']) - 1 for p in pl]} (rule {retries}); "
                       f"times {'; '.join(P.mmm(per_k[k], '{:.3f}') for k in sorted(per_k))}; "
                       f"expiry {P.mmm(exps)} (rule {nom_exp}); resid vs wheel {P.mmm(resids, '{:.1f}')} ms; "
                       f"{'AGREES' if n_ok else 'DIFFERS'}")
    P.out("")
    P.out("== summary")
    for s in summary:
        P.out(s)


if __name__ == "__main__":
    main()
