//! Application CPU (`cpu_per_accept`, `cpu_per_request` on a host's `cpus`;
//! the scheduling rule is in `backend/sim/cpu.rs`): a saturated host
//! drains accept queues slowly, so a reload resets more children than the
//! fixed-delay model predicts; without CPU costs nothing changes.

mod common;
use common::scenario_text;
use sim_reuseport::backend::{run, RunOptions};
use sim_reuseport::report::Report;
use sim_reuseport::scenario::parse_str;

fn report(text: &str, migrate: bool) -> Report {
    let scn = parse_str(text).unwrap();
    let opts = RunOptions {
        migrate: Some(migrate),
        ..Default::default()
    };
    run(&scn, opts).unwrap().report
}

/// `worker-cpu-saturation` with the same per-connection time as a fixed
/// service time (100 us + 2 ms) instead of CPU work.
fn fixed_delay() -> String {
    scenario_text("worker-cpu-saturation.json").replace(
        "\"cpu_per_accept\": \"100us\", \"cpu_per_request\": \"2ms\"",
        "\"service_time\": \"2100us\"",
    )
}

#[test]
fn a_saturated_host_queues_work_and_a_reload_resets_more() {
    let text = scenario_text("worker-cpu-saturation.json");
    let fixed = fixed_delay();
    assert!(!fixed.contains("cpu_per"), "every worker rewritten");
    let (cpu, flat) = (report(&text, false), report(&fixed, false));
    assert_eq!(cpu.connections.attempted, flat.connections.attempted);
    // 950 connections/s × 2.1 ms = 2.0 CPUs of work on 2 CPUs: completions
    // wait for a CPU (p99 several RTTs), where the fixed model answers
    // every request in RTT + 2.1 ms.
    assert!(flat.latency.completion_ms.p99 < 25.0, "{:?}", flat.latency);
    assert!(
        cpu.latency.completion_ms.p99 > 4.0 * flat.latency.completion_ms.p99,
        "{:?}",
        cpu.latency
    );
    // Old listeners held more unaccepted children at close (§7 A).
    assert!(
        cpu.connections_reset_by("listener_close_child")
            > flat.connections_reset_by("listener_close_child") * 5 / 4,
        "cpu {} flat {}",
        cpu.connections.reset,
        flat.connections.reset
    );
    // Migration saves them in both models (§5.7 step 4).
    assert_eq!(report(&text, true).connections.reset, 0);
}

#[test]
fn an_idle_host_serves_in_cpu_time_and_zero_costs_are_the_fixed_model() {
    // One connection at a time: no queueing, the response leaves 2.1 ms of
    // CPU after the accept (2 ms after the request when it comes after the
    // accept: the accept's 100 us were spent while waiting for it), as with
    // a 2.1 ms fixed service time to within those 100 us.
    let slow = |t: &str| t.replace("\"rate\": 950", "\"rate\": 20");
    let (cpu, flat) = (
        report(&slow(&scenario_text("worker-cpu-saturation.json")), true),
        report(&slow(&fixed_delay()), true),
    );
    assert_eq!(cpu.connections, flat.connections);
    let (a, b) = (cpu.latency.completion_ms, flat.latency.completion_ms);
    assert!((a.p50 - b.p50).abs() <= 0.11, "{a:?} {b:?}");
    assert!((a.p99 - b.p99).abs() <= 0.11, "{a:?} {b:?}");
    assert!(a.p50 < 25.0, "no queueing: {a:?}");
    // Zero CPU costs written out are the fixed-delay model, event for event
    // (the digest also covers the scenario's text, so compare the rest).
    let zero = fixed_delay().replace(
        "\"service_time\": \"2100us\"",
        "\"service_time\": \"2100us\", \"cpu_per_accept\": \"0s\", \"cpu_per_request\": \"0s\"",
    );
    let (z, f) = (report(&zero, false), report(&fixed_delay(), false));
    assert_eq!(z.events, f.events);
    assert_eq!(z.connections, f.connections);
    assert_eq!(z.latency, f.latency);
    assert_eq!(z.listeners, f.listeners);
}
