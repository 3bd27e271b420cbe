//! Namespace creation, configuration and cleanup on the real kernel.

mod common;

use std::collections::BTreeMap;

use sim_kernel::hostnet::build_host;
use sim_kernel::netns::{self, Netns};
use sim_kernel::{counters, sysctl, HostSpec};

#[test]
fn host_namespace_is_configured_and_removed() {
    let Some(_k) = common::kernel_or_skip("host_namespace_is_configured_and_removed") else {
        return;
    };
    let host_somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    let host = HostSpec {
        name: "srv/1".into(),
        addresses: vec!["10.99.0.1".parse().unwrap(), "fd99::1".parse().unwrap()],
        sysctls: BTreeMap::from([
            ("tcp_migrate_req".to_string(), 1),
            ("somaxconn".to_string(), 77),
        ]),
    };
    let net = build_host(&host, true).expect("build host");
    let name = net.ns.name().to_owned();
    assert!(name.starts_with(&netns::process_tag()), "{name}");
    assert!(name.ends_with("srv_1"), "{name}");
    assert!(common::my_namespaces().contains(&name));
    if let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&name), "ip netns list: {text}");
    }

    let (migrate, somax, c, v4, v6) = net
        .ns
        .run_in(|| {
            let bind = |a: &str| std::net::TcpListener::bind(a).is_ok();
            Ok((
                sysctl::read_sysctl("tcp_migrate_req")?,
                sysctl::read_sysctl("somaxconn")?,
                counters::read_counters()?,
                bind("10.99.0.1:0"),
                bind("[fd99::1]:0"),
            ))
        })
        .unwrap();
    assert_eq!((migrate, somax), (1, 77));
    assert!(
        c.contains_key("TcpExtListenOverflows"),
        "{:?}",
        c.keys().take(5).collect::<Vec<_>>()
    );
    assert!(c.contains_key("TcpOutRsts"));
    assert!(v4 && v6, "addresses usable at once (IPv6 without DAD)");
    // The host's own namespace is untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap(),
        host_somaxconn
    );
    assert!(std::net::TcpListener::bind("10.99.0.1:0").is_err());

    drop(net);
    assert!(!common::my_namespaces().contains(&name), "removed on drop");
}

#[test]
fn leftovers_of_dead_processes_are_removed() {
    let Some(_k) = common::kernel_or_skip("leftovers_of_dead_processes_are_removed") else {
        return;
    };
    // A pid that existed and is gone now.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!("rpsim-{dead}.1-0-crashed");
    let planted = Netns::create_named(&stale).expect("plant a leftover");
    std::mem::forget(planted); // as if the process had crashed
                               // One of ours, alive: must stay.
    let live = Netns::create("alive").unwrap();

    let removed = netns::remove_leftovers();
    assert!(removed.contains(&stale), "{removed:?}");
    assert!(!removed.iter().any(|n| n == live.name()));
    let left = netns::list_ours();
    assert!(!left.contains(&stale));
    assert!(left.iter().any(|n| n == live.name()));
    drop(live);
}
