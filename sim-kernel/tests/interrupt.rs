//! Cleanup when a run is interrupted by SIGINT, and when setup fails half
//! way. (Its own test binary: it installs a SIGINT handler.)

mod common;

use std::time::Duration;

use common::*;
use sim_kernel::*;

#[test]
fn sigint_stops_the_run_and_removes_everything() {
    let Some(_k) = kernel_or_skip("sigint_stops_the_run_and_removes_everything") else {
        return;
    };
    let mut spec = two_hosts(ms(5), 2, 5000);
    spec.clients.push(clients(
        1,
        "10.0.0.1:8080",
        "10.0.1.1",
        ArrivalProcess::Constant { rate: 100 },
        4000,
    ));
    let opts = RunOptions::default();
    opts.stop.register_signals().expect("signal handlers");
    let killer = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(400));
        // SAFETY: sends SIGINT to this process; the handler only sets a flag.
        unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
    });
    // Namespaces exist while the run is on.
    let watcher = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(250));
        my_namespaces().len()
    });
    let started = clock::now();
    let err = run(&spec, &opts).expect_err("interrupted");
    let took = Duration::from_nanos(clock::now().0 - started.0);
    killer.join().unwrap();
    assert_eq!(
        watcher.join().unwrap(),
        2,
        "two hosts, two namespaces during the run"
    );
    assert!(
        matches!(err, KernelError::Interrupted { signal: 2 }),
        "{err}"
    );
    assert_eq!(err.exit_code(), 130);
    assert!(took < Duration::from_secs(2), "stopped promptly: {took:?}");
    assert!(
        my_namespaces().is_empty(),
        "left behind: {:?}",
        my_namespaces()
    );
}

#[test]
fn failed_setup_removes_what_it_made() {
    let Some(_k) = kernel_or_skip("failed_setup_removes_what_it_made") else {
        return;
    };
    let mut spec = two_hosts(ms(5), 1, 500);
    // The second host's sysctl does not exist: its namespace fails after
    // the first one was made.
    spec.hosts[1]
        .sysctls
        .insert("net.ipv4.tcp_no_such_sysctl".into(), 1);
    let err = run(&spec, &RunOptions::default()).expect_err("setup fails");
    let msg = err.to_string();
    assert!(
        msg.contains("host `clients`") && msg.contains("tcp_no_such_sysctl"),
        "{msg}"
    );
    assert!(
        my_namespaces().is_empty(),
        "left behind: {:?}",
        my_namespaces()
    );
    // A spec error is refused before anything is made.
    let mut bad = two_hosts(ms(5), 1, 500);
    bad.workers[0].server = 7;
    let err = run(&bad, &RunOptions::default()).expect_err("invalid");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("workers[0].server"), "{err}");
}
