#!/usr/bin/env python3
"""Timer-wheel batching of SYN retransmissions (spec §3.1).

50 client sockets connect() over a 100 ms window to an address whose
packets vanish (a TUN sink in the client namespace), with
tcp_syn_linear_timeouts=0 and tcp_syn_retries=3, so each socket retransmits
at nominal 1, 3, 7 s (timeouts of 1 s, 2 s, 4 s) and fails at 15 s.  The
probe records the capture time and jiffy of every SYN and prints, for each
retransmission round, the distinct instants (grouped by jiffy) with their
counts, and checks each socket's instant against the wheel model
(calc_wheel_index: a 1 s or 2 s timeout lands in level 1, 8-jiffy = 32 ms
buckets at HZ=250; 4 s lands in level 2, 64-jiffy = 256 ms buckets).

Usage: sudo python3 tools/kernel-probes/timer_wheel_batching.py [--clients N] [--window-ms W]
"""
import errno
import os
import random
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402


def arg(name, default):
    if name in sys.argv:
        return type(default)(sys.argv[sys.argv.index(name) + 1])
    return default


def main():
    n = arg("--clients", 50)
    window_ms = arg("--window-ms", 100)
    P.out(P.header("timer_wheel_batching"))
    rnd = random.Random(1)
    with P.Lab() as lab:
        jc = P.JiffyClock()
        P.out(f"jiffy clock: jiffies increment at CLOCK_MONOTONIC = {jc.off % jc.tick / 1000:.0f} us "
              f"mod {jc.tick // 1000} us (+/- {jc.uncertainty_ns / 1000:.0f} us)")
        ns = lab.netns("wheel")
        ns.sysctl("net.ipv4.tcp_syn_retries", 3)
        ns.sysctl("net.ipv4.tcp_syn_linear_timeouts", 0)
        fd = P.open_tun(lab, ns, "ptun0", "10.9.0.1", "10.9.0.2")
        relay = P.Relay({fd: None})
        relay.start()
        time.sleep(0.2)
        offsets = sorted(rnd.uniform(0, window_ms / 1000) for _ in range(n))
        socks = []
        t_base = time.monotonic()
        for off in offsets:
            while time.monotonic() - t_base < off:
                time.sleep(0.0002)
            s = ns.socket()
            s.setblocking(False)
            s.connect_ex(("10.9.0.2", 80))
            socks.append(s)
        ports = {s.getsockname()[1]: i for i, s in enumerate(socks)}
        done = {}
        pending = {s.fileno(): s for s in socks}
        deadline = time.monotonic() + 25
        while pending and time.monotonic() < deadline:
            _, w, _ = select.select([], list(pending), [], 0.5)
            t = time.monotonic_ns()
            for f in w:
                s = pending.pop(f)
                done[ports[s.getsockname()[1]]] = (t, s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        relay.stop()
    syns = {}
    for (t, f, p, v) in relay.log:
        if p.is_syn() and p.sport in ports:
            syns.setdefault(ports[p.sport], []).append(t)
    rounds = max(len(v) for v in syns.values())
    t0 = min(v[0] for v in syns.values())
    P.out(f"{n} sockets; first SYNs spread over {(max(v[0] for v in syns.values()) - t0) / 1e6:.1f} ms "
          f"(jiffies {jc.jiffy_at(t0)} .. {jc.jiffy_at(max(v[0] for v in syns.values()))})")
    P.out("Instants are ms after the earliest first SYN; 'bucket' = jiffy the wheel model gives")
    P.out("for a timer armed at that socket's previous SYN.")
    timeouts = [jc.hz, 2 * jc.hz, 4 * jc.hz]
    summary = []
    for k in range(1, rounds):
        to = timeouts[k - 1] if k - 1 < len(timeouts) else None
        groups = {}
        mismatch = 0
        late = []
        for i, ts in syns.items():
            if len(ts) <= k:
                continue
            t = ts[k]
            j = jc.jiffy_at(t)
            _, b = P.predict_fire(jc, ts[k - 1], to, in_timer_callback=(k > 1))
            if b != j:
                mismatch += 1
            late.append(j - b)
            groups.setdefault(j, []).append(t)
        lvl = P.wheel_level(to - (1 if k > 1 else 0))
        P.out("")
        P.out(f"== retransmission {k} (timeout {to} jiffies = {to * 1000 // jc.hz} ms, wheel level {lvl}, "
              f"granularity {8 ** lvl} jiffies = {8 ** lvl * 1000 // jc.hz} ms)")
        prev = None
        for j in sorted(groups):
            ts = groups[j]
            gap = f"  (+{(j - prev) * 1000 // jc.hz} ms after previous burst)" if prev else ""
            P.out(f"   jiffy {j} (= {j % (8 ** lvl)} mod {8 ** lvl}): {len(ts):3d} SYNs, "
                  f"captured {(min(ts) - t0) / 1e6:.3f} .. {(max(ts) - t0) / 1e6:.3f} ms{gap}")
            prev = j
        P.out(f"   sockets whose jiffy differs from the model bucket: {mismatch} "
              f"(lateness beyond the model: {sorted(set(late))} jiffies)")
        summary.append(f"  retransmission {k}: {sum(len(v) for v in groups.values())} SYNs in "
                       f"{len(groups)} distinct jiffies {[len(groups[j]) for j in sorted(groups)]}, "
                       f"model mismatches {mismatch}")
    fails = {}
    for i, (t, e) in done.items():
        fails.setdefault(jc.jiffy_at(t), []).append(errno.errorcode.get(e, e))
    P.out("")
    P.out("== connect() failures (jiffy: count, error)")
    for j in sorted(fails):
        P.out(f"   jiffy {j}: {len(fails[j])} x {sorted(set(fails[j]))}")
    summary.append(f"  ETIMEDOUT: {len(done)} sockets in {len(fails)} distinct jiffies "
                   f"{[len(fails[j]) for j in sorted(fails)]}")
    P.out("")
    P.out("== summary")
    for s in summary:
        P.out(s)


if __name__ == "__main__":
    main()
