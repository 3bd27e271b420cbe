//! The user-space link emulator on real traffic: latency (RTT measured by
//! the handshake), loss, a link-down window, a pure-ACK filter, IPv6, and
//! the pcap it writes.

mod common;

use common::*;
use sim_core::{Fault, FilterId, FilterMatch, LinkId, PacketFilter, Probability};
use sim_kernel::*;

/// Configured one-way latency 20 ms: every handshake takes one RTT of 40
/// ms plus the emulator's lateness (measured p99 below 1 ms on this
/// 2-core machine under SCHED_FIFO, even with a load average near 1000).
#[test]
fn latency_matches_the_configuration_in_both_families() {
    let Some(_k) = kernel_or_skip("latency_matches_the_configuration_in_both_families") else {
        return;
    };
    let mut spec = two_hosts(ms(20), 1, 800);
    let mut v6 = spec.clone();
    spec.clients.push(clients(
        1,
        "10.0.0.1:8080",
        "10.0.1.1",
        ArrivalProcess::Constant { rate: 50 },
        600,
    ));
    v6.servers[0].addr = "[fd00::1]:8080".parse().unwrap();
    v6.clients.push(clients(
        1,
        "[fd00::1]:8080",
        "fd00:1::1",
        ArrivalProcess::Constant { rate: 50 },
        600,
    ));
    let dir = std::env::temp_dir().join(format!("rpsim-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, spec) in [("v4", spec), ("v6", v6)] {
        let pcap = dir.join(format!("{name}.pcap"));
        let opts = RunOptions {
            pcap: Some(pcap.clone()),
            ..Default::default()
        };
        let r = run(&spec, &opts).expect("run");
        let c = r.outcome_counts();
        assert_eq!((c.attempted, c.completed), (30, 30), "{name}: {c:?}");
        // Never faster than configured; the median within 5 ms of it; every
        // handshake within 20 ms (a loaded 2-core machine delays a thread
        // now and then, even at real-time priority: at load average 10 every
        // handshake of one run came 3.0-3.7 ms late, 2026-12-06).
        let mut hs: Vec<u64> = r
            .connections
            .iter()
            .map(|c| c.handshake.unwrap().as_nanos())
            .collect();
        hs.sort_unstable();
        assert!(hs[0] >= 40_000_000, "{name}: handshakes {hs:?} ns");
        assert!(
            hs[hs.len() / 2] < 45_000_000,
            "{name}: handshakes {hs:?} ns"
        );
        assert!(
            hs[hs.len() - 1] < 60_000_000,
            "{name}: handshakes {hs:?} ns"
        );
        assert!(
            r.forwarder.lateness.p99.as_nanos() < 5_000_000,
            "{:?}",
            r.forwarder.lateness
        );
        // Every TCP packet the emulator read is in the pcap (and a few
        // IPv6 control packets too).
        assert!(
            r.pcap_packets >= r.forwarder.tcp,
            "{} < {}",
            r.pcap_packets,
            r.forwarder.tcp
        );
        let bytes = std::fs::read(&pcap).unwrap();
        assert_eq!(&bytes[..4], &0xa1b2_3c4du32.to_le_bytes());
        assert!(bytes.len() > 24 + 30 * 7 * 56);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(my_namespaces().is_empty());
}

/// 10 % loss on the link: the emulator drops about that share, from its
/// seeded stream (the same packets of the same run order drop the same
/// way), and TCP recovers every connection.
#[test]
fn loss_link_down_and_pure_ack_filter() {
    let Some(_k) = kernel_or_skip("loss_link_down_and_pure_ack_filter") else {
        return;
    };
    let mut spec = two_hosts(ms(2), 1, 4000);
    spec.links[0].params.loss = Probability::from_ratio(1, 10).unwrap();
    spec.clients.push(clients(
        1,
        "10.0.0.1:8080",
        "10.0.1.1",
        ArrivalProcess::Constant { rate: 200 },
        500,
    ));
    let r = run(&spec, &RunOptions::default()).expect("run");
    let f = &r.forwarder;
    let share = f.lost as f64 / f.tcp as f64;
    assert!(
        (0.05..0.16).contains(&share),
        "lost {} of {}",
        f.lost,
        f.tcp
    );
    let c = r.outcome_counts();
    // Retransmissions recover nearly all; a connection unlucky enough to
    // lose its SYN three times may still be waiting at the end.
    assert!(
        c.completed >= 97 && c.completed + c.in_flight == 100,
        "{c:?}"
    );

    // A link-down window swallows everything in it; a pure-ACK filter from
    // the clients drops their final ACKs (the request data still
    // establishes the connection on the server).
    let mut spec = two_hosts(ms(2), 1, 1500);
    spec.faults.push(Fault::LinkDown {
        link: LinkId(0),
        from: at_ms(0),
        until: at_ms(200),
    });
    spec.faults.push(Fault::Filter {
        id: FilterId(0),
        rule: PacketFilter {
            src_host: Some(sim_core::HostId(1)),
            dst_host: None,
            dst_port: Some(8080),
            src_port: None,
            match_kind: FilterMatch::PureAck,
        },
        from: at_ms(0),
        until: at_ms(1500),
    });
    spec.clients.push(clients(
        1,
        "10.0.0.1:8080",
        "10.0.1.1",
        ArrivalProcess::Constant { rate: 50 },
        600,
    ));
    let r = run(&spec, &RunOptions::default()).expect("run");
    let f = &r.forwarder;
    assert!(f.link_down >= 10, "{f:?}");
    assert!(f.filtered >= 20, "final ACKs of the 30 connections: {f:?}");
    let c = r.outcome_counts();
    assert_eq!(c.completed, 30, "{c:?}");
    // Connections started in the down window retried their SYN after 1 s.
    let late = r
        .connections
        .iter()
        .filter(|c| c.handshake.unwrap().as_nanos() > 900_000_000)
        .count();
    assert_eq!(
        late,
        10,
        "{:?}",
        r.connections
            .iter()
            .map(|c| c.handshake)
            .collect::<Vec<_>>()
    );
    assert!(my_namespaces().is_empty());
}
