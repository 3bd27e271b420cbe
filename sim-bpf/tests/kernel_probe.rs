//! The probe program (`fixtures/ctx_probe.c`) records every context and
//! `bpf_sock` field it can read. `probe/run.sh` ran it in Linux 6.18.44 on
//! loopback (listener selection for SYNs; migration of `ESTABLISHED`
//! children when their listener closes); the values below are that
//! measurement (docs/linux-semantics/sk-reuseport-program-context.md). The
//! simulator, given the same sockets and packets, must record the same.

mod common;

use common::*;
use sim_bpf::ctx::{tcp_state, ETH_P_IP, ETH_P_IPV6};
use sim_bpf::*;
use std::net::SocketAddr;

const FIELDS: [&str; 33] = [
    "calls",
    "len",
    "eth_protocol",
    "eth_protocol_hi16",
    "ip_protocol",
    "bind_inany",
    "hash_nonzero",
    "data_len",
    "sk_state",
    "sk_family",
    "sk_src_port",
    "sk_protocol",
    "sk_type",
    "sk_src_ip4",
    "sk_dst_ip4",
    "sk_dst_port",
    "m_state",
    "m_family",
    "m_src_port",
    "m_dst_port",
    "m_src_ip4",
    "m_dst_ip4",
    "m_src_ip6_3",
    "sk_src_ip6_2",
    "sk_src_ip6_3",
    "m_src_ip6_2",
    "m_dst_ip6_2",
    "m_dst_ip6_3",
    "load_bytes",
    "load_rel_net",
    "load_rel_mac",
    "first4",
    "net_first4",
];

/// The SYN Linux sends on loopback from port `sport` to 40123, as
/// [`TcpSegment`] writes it (40-byte TCP header: `len` 40).
fn syn_frame(v6: bool, sport: u16) -> Vec<u8> {
    let seg = TcpSegment {
        src: addr(v6, sport),
        dst: addr(v6, 40123),
        seq: 1,
        ack: 0,
        flags: frame::tcp_flags::SYN,
        window: 65495,
        options: TcpOptions::Syn {
            mss: 65495,
            wscale: 7,
            tsval: 1,
        },
        payload_len: 0,
    };
    let mut buf = Vec::new();
    seg.write(&mut buf).unwrap();
    buf
}

fn addr(v6: bool, port: u16) -> SocketAddr {
    if v6 {
        format!("[::1]:{port}").parse().unwrap()
    } else {
        format!("127.0.0.1:{port}").parse().unwrap()
    }
}

/// Runs the probe once for `ctx` and returns its record for the path.
fn record(
    v6: bool,
    frame: Option<&[u8]>,
    migrating: Option<u8>,
    remote_port: u16,
) -> Vec<(&'static str, u32)> {
    let mut obj = fixture("ctx_probe.o");
    let prog = obj.program("probe").unwrap();
    let mut env = StaticEnv::default();
    let state = if migrating.is_some() {
        tcp_state::CLOSE
    } else {
        tcp_state::LISTEN
    };
    env.socks.insert(
        SockHandle(0),
        SockInfo::tcp_listener(addr(v6, 40123), state, Some(1)),
    );
    let m = migrating.map(|st| {
        env.socks.insert(
            SockHandle(1),
            SockInfo::tcp_child(addr(v6, 40123), addr(v6, remote_port), st),
        );
        SockHandle(1)
    });
    let skb = frame.map(|b| Skb {
        bytes: b,
        mac_offset: Some(0),
        network_offset: 14,
        transport_offset: 14 + if v6 { 40 } else { 20 },
        protocol: if v6 { ETH_P_IPV6 } else { ETH_P_IP },
    });
    let c = ReuseportCtx {
        sk: SockHandle(0),
        migrating_sk: m,
        hash: 0x1234_5678,
        reuseport_id: 1,
        bind_inany: false,
        skb,
    };
    obj.run(prog, &mut env, &c).unwrap();
    let key: u32 = if migrating.is_some() { 1 } else { 0 };
    let v = obj
        .maps()
        .lookup(obj.map("rec").unwrap(), &key.to_le_bytes(), &mut env)
        .unwrap();
    FIELDS
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            (
                n,
                u32::from_le_bytes(v[4 * i..4 * i + 4].try_into().unwrap()),
            )
        })
        .collect()
}

fn check(got: Vec<(&'static str, u32)>, measured: &[(&str, u32)], what: &str) {
    for (name, want) in measured {
        let g = got.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(
            g, *want,
            "{what}: {name}: simulator {g:#x}, kernel {want:#x}"
        );
    }
}

const EFAULT: u32 = (-14i32) as u32;

#[test]
fn the_probe_sees_in_the_simulator_what_it_saw_in_the_kernel() {
    // Listener selection for a SYN (kernel: first4 0xbb9c74e7, source port 0xe774).
    let frame = syn_frame(false, 0xe774);
    check(
        record(false, Some(&frame), None, 0),
        &[
            ("calls", 1),
            ("len", 40),
            ("eth_protocol", 0x8),
            ("eth_protocol_hi16", 0x8),
            ("ip_protocol", 6),
            ("bind_inany", 0),
            ("hash_nonzero", 1),
            ("data_len", 40),
            ("sk_state", 10),
            ("sk_family", 2),
            ("sk_src_port", 40123),
            ("sk_protocol", 6),
            ("sk_type", 1),
            ("sk_src_ip4", 0x100007f),
            ("sk_dst_ip4", 0),
            ("sk_dst_port", 0),
            ("m_state", 0),
            ("sk_src_ip6_2", 0),
            ("sk_src_ip6_3", 0),
            ("load_bytes", 0),
            ("first4", 0xbb9c74e7),
            ("load_rel_net", 0),
            ("net_first4", 0x3c000045),
            ("load_rel_mac", 0),
        ],
        "IPv4 SYN",
    );
    // Migration of an ESTABLISHED child at close (kernel: dst_port 0x6ae7).
    check(
        record(false, None, Some(tcp_state::ESTABLISHED), 0xe76a),
        &[
            ("len", 0),
            ("eth_protocol", 0),
            ("eth_protocol_hi16", 0),
            ("ip_protocol", 6),
            ("data_len", 0),
            ("sk_state", 7),
            ("sk_family", 2),
            ("sk_src_port", 40123),
            ("sk_src_ip4", 0x100007f),
            ("m_state", 1),
            ("m_family", 2),
            ("m_src_port", 40123),
            ("m_dst_port", 0x6ae7),
            ("m_src_ip4", 0x100007f),
            ("m_dst_ip4", 0x100007f),
            ("m_src_ip6_3", 0x100007f),
            ("sk_src_ip6_2", 0),
            ("sk_src_ip6_3", 0),
            ("m_src_ip6_2", 0xffff0000),
            ("m_dst_ip6_2", 0xffff0000),
            ("m_dst_ip6_3", 0x100007f),
            ("load_bytes", EFAULT),
            ("load_rel_net", EFAULT),
            ("load_rel_mac", EFAULT),
            ("first4", 0),
            ("net_first4", 0),
        ],
        "IPv4 close",
    );
    let frame = syn_frame(true, 0xaab6);
    check(
        record(true, Some(&frame), None, 0),
        &[
            ("len", 40),
            ("eth_protocol", 0xdd86),
            ("eth_protocol_hi16", 0xdd86),
            ("data_len", 40),
            ("sk_state", 10),
            ("sk_family", 10),
            ("sk_src_ip4", 0x600007f),
            ("sk_src_ip6_2", 0),
            ("sk_src_ip6_3", 0x1000000),
            ("load_bytes", 0),
            ("first4", 0xbb9cb6aa),
            ("load_rel_net", 0),
            ("load_rel_mac", 0),
        ],
        "IPv6 SYN",
    );
    check(
        record(true, None, Some(tcp_state::ESTABLISHED), 0xaab6),
        &[
            ("len", 0),
            ("sk_state", 7),
            ("sk_family", 10),
            ("sk_src_ip4", 0x600007f),
            ("m_state", 1),
            ("m_family", 10),
            ("m_src_port", 40123),
            ("m_dst_port", 0xb6aa),
            ("m_src_ip4", 0x600007f),
            ("m_dst_ip4", 0x600007f),
            ("m_src_ip6_3", 0x1000000),
            ("sk_src_ip6_3", 0x1000000),
            ("m_src_ip6_2", 0),
            ("m_dst_ip6_2", 0),
            ("m_dst_ip6_3", 0x1000000),
            ("load_bytes", EFAULT),
        ],
        "IPv6 close",
    );
}
