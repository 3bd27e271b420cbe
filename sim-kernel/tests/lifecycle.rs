//! Worker lifecycle actions on the real kernel: fd passing (nothing
//! closes), kill (§5.10: FIN after the request was read), and a close-first
//! restart (§7 E: SYNs in the gap are refused).

mod common;

use common::*;
use sim_kernel::*;

fn at(t: u64, action: Action) -> TimedAction {
    TimedAction {
        at: at_ms(t),
        action,
    }
}

#[test]
fn fd_passing_resets_nothing() {
    let Some(_k) = kernel_or_skip("fd_passing_resets_nothing") else {
        return;
    };
    let mut spec = two_hosts(ms(1), 4, 1300);
    spec.workers[2].listen_at = None;
    spec.workers[3].listen_at = None;
    spec.clients.push(clients(
        1,
        "10.0.0.1:8080",
        "10.0.1.1",
        ArrivalProcess::Poisson { rate: 200 },
        1000,
    ));
    spec.timeline = vec![
        at(500, Action::Handover { from: 0, to: 2 }),
        at(500, Action::Handover { from: 1, to: 3 }),
    ];
    let r = run(&spec, &RunOptions::default()).expect("run");
    let c = r.outcome_counts();
    assert_eq!(c.completed, c.attempted, "{c:?}");
    assert!(c.attempted > 150, "{c:?}");
    assert!(
        r.workers.iter().all(|w| w.accepted > 0),
        "old before, new after: {:?}",
        r.workers
    );
    assert_eq!(r.counter_delta("TcpOutRsts"), 0);
    assert_eq!(r.counter_delta("TcpExtTCPMigrateReqSuccess"), 0);
    let states: Vec<&str> = r.workers.iter().map(|w| w.final_state.as_str()).collect();
    assert_eq!(states, ["listen", "listen", "bound", "bound"]);
    assert!(my_namespaces().is_empty());
}

#[test]
fn kill_after_the_request_was_read_sends_fin() {
    let Some(_k) = kernel_or_skip("kill_after_the_request_was_read_sends_fin") else {
        return;
    };
    let mut spec = two_hosts(ms(1), 1, 600);
    spec.workers[0].service_time = ms(1000);
    spec.clients.push(clients(
        1,
        "10.0.0.1:8080",
        "10.0.1.1",
        ArrivalProcess::Burst {
            count: 5,
            spacing: ms(10),
        },
        0,
    ));
    spec.timeline = vec![at(200, Action::Kill(0))];
    let r = run(&spec, &RunOptions::default()).expect("run");
    let c = r.outcome_counts();
    assert_eq!(c.eof_before_response, 5, "{c:?}");
    assert_eq!(r.workers[0].closed_at_kill, 5);
    assert_eq!(r.namespaces[0].delta("TcpExtTCPAbortOnClose"), 0);
    assert_eq!(r.namespaces[0].delta("TcpOutRsts"), 0);
    assert_eq!(r.workers[0].final_state, "closed");
    assert!(my_namespaces().is_empty());
}

#[test]
fn close_first_restart_refuses_the_gap() {
    let Some(_k) = kernel_or_skip("close_first_restart_refuses_the_gap") else {
        return;
    };
    let mut spec = two_hosts(ms(1), 2, 1000);
    spec.workers[1].listen_at = None;
    spec.clients.push(clients(
        1,
        "10.0.0.1:8080",
        "10.0.1.1",
        ArrivalProcess::Constant { rate: 100 },
        800,
    ));
    spec.timeline = vec![at(300, Action::Close(0)), at(500, Action::Listen(1))];
    let r = run(&spec, &RunOptions::default()).expect("run");
    let c = r.outcome_counts();
    // Arrivals in [~299 ms, ~499 ms) meet no listener: 20, give or take
    // one at each edge for timing.
    assert!((18..=22).contains(&c.refused), "{c:?}");
    assert_eq!(c.completed + c.refused, c.attempted, "{c:?}");
    let refused_at: Vec<u64> = r
        .connections
        .iter()
        .filter(|x| x.outcome == Outcome::Refused)
        .map(|x| x.planned.as_nanos() / 1_000_000)
        .collect();
    assert!(
        refused_at.iter().all(|&t| (290..510).contains(&t)),
        "{refused_at:?}"
    );
    assert!(r.counter_delta("TcpOutRsts") >= c.refused as i64);
    assert!(my_namespaces().is_empty());
}
