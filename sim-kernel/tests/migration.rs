//! The kernel selftest migrate_reuseport on the real kernel, through the
//! kernel backend: with `tcp_migrate_req=1`, with an SK_REUSEPORT
//! SELECT_OR_MIGRATE program, and with migration off (spec §5.7, §5.4,
//! §7 A and B).

mod common;

use common::*;
use sim_kernel::*;

fn run_selftest(v6: bool, m: Migration, drop_ack: bool) -> KernelRunResult {
    let spec = selftest(v6, m, drop_ack);
    let r = run(&spec, &RunOptions::default()).expect("run");
    assert!(
        my_namespaces().is_empty(),
        "left behind: {:?}",
        my_namespaces()
    );
    assert!(
        r.actions.iter().all(|a| a.error.is_none()),
        "{:?}",
        r.actions
    );
    r
}

fn s4_accepted(r: &KernelRunResult) -> u64 {
    r.workers[4].accepted
}

/// §5.7 step 4: children queued on the four shut-down listeners move to the
/// fifth; `TcpExtTCPMigrateReqSuccess` counts each hop. By hash, a child
/// of s0 may first land on s1..s3 (still live at that instant) and move
/// again when they shut down (§6.2), so the counter is 25 or more.
#[test]
fn accept_queue_children_migrate_with_the_sysctl() {
    let Some(_k) = kernel_or_skip("accept_queue_children_migrate_with_the_sysctl") else {
        return;
    };
    for v6 in [false, true] {
        let r = run_selftest(v6, Migration::Sysctl, false);
        let c = r.outcome_counts();
        assert_eq!(c.completed, 25, "v6={v6} {c:?}");
        assert_eq!(s4_accepted(&r), 25);
        let hops = r.counter_delta("TcpExtTCPMigrateReqSuccess");
        assert!((25..=25 + 3 * 25).contains(&hops), "{hops}");
        assert_eq!(r.counter_delta("TcpExtTCPMigrateReqFailure"), 0);
        assert_eq!(r.counter_delta("TcpOutRsts"), 0);
        let peak: u32 = r.workers[..4].iter().map(|w| w.peak_accept_queue).sum();
        assert!(
            peak >= 25,
            "INET_DIAG saw the 25 children in s0..s3: {:?}",
            r.workers
        );
        assert!(r.workers[4].peak_accept_queue >= 25);
    }
}

/// §7 A: without migration the shut-down listeners reset their children.
#[test]
fn accept_queue_children_are_reset_without_migration() {
    let Some(_k) = kernel_or_skip("accept_queue_children_are_reset_without_migration") else {
        return;
    };
    let r = run_selftest(false, Migration::Off, false);
    let c = r.outcome_counts();
    assert_eq!(c.reset, 25, "{c:?}");
    assert_eq!(s4_accepted(&r), 0);
    assert_eq!(r.counter_delta("TcpExtTCPMigrateReqSuccess"), 0);
    assert_eq!(r.counter_delta("TcpOutRsts"), 25);
}

/// §5.4: requests held in the SYN queue by the dropped final ACKs migrate
/// at the (retransmitted) final ACK, or are reset without migration (§7 B).
/// The XDP filter on lo drops ACKs only inside its window.
#[test]
fn syn_queue_requests_migrate_at_the_final_ack() {
    let Some(_k) = kernel_or_skip("syn_queue_requests_migrate_at_the_final_ack") else {
        return;
    };
    let r = run_selftest(false, Migration::Sysctl, true);
    let c = r.outcome_counts();
    assert_eq!(c.completed, 25, "{c:?}");
    assert_eq!(s4_accepted(&r), 25);
    assert_eq!(r.counter_delta("TcpExtTCPMigrateReqSuccess"), 25);
    let dropped: u64 = r.lo_filters.iter().map(|f| f.dropped).sum();
    assert!(
        dropped >= 25,
        "the final ACKs were dropped: {:?}",
        r.lo_filters
    );
    assert_eq!(
        r.peak_syn_recv[0], 25,
        "INET_DIAG saw 25 request sockets on the port"
    );
    assert!(r
        .workers
        .iter()
        .all(|w| w.peak_accept_queue == 0 || w.name == "s4"));

    let r = run_selftest(false, Migration::Off, true);
    let c = r.outcome_counts();
    assert_eq!(c.reset, 25, "{c:?}");
    assert_eq!(r.counter_delta("TcpExtTCPMigrateReqSuccess"), 0);
}

/// An SK_REUSEPORT SELECT_OR_MIGRATE program picks s4 through the socket
/// array for every migrating socket, with `tcp_migrate_req=0`: one hop
/// each, so exactly 25; its own counter (`.bss`) agrees with the kernel's.
#[test]
fn policy_program_migrates_to_its_pick() {
    let Some(_k) = kernel_or_skip("policy_program_migrates_to_its_pick") else {
        return;
    };
    let r = run_selftest(false, Migration::Policy, false);
    let c = r.outcome_counts();
    assert_eq!(c.completed, 25, "{c:?}");
    assert_eq!(s4_accepted(&r), 25);
    assert_eq!(r.counter_delta("TcpExtTCPMigrateReqSuccess"), 25);
    let bss = r
        .policy_data
        .iter()
        .find(|d| d.section == ".bss")
        .expect(".bss");
    assert_eq!(bss.u32_at(0), Some(25), "migrated_at_close");
}

/// §5.8: `tcp_migrate_req` is read at close; switching it on through the
/// timeline (inside the namespace) before the shutdowns is enough.
#[test]
fn sysctl_switched_on_by_the_timeline() {
    let Some(_k) = kernel_or_skip("sysctl_switched_on_by_the_timeline") else {
        return;
    };
    let mut spec = selftest(true, Migration::Off, false);
    spec.timeline.push(TimedAction {
        at: at_ms(120),
        action: Action::SetSysctl {
            host: sim_core::HostId(0),
            name: "tcp_migrate_req".into(),
            value: 1,
        },
    });
    // Loopback traffic goes to the pcap through a packet socket on lo.
    let pcap = std::env::temp_dir().join(format!("rpsim-selftest-{}.pcap", std::process::id()));
    let opts = RunOptions {
        pcap: Some(pcap.clone()),
        ..Default::default()
    };
    let r = run(&spec, &opts).expect("run");
    assert_eq!(r.outcome_counts().completed, 25, "{:?}", r.outcome_counts());
    assert!(r.counter_delta("TcpExtTCPMigrateReqSuccess") >= 25);
    // SYN, SYN-ACK, ACK, data, response, FINs...: at least 7 per connection.
    assert!(r.pcap_packets >= 25 * 7, "{}", r.pcap_packets);
    assert!(std::fs::metadata(&pcap).unwrap().len() > 24 + 25 * 7 * 16);
    std::fs::remove_file(&pcap).unwrap();
    assert!(r
        .actions
        .iter()
        .any(|a| a.label == "set_sysctl lo tcp_migrate_req=1" && a.error.is_none()));
    assert!(my_namespaces().is_empty());
}

/// Detaching the program before the shutdowns (`SO_DETACH_REUSEPORT_BPF`)
/// leaves the group without a migration-capable policy and with
/// `tcp_migrate_req=0`: the children are reset (§5.7 step 2, §7 A).
#[test]
fn detached_policy_no_longer_migrates() {
    let Some(_k) = kernel_or_skip("detached_policy_no_longer_migrates") else {
        return;
    };
    let mut spec = selftest(false, Migration::Policy, false);
    spec.timeline.push(TimedAction {
        at: at_ms(140),
        action: Action::DetachPolicy { via: 1 },
    });
    let r = run(&spec, &RunOptions::default()).expect("run");
    assert_eq!(r.outcome_counts().reset, 25, "{:?}", r.outcome_counts());
    assert_eq!(r.counter_delta("TcpExtTCPMigrateReqSuccess"), 0);
    assert!(my_namespaces().is_empty());
}

/// With the socket-array entry deleted, `bpf_sk_select_reuseport` fails
/// and the program passes without a pick: the kernel migrates by hash
/// anyway (§4.3, PassNoPick, whatever the sysctl), and the program's own
/// counter stays at 0.
#[test]
fn deleted_map_entry_falls_back_to_the_hash() {
    let Some(_k) = kernel_or_skip("deleted_map_entry_falls_back_to_the_hash") else {
        return;
    };
    let mut spec = selftest(false, Migration::Policy, false);
    spec.timeline.push(TimedAction {
        at: at_ms(140),
        action: Action::MapDelete {
            policy: 0,
            map: "reuse_map".into(),
            key: MapDatum::U32(0),
        },
    });
    let r = run(&spec, &RunOptions::default()).expect("run");
    assert_eq!(r.outcome_counts().completed, 25, "{:?}", r.outcome_counts());
    assert!(r.counter_delta("TcpExtTCPMigrateReqSuccess") >= 25);
    let bss = r
        .policy_data
        .iter()
        .find(|d| d.section == ".bss")
        .expect(".bss");
    assert_eq!(bss.u32_at(0), Some(0), "no pick succeeded");
    assert!(my_namespaces().is_empty());
}
