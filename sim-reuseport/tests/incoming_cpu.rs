//! `SO_INCOMING_CPU` at scenario level (§4.2 exact form,
//! `reuseport_select_sock_by_hash()`; measured on Linux 6.18:
//! docs/linux-semantics/so-incoming-cpu.md,
//! tools/kernel-probes/results/incoming_cpu.txt).

mod common;
use common::scenario;
use sim_reuseport::backend::{run, RunOptions};
use sim_reuseport::report::Report;
use sim_reuseport::scenario::{lower, Scenario};

fn report(scn: &Scenario) -> Report {
    run(scn, RunOptions::default()).unwrap().report
}

fn accepted(r: &Report, w: &str) -> u64 {
    r.listeners.iter().find(|l| l.worker == w).unwrap().accepted
}

/// `incoming-cpu-pinned` without its timeline: w0 and w1 serve the whole
/// run.
fn steady() -> Scenario {
    let mut scn = scenario("incoming-cpu-pinned.json", false);
    scn.timeline.clear();
    scn
}

#[test]
fn an_unpinned_listener_gets_nothing_while_every_cpu_is_claimed() {
    // Probe: "L0 -> CPU 0, L1 -> CPU 1" put 40 of 40 connections from each
    // CPU on the listener claiming it; "3 listeners: L0 unset, L1 -> CPU 0"
    // left the unset ones none of CPU 0's.
    let r = report(&steady());
    assert_eq!(accepted(&r, "spare"), 0);
    let (w0, w1) = (accepted(&r, "w0"), accepted(&r, "w1"));
    assert_eq!(w0 + w1, r.connections.completed);
    assert_eq!(r.connections.completed, r.connections.attempted);
    // RSS spreads flows evenly over the 2 CPUs: each pinned worker gets
    // about half (within 10 %).
    assert!(w0.abs_diff(w1) * 10 <= w0 + w1, "w0 {w0} w1 {w1}");
}

#[test]
fn without_incoming_cpu_the_hash_spreads_over_all_three() {
    // Probe: "no SO_INCOMING_CPU" → the plain hash pick.
    let mut scn = steady();
    for w in &mut scn.workers {
        w.incoming_cpu = None;
    }
    let r = report(&scn);
    for w in ["w0", "w1", "spare"] {
        let a = accepted(&r, w);
        assert!(a * 4 > r.connections.completed, "{w}: {a}");
    }
}

#[test]
fn one_pinned_cpu_takes_its_flows_and_the_other_cpu_hashes_over_all() {
    // Probe: "L0 unset, L1 -> CPU 0, L2 unset": CPU 0 → L1 40 of 40; CPU 1
    // → L0 14, L1 11, L2 15. Here w0 claims CPU 0 and w1 claims nothing:
    // w0 gets half the flows plus a third of the other half.
    let mut scn = steady();
    scn.workers[1].incoming_cpu = None;
    let r = report(&scn);
    let n = r.connections.completed;
    let (w0, w1, spare) = (
        accepted(&r, "w0"),
        accepted(&r, "w1"),
        accepted(&r, "spare"),
    );
    // w0 ≈ 2n/3 (within 10 % of it), w1 and spare ≈ n/6 each.
    assert!((3 * w0).abs_diff(2 * n) * 10 <= 2 * n, "w0 {w0} of {n}");
    for a in [w1, spare] {
        assert!(a * 12 > n && a * 4 < n, "{w1} {spare} of {n}");
    }
}

#[test]
fn a_single_cpu_host_sends_every_flow_to_the_cpu_0_listener() {
    // With one CPU (the default) every packet is on CPU 0.
    let mut scn = steady();
    scn.hosts[0].cpus = None;
    scn.workers[1].incoming_cpu = None;
    let r = report(&scn);
    assert_eq!(accepted(&r, "w0"), r.connections.completed);
}

#[test]
fn lowering_refuses_a_cpu_the_host_does_not_have() {
    let mut scn = steady();
    scn.workers[1].incoming_cpu = Some(2);
    let err = lower(&scn).unwrap_err().to_string();
    assert!(err.contains("workers[1].incoming_cpu"), "{err}");
    assert!(err.contains("has 2"), "{err}");
    let mut scn = steady();
    scn.hosts[0].cpus = Some(0);
    let err = lower(&scn).unwrap_err().to_string();
    assert!(err.contains("hosts[0].cpus"), "{err}");
}
