//! Cost of one program call, as listener selection pays it on every SYN
//! (bench-100k makes about a million selections per run).
//!
//! - `select/newest_generation`: `policy.o`'s `select_policy` with the
//!   `newest_generation` rule (config lookup, `newest[]` lookup,
//!   `bpf_sk_select_reuseport`, the decision counter): the steering case.
//! - `select/selftest_pass`: `migrate_reuseport.o` on a SYN (returns
//!   `SK_PASS` at once): the floor of a call.
//! - `migrate/selftest`: `migrate_reuseport.o` migrating a child (cookie,
//!   hash lookup, selection, atomic counter).
//! - `declarative/newest_generation`: the Rust stand-in's work for the same
//!   decision (`sim-reuseport/src/policy.rs`, `Rule::NewestGeneration`),
//!   for scale.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sim_bpf::ctx::tcp_state;
use sim_bpf::*;
use std::net::SocketAddr;

fn fixture(name: &str) -> BpfObject {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    BpfObject::load(&std::fs::read(path).unwrap()).unwrap()
}

fn group(n: u64) -> StaticEnv {
    let local: SocketAddr = "10.0.0.1:443".parse().unwrap();
    let mut env = StaticEnv::default();
    for i in 0..n {
        env.socks.insert(
            SockHandle(i),
            SockInfo::tcp_listener(local, tcp_state::LISTEN, Some(1)),
        );
    }
    env
}

static SYN: [u8; 74] = {
    let mut b = [0u8; 74];
    b[12] = 0x08;
    b[14] = 0x45;
    b[23] = 6;
    b[46] = 0xa0;
    b[47] = 0x02;
    b
};

fn ctx(sk: u64, hash: u32, migrating: Option<SockHandle>) -> ReuseportCtx<'static> {
    ReuseportCtx {
        sk: SockHandle(sk),
        migrating_sk: migrating,
        hash,
        reuseport_id: 1,
        bind_inany: false,
        skb: migrating.is_none().then_some(Skb {
            bytes: &SYN,
            mac_offset: Some(0),
            network_offset: 14,
            transport_offset: 34,
            protocol: ctx::ETH_P_IP,
        }),
    }
}

fn bench(c: &mut Criterion) {
    // 32 listeners, the newest 16 (generation 1) published in `newest`.
    let mut env = group(32);
    let mut obj = fixture("policy.o");
    let socks = obj.map("socks").unwrap();
    let newest = obj.map("newest").unwrap();
    for i in 0..32u32 {
        obj.maps_mut()
            .update(
                socks,
                &i.to_le_bytes(),
                &(i as u64).to_le_bytes(),
                BPF_ANY,
                &env,
            )
            .unwrap();
    }
    for i in 0..16u32 {
        obj.maps_mut()
            .update(
                newest,
                &i.to_le_bytes(),
                &(16 + i).to_le_bytes(),
                BPF_ANY,
                &env,
            )
            .unwrap();
    }
    let config: Vec<u8> = [3u32, 0, 0, 0, 0, 16, 0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let cfg = obj.map("config").unwrap();
    obj.maps_mut()
        .update(cfg, &0u32.to_le_bytes(), &config, BPF_ANY, &env)
        .unwrap();
    let select = obj.program("select_policy").unwrap();
    let mut hash = 0u32;
    c.bench_function("select/newest_generation", |b| {
        b.iter(|| {
            hash = hash.wrapping_add(0x9e37_79b9);
            let o = obj.run(select, &mut env, &ctx(0, hash, None)).unwrap();
            black_box(o.verdict)
        })
    });
    let insns = obj.stats(select).insns_max;
    println!("select/newest_generation: {insns} instructions per call");

    let mut st = fixture("migrate_reuseport.o");
    let rmap = st.map("reuseport_map").unwrap();
    let mmap = st.map("migrate_map").unwrap();
    let mut env = group(5);
    for i in 0..5u32 {
        st.maps_mut()
            .update(
                rmap,
                &i.to_le_bytes(),
                &(i as u64).to_le_bytes(),
                BPF_ANY,
                &env,
            )
            .unwrap();
        let cookie = env.cookies.cookie(SockHandle(i as u64));
        st.maps_mut()
            .update(
                mmap,
                &cookie.to_le_bytes(),
                &4u32.to_le_bytes(),
                BPF_ANY,
                &env,
            )
            .unwrap();
    }
    let p = st.program("migrate_reuseport").unwrap();
    c.bench_function("select/selftest_pass", |b| {
        b.iter(|| black_box(st.run(p, &mut env, &ctx(0, 7, None)).unwrap().verdict))
    });
    let local: SocketAddr = "10.0.0.1:443".parse().unwrap();
    let peer: SocketAddr = "10.0.1.1:5555".parse().unwrap();
    env.socks.insert(
        SockHandle(100),
        SockInfo::tcp_child(local, peer, tcp_state::ESTABLISHED),
    );
    c.bench_function("migrate/selftest", |b| {
        b.iter(|| {
            black_box(
                st.run(p, &mut env, &ctx(1, 7, Some(SockHandle(100))))
                    .unwrap()
                    .verdict,
            )
        })
    });

    // The declarative rule's work for the same decision: filter the live
    // members in the socket array, find the newest generation, hash.
    let live: Vec<(u32, u32)> = (0..32).map(|i| (i, u32::from(i >= 16))).collect();
    let sockarray: Vec<u32> = (0..32).collect();
    let mut hash = 0u32;
    c.bench_function("declarative/newest_generation", |b| {
        b.iter(|| {
            hash = hash.wrapping_add(0x9e37_79b9);
            let candidates: Vec<(u32, u32)> = live
                .iter()
                .copied()
                .filter(|(l, _)| sockarray.contains(l))
                .collect();
            let newest_gen = candidates.iter().map(|&(_, g)| g).max().unwrap();
            let newest: Vec<u32> = candidates
                .iter()
                .filter(|&&(_, g)| g == newest_gen)
                .map(|&(l, _)| l)
                .collect();
            black_box(newest[reciprocal_scale(hash, newest.len() as u32) as usize])
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
