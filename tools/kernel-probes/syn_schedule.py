#!/usr/bin/env python3
"""Client SYN retransmission schedule and connect() ETIMEDOUT time.

Spec §2.6 / §2.1 (`tcp_syn_retries`, `tcp_syn_linear_timeouts`, TCP_SYNCNT),
§3.1 (timer wheel).  Kernel: tcp_retransmit_timer(), tcp_write_timeout(),
retransmits_timed_out(), tcp_model_timeout() (net/ipv4/tcp_timer.c).

Setup: one namespace per run; its only route to 10.9.0.2 is a TUN device
whose packets the probe reads and drops (silent SYN loss) while
timestamping each SYN.  All runs go at once (staggered by 61 ms); each is
independent.  For each retransmission the probe prints the nominal time, the
measured time after the first SYN, and the timer-wheel model's time (armed
at the jiffy the previous SYN was sent, rounded by calc_wheel_index),
chained from the *measured* previous SYN, with the residual measured-model.

Usage: sudo python3 tools/kernel-probes/syn_schedule.py [--quick] [--runs N]
  --quick skips the R=6 configurations (131 s / 127 s).
"""
import errno
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

RTO_INIT_J = None  # TCP_TIMEOUT_INIT in jiffies, set from HZ


def nominal(R, L):
    """Kernel rule (tcp_retransmit_timer/tcp_write_timeout), in seconds:
    retransmission instants and the ETIMEDOUT instant."""
    t, rto, n, out = 0.0, 1.0, 0, []
    bound = (2 ** (R + 1) - 1) * 1.0          # tcp_model_timeout(R, rto_base=1 s), R <= 6
    while True:
        t += rto                               # the timer fires
        if n >= R + L or (n > 0 and t >= bound):
            return out, t
        n += 1                                 # retransmit; total_rto = n
        out.append(t)
        if n > L:                              # tp->total_rto > tcp_syn_linear_timeouts
            rto *= 2


def model_chain(jc, t_first, R, L, measured):
    """Wheel times (ns) of each timer firing, each armed at the measured
    previous SYN (in_timer_callback for retransmissions)."""
    rto = RTO_INIT_J
    n = 0
    arm = t_first
    res = []
    for k in range(R + L + 1):
        fire, _ = P.predict_fire(jc, arm, rto, in_timer_callback=(k > 0))
        res.append(fire)
        if k < len(measured):
            arm = measured[k]
        else:
            arm = fire
        n += 1
        if n > L:
            rto *= 2
    return res


def main():
    global RTO_INIT_J
    quick = "--quick" in sys.argv
    runs = 3
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    configs = []  # (label, syn_retries sysctl, linear, TCP_SYNCNT or 0)
    for L in (4, 0):
        for R in (1, 2, 3, 6):
            if quick and R == 6:
                continue
            configs.append((f"tcp_syn_retries={R} tcp_syn_linear_timeouts={L}", R, L, 0))
    configs.append(("tcp_syn_retries=6 linear=4, TCP_SYNCNT=2", 6, 4, 2))
    configs.append(("tcp_syn_retries=6 linear=4, TCP_SYNCNT=3", 6, 4, 3))
    configs.append(("tcp_syn_retries=6 linear=0, TCP_SYNCNT=2", 6, 0, 2))

    P.out(P.header("syn_schedule"))
    with P.Lab() as lab:
        jc = P.JiffyClock()
        RTO_INIT_J = jc.hz  # TCP_TIMEOUT_INIT = 1 s
        P.out(f"jiffy clock: jiffies increment at CLOCK_MONOTONIC = {jc.off % jc.tick / 1000:.0f} us "
              f"mod {jc.tick // 1000} us (+/- {jc.uncertainty_ns / 1000:.0f} us, "
              f"{jc.conflicts} delayed samples ignored)")
        runs_l = []  # dicts
        links = {}
        for ci, (label, R, L, syncnt) in enumerate(configs):
            for r in range(runs):
                ns = lab.netns(f"syn{ci}-{r}")
                ns.sysctl("net.ipv4.tcp_syn_retries", R)
                ns.sysctl("net.ipv4.tcp_syn_linear_timeouts", L)
                fd = P.open_tun(lab, ns, "ptun0", "10.9.0.1", "10.9.0.2")
                links[fd] = None   # sink: every packet vanishes
                runs_l.append(dict(label=label, R=syncnt or R, L=L, ns=ns, fd=fd, syncnt=syncnt))
        relay = P.Relay(links)
        relay.start()
        time.sleep(0.2)
        socks = {}
        for i, run in enumerate(runs_l):
            s = run["ns"].socket(socket.AF_INET, socket.SOCK_STREAM)
            if run["syncnt"]:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, run["syncnt"])
            s.setblocking(False)
            run["t_connect"] = time.monotonic_ns()
            err = s.connect_ex(("10.9.0.2", 80))
            assert err == errno.EINPROGRESS, err
            run["sock"] = s
            socks[s.fileno()] = run
            time.sleep(0.061)
        deadline = time.monotonic() + 200
        pending = dict(socks)
        while pending and time.monotonic() < deadline:
            _, w, _ = select.select([], list(pending), [], 1.0)
            t = time.monotonic_ns()
            for f in w:
                run = pending.pop(f)
                run["t_done"] = t
                run["err"] = run["sock"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        relay.stop()
        for run in runs_l:
            syns = [(t, p.tsval) for (t, fd, p, v) in relay.log if fd == run["fd"] and p.is_syn()]
            run["syns"] = [t for t, _ in syns]
            run["tsvals"] = [ts for _, ts in syns]

    # ---- report
    P.out("Times in seconds after the first SYN was captured.  'model' = timer-wheel")
    P.out("bucket of a timer armed at the measured previous SYN (first: at connect());")
    P.out("'resid' = measured - model in ms (softirq + relay read latency; never negative")
    P.out("if the model is right).  TSval = the SYN's TCP timestamp minus the first SYN's")
    P.out("(ms clock of the sender, tcp_clock_ms): the send time as the kernel saw it, so a")
    P.out("late capture and a late timer can be told apart.")
    summary = []
    by_label = {}
    for run in runs_l:
        by_label.setdefault(run["label"], []).append(run)
    for label, rl in by_label.items():
        R, L = rl[0]["R"], rl[0]["L"]
        nom, nom_to = nominal(R, L)
        P.out("")
        P.out(f"== {label}  (effective R={R}, L={L})")
        P.out(f"   nominal retransmissions: {', '.join(f'{x:g}' for x in nom)};  ETIMEDOUT at {nom_to:g} s")
        per_k = {}
        tos = []
        resid_all = []
        for run in rl:
            syns = run["syns"]
            if not syns:
                P.out("   run: no SYN captured!")
                continue
            t0 = syns[0]
            retr = syns[1:]
            model = model_chain(jc, run["t_connect"], R, L, retr)
            e = run.get("err")
            ename = errno.errorcode.get(e, str(e)) if e is not None else "no result"
            to = (run["t_done"] - t0) / 1e9 if "t_done" in run else float("nan")
            tos.append(to)
            cells = []
            for k, t in enumerate(retr):
                m = model[k] if k < len(model) else None
                resid = (t - m) / 1e6 if m else float("nan")
                resid_all.append(resid)
                per_k.setdefault(k, []).append((t - t0) / 1e9)
                dj = jc.jiffy_at(t) - jc.jiffy_at(m) if m else 0
                ts = run["tsvals"][k + 1] - run["tsvals"][0] if run["tsvals"][0] is not None else None
                cells.append(f"{(t - t0) / 1e9:.3f} (TSval {ts / 1e3:.3f}; model {(m - t0) / 1e9:.3f}, "
                             f"{resid:+.1f} ms, {'same jiffy' if dj == 0 else f'{dj:+d} jiffies'})")
            mto = model[len(retr)] if len(retr) < len(model) else None
            P.out(f"   run: first SYN {(t0 - run['t_connect']) / 1e6:.2f} ms after connect(); "
                  f"{len(retr)} retransmissions")
            for c in cells:
                P.out(f"        {c}")
            mto_s = f"{(mto - t0) / 1e9:.3f}" if mto else "?"
            P.out(f"        connect() -> {ename} at {to:.3f} s (model timer {mto_s}, "
                  f"resid {((run['t_done'] - mto) / 1e6) if mto and 't_done' in run else float('nan'):+.1f} ms)")
        P.out("   per retransmission, measured across runs:")
        for k in sorted(per_k):
            P.out(f"     #{k + 1} nominal {nom[k] if k < len(nom) else float('nan'):g}: {P.mmm(per_k[k])}")
        P.out(f"     ETIMEDOUT nominal {nom_to:g}: {P.mmm(tos)}")
        n_retr = [len(r["syns"]) - 1 for r in rl]
        ok = all(n == len(nom) for n in n_retr) and all(r.get("err") == errno.ETIMEDOUT for r in rl)
        summary.append((label, len(nom), n_retr, nom_to, tos, ok, resid_all))
    P.out("")
    P.out("== summary")
    for label, nn, n_retr, nom_to, tos, ok, resid in summary:
        P.out(f"  {label}: retransmissions {n_retr} (rule {nn}); ETIMEDOUT {P.mmm(tos)} s "
              f"(rule {nom_to:g}); resid vs wheel {P.mmm(resid, '{:.1f}')} ms; "
              f"{'AGREES' if ok else 'DIFFERS'}")


if __name__ == "__main__":
    main()
