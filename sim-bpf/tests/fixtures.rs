//! The committed fixture objects, run against a fake reuseport group: each
//! reproduces the decisions of the declarative rule it twins (spec §2.7,
//! `sim-reuseport/src/policy.rs`) and the kernel selftest's program
//! (`tools/testing/selftests/bpf/progs/test_migrate_reuseport.c`).

mod common;

use common::*;
use sim_bpf::ctx::tcp_state;
use sim_bpf::*;

/// The selftest's setup (`prog_tests/migrate_reuseport.c`): 5 listeners,
/// `reuseport_map[i] = servers[i]`, `migrate_map[cookie(servers[i])] = 4`.
fn selftest(v6: bool) -> (BpfObject, StaticEnv) {
    let mut obj = fixture("migrate_reuseport.o");
    let mut env = group_env(5, v6);
    for i in 0..5u32 {
        put_sock(&mut obj, &env, "reuseport_map", i, i as u64);
        let cookie = cookie_at(&obj, &mut env, "reuseport_map", i);
        let id = obj.map("migrate_map").unwrap();
        obj.maps_mut()
            .update(
                id,
                &cookie.to_le_bytes(),
                &4u32.to_le_bytes(),
                BPF_NOEXIST,
                &env,
            )
            .unwrap();
    }
    (obj, env)
}

#[test]
fn selftest_program_migrates_every_path_to_the_mapped_target_and_counts_by_state_2_7() {
    for v6 in [false, true] {
        let (mut obj, mut env) = selftest(v6);
        let prog = obj.program("sk_reuseport/migrate").unwrap();
        // A SYN: SK_PASS without selecting (the kernel hashes).
        let o = obj.run(prog, &mut env, &selection(0, 123)).unwrap();
        assert_eq!(o.verdict, Verdict::Pass);
        for l in 0..4 {
            stop(&mut obj, &mut env, l);
        }
        let cases = [
            (tcp_state::ESTABLISHED, None, "migrated_at_close"),
            (tcp_state::SYN_RECV, None, "migrated_at_close_fastopen"),
            (tcp_state::NEW_SYN_RECV, None, "migrated_at_send_synack"),
            (
                tcp_state::NEW_SYN_RECV,
                Some(syn_skb()),
                "migrated_at_recv_ack",
            ),
        ];
        for (n, (state, skb, counter)) in cases.into_iter().enumerate() {
            for k in 0..25u64 {
                let h = add_child(&mut env, 100 + 100 * n as u64 + k, state, v6);
                let o = obj
                    .run(prog, &mut env, &migration(k % 4, h, k as u32 * 7919, skb))
                    .unwrap();
                assert_eq!(
                    o.verdict,
                    Verdict::Select(SockHandle(4)),
                    "{counter} v6={v6}"
                );
            }
            assert_eq!(global_u32(&obj, counter), 25, "{counter} v6={v6}");
        }
        assert_eq!(obj.stats(prog).selects, 100);
    }
}

#[test]
fn selftest_program_drops_unmapped_listeners_and_passes_when_the_target_left_the_array_4_3() {
    let (mut obj, mut env) = selftest(false);
    let prog = obj.program("migrate_reuseport").unwrap();
    // Listener 5 was never put in migrate_map: SK_DROP (TCPMigrateReqFailure).
    env.socks.insert(
        SockHandle(5),
        SockInfo::tcp_listener(local(false), tcp_state::CLOSE, Some(GROUP)),
    );
    let child = add_child(&mut env, 900, tcp_state::ESTABLISHED, false);
    assert_eq!(
        obj.run(prog, &mut env, &migration(5, child, 1, None))
            .unwrap()
            .verdict,
        Verdict::Drop
    );
    // The target stopped: its reuseport_map entry is gone, the selection
    // fails with -ENOENT and the program passes (hash fallback), uncounted.
    stop(&mut obj, &mut env, 0);
    stop(&mut obj, &mut env, 4);
    assert_eq!(
        obj.run(prog, &mut env, &migration(0, child, 1, None))
            .unwrap()
            .verdict,
        Verdict::Pass
    );
    assert_eq!(global_u32(&obj, "migrated_at_close"), 0);
}

// ---- policy.o: the declarative rules' twins ---------------------------

const RULE_PASS: u32 = 0;
const RULE_DROP: u32 = 1;
const RULE_PICK: u32 = 2;
const RULE_NEWEST_GENERATION: u32 = 3;
const RULE_LEAST_LOADED: u32 = 4;
const RULE_MAP_BY_CLOSING_LISTENER: u32 = 5;

#[derive(Default)]
struct Config {
    syn_rule: u32,
    migrate_rule: u32,
    syn_pick_slot: u32,
    migrate_pick_slot: u32,
    missing_drop: u32,
    newest_len: u32,
    order_len: u32,
}

fn set_config(obj: &mut BpfObject, env: &StaticEnv, c: &Config) {
    let v: Vec<u8> = [
        c.syn_rule,
        c.migrate_rule,
        c.syn_pick_slot,
        c.migrate_pick_slot,
        c.missing_drop,
        c.newest_len,
        c.order_len,
    ]
    .iter()
    .flat_map(|x| x.to_le_bytes())
    .collect();
    let id = obj.map("config").unwrap();
    obj.maps_mut()
        .update(id, &0u32.to_le_bytes(), &v, BPF_ANY, env)
        .unwrap();
}

/// `n` listeners, listener `i` in slot `i` of `socks`.
fn policy(n: u64) -> (BpfObject, StaticEnv) {
    let mut obj = fixture("policy.o");
    let env = group_env(n, false);
    for i in 0..n {
        put_sock(&mut obj, &env, "socks", i as u32, i);
    }
    (obj, env)
}

fn decisions(obj: &BpfObject, env: &mut StaticEnv, path: u32) -> [u64; 3] {
    let id = obj.map("decisions").unwrap();
    let mut out = [0; 3];
    for (d, o) in out.iter_mut().enumerate() {
        let v = obj
            .maps()
            .lookup(id, &(path * 3 + d as u32).to_le_bytes(), env)
            .unwrap();
        *o = u64::from_le_bytes(v.try_into().unwrap());
    }
    out
}

#[test]
fn pass_and_drop_twins_return_sk_pass_and_sk_drop_2_7() {
    let (mut obj, mut env) = policy(2);
    let migrate = obj.program("migrate_policy").unwrap();
    set_config(
        &mut obj,
        &env,
        &Config {
            syn_rule: RULE_PASS,
            migrate_rule: RULE_DROP,
            ..Default::default()
        },
    );
    assert_eq!(
        obj.run(migrate, &mut env, &selection(0, 5))
            .unwrap()
            .verdict,
        Verdict::Pass
    );
    stop(&mut obj, &mut env, 0);
    let c = add_child(&mut env, 50, tcp_state::ESTABLISHED, false);
    assert_eq!(
        obj.run(migrate, &mut env, &migration(0, c, 5, None))
            .unwrap()
            .verdict,
        Verdict::Drop
    );
    // The program's own counters: path syn (0) one pass, close_established (1) one drop.
    assert_eq!(decisions(&obj, &mut env, 0), [0, 1, 0]);
    assert_eq!(decisions(&obj, &mut env, 1), [0, 0, 1]);
}

#[test]
fn pick_twin_selects_its_slot_and_passes_once_the_listener_left_the_array_5_9() {
    let (mut obj, mut env) = policy(4);
    let select = obj.program("select_policy").unwrap();
    set_config(
        &mut obj,
        &env,
        &Config {
            syn_rule: RULE_PICK,
            syn_pick_slot: 2,
            ..Default::default()
        },
    );
    assert_eq!(
        obj.run(select, &mut env, &selection(0, 9)).unwrap().verdict,
        Verdict::Select(SockHandle(2))
    );
    stop(&mut obj, &mut env, 2);
    // Re-listen does not put it back (§5.9): still not selectable.
    env.socks.get_mut(&SockHandle(2)).unwrap().state = tcp_state::LISTEN;
    assert_eq!(
        obj.run(select, &mut env, &selection(0, 9)).unwrap().verdict,
        Verdict::Pass
    );
    assert_eq!(decisions(&obj, &mut env, 0), [1, 1, 0]);
}

#[test]
fn newest_generation_twin_hashes_with_reciprocal_scale_over_the_published_slots_4_1() {
    let (mut obj, mut env) = policy(8);
    let prog = obj.program("migrate_policy").unwrap();
    // Generation 1 = listeners 4..8, published in the order 5, 7, 4, 6.
    let newest = [5u32, 7, 4, 6];
    for (i, s) in newest.iter().enumerate() {
        write_u32(&mut obj, &env, "newest", i as u32, *s);
    }
    set_config(
        &mut obj,
        &env,
        &Config {
            syn_rule: RULE_NEWEST_GENERATION,
            newest_len: 4,
            ..Default::default()
        },
    );
    for k in 0..64u32 {
        let hash = k.wrapping_mul(0x9e37_79b9);
        let want = newest[reciprocal_scale(hash, 4) as usize] as u64;
        let o = obj.run(prog, &mut env, &selection(0, hash)).unwrap();
        assert_eq!(
            o.verdict,
            Verdict::Select(SockHandle(want)),
            "hash {hash:#x}"
        );
    }
    // No newest generation published: pass.
    set_config(
        &mut obj,
        &env,
        &Config {
            syn_rule: RULE_NEWEST_GENERATION,
            newest_len: 0,
            ..Default::default()
        },
    );
    assert_eq!(
        obj.run(prog, &mut env, &selection(0, 1)).unwrap().verdict,
        Verdict::Pass
    );
}

#[test]
fn least_loaded_twin_picks_the_smallest_published_load_first_on_ties_and_skips_stopped_listeners() {
    let (mut obj, mut env) = policy(4);
    let prog = obj.program("migrate_policy").unwrap();
    for (i, s) in [3u32, 1, 0, 2].iter().enumerate() {
        write_u32(&mut obj, &env, "order", i as u32, *s);
    }
    for (slot, load) in [(0u32, 2u32), (1, 5), (2, 2), (3, 7)] {
        write_u32(&mut obj, &env, "loads", slot, load);
    }
    set_config(
        &mut obj,
        &env,
        &Config {
            migrate_rule: RULE_LEAST_LOADED,
            order_len: 4,
            ..Default::default()
        },
    );
    stop(&mut obj, &mut env, 1);
    let c = add_child(&mut env, 70, tcp_state::ESTABLISHED, false);
    // Loads in order: 3→7, 1→5 (stopped), 0→2, 2→2: slot 0 is first of the ties.
    assert_eq!(
        obj.run(prog, &mut env, &migration(1, c, 0, None))
            .unwrap()
            .verdict,
        Verdict::Select(SockHandle(0))
    );
    // Slot 0 stops too: the next least loaded is 2.
    stop(&mut obj, &mut env, 0);
    assert_eq!(
        obj.run(prog, &mut env, &migration(1, c, 0, None))
            .unwrap()
            .verdict,
        Verdict::Select(SockHandle(2))
    );
}

#[test]
fn map_by_closing_listener_twin_follows_targets_and_its_missing_setting_4_3() {
    for missing_drop in [0u32, 1] {
        let (mut obj, mut env) = policy(3);
        let prog = obj.program("migrate_policy").unwrap();
        set_config(
            &mut obj,
            &env,
            &Config {
                migrate_rule: RULE_MAP_BY_CLOSING_LISTENER,
                missing_drop,
                ..Default::default()
            },
        );
        let cookie0 = cookie_at(&obj, &mut env, "socks", 0);
        let id = obj.map("targets").unwrap();
        obj.maps_mut()
            .update(
                id,
                &cookie0.to_le_bytes(),
                &2u32.to_le_bytes(),
                BPF_ANY,
                &env,
            )
            .unwrap();
        stop(&mut obj, &mut env, 0);
        stop(&mut obj, &mut env, 1);
        let req = add_child(&mut env, 80, tcp_state::NEW_SYN_RECV, false);
        let o = obj
            .run(prog, &mut env, &migration(0, req, 3, Some(syn_skb())))
            .unwrap();
        assert_eq!(o.verdict, Verdict::Select(SockHandle(2)));
        let o = obj
            .run(prog, &mut env, &migration(1, req, 3, None))
            .unwrap();
        let want = if missing_drop == 1 {
            Verdict::Drop
        } else {
            Verdict::Pass
        };
        assert_eq!(o.verdict, want);
        // Paths: final_ack (4) one pick; synack_timer (3) one pass or drop.
        assert_eq!(decisions(&obj, &mut env, 4), [1, 0, 0]);
        assert_eq!(
            decisions(&obj, &mut env, 3),
            if missing_drop == 1 {
                [0, 0, 1]
            } else {
                [0, 1, 0]
            }
        );
    }
}

#[test]
fn cancel_for_twin_drops_migrations_from_listed_listeners_only_2_7() {
    let (mut obj, mut env) = policy(3);
    let prog = obj.program("migrate_policy").unwrap();
    set_config(
        &mut obj,
        &env,
        &Config {
            migrate_rule: RULE_PASS,
            ..Default::default()
        },
    );
    let cookie1 = cookie_at(&obj, &mut env, "socks", 1);
    let id = obj.map("cancel").unwrap();
    obj.maps_mut()
        .update(
            id,
            &cookie1.to_le_bytes(),
            &1u32.to_le_bytes(),
            BPF_ANY,
            &env,
        )
        .unwrap();
    // Selection is not affected, even with listener 1 as `sk`.
    assert_eq!(
        obj.run(prog, &mut env, &selection(1, 0)).unwrap().verdict,
        Verdict::Pass
    );
    stop(&mut obj, &mut env, 0);
    stop(&mut obj, &mut env, 1);
    let c = add_child(&mut env, 60, tcp_state::SYN_RECV, false);
    assert_eq!(
        obj.run(prog, &mut env, &migration(1, c, 0, None))
            .unwrap()
            .verdict,
        Verdict::Drop
    );
    assert_eq!(
        obj.run(prog, &mut env, &migration(0, c, 0, None))
            .unwrap()
            .verdict,
        Verdict::Pass
    );
    assert_eq!(decisions(&obj, &mut env, 2), [0, 1, 1]);
}

#[test]
fn a_select_program_is_never_run_for_migration_2_7() {
    let (mut obj, mut env) = policy(2);
    let select = obj.program("select_policy").unwrap();
    assert_eq!(obj.programs()[select.0].attach_type(), AttachType::Select);
    let c = add_child(&mut env, 60, tcp_state::ESTABLISHED, false);
    let e = obj
        .run(select, &mut env, &migration(0, c, 0, None))
        .unwrap_err();
    assert!(e.to_string().contains("never called for migration"), "{e}");
}

#[test]
fn the_fixture_programs_stay_small_per_call() {
    // The selection path of the steering rule is what runs on every SYN.
    let (mut obj, mut env) = policy(4);
    let prog = obj.program("select_policy").unwrap();
    write_u32(&mut obj, &env, "newest", 0, 3);
    set_config(
        &mut obj,
        &env,
        &Config {
            syn_rule: RULE_NEWEST_GENERATION,
            newest_len: 1,
            ..Default::default()
        },
    );
    let o = obj.run(prog, &mut env, &selection(0, 77)).unwrap();
    assert_eq!(o.verdict, Verdict::Select(SockHandle(3)));
    assert!(o.insns < 80, "{} instructions", o.insns);
}

#[test]
fn a_c_subprogram_call_printk_from_rodata_and_the_host_clock_and_random_stream() {
    let mut obj = fixture("trace_call.o");
    let prog = obj.program("sk_reuseport").unwrap();
    let mut env = group_env(1, false);
    env.now_ns = 5_000_000_007;
    env.rng_state = 9;
    let o = obj.run(prog, &mut env, &selection(0, 0xc000_0000)).unwrap();
    assert_eq!(o.verdict, Verdict::Pass);
    // reciprocal_scale(0xc0000000, 4) == 3, computed in the `scaled` subprogram.
    assert_eq!(
        env.trace,
        vec![(
            "trace_call".to_string(),
            "hash 3221225472 len 32 slot 3".to_string()
        )]
    );
    let ns = u64::from_le_bytes(obj.maps().global("last_ns").unwrap().try_into().unwrap());
    assert_eq!(ns, 5_000_000_007);
    let mut expect = StaticEnv {
        rng_state: 9,
        ..Default::default()
    };
    assert_eq!(global_u32(&obj, "last_random"), expect.prandom_u32());
}

/// Rebuilds the fixtures with clang and compares them byte for byte with
/// the committed objects (the build is reproducible: `build.sh` maps the
/// source directory out of the debug info).
#[test]
fn fixtures_rebuild_identically() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let Ok(out) = std::process::Command::new("clang")
        .arg("--version")
        .output()
    else {
        println!("skipped: clang is not installed; the committed objects are used as they are");
        return;
    };
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let committed = std::fs::read_to_string(format!("{dir}/CLANG_VERSION")).unwrap();
    if version.trim() != committed.trim() {
        println!("skipped: clang is {version:?}, the objects were built with {committed:?}");
        return;
    }
    if !std::path::Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        println!("skipped: libbpf headers (<bpf/bpf_helpers.h>) are not installed");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("sim-bpf-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let st = std::process::Command::new("bash")
        .arg(format!("{dir}/build.sh"))
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(st.success(), "build.sh failed");
    for o in [
        "migrate_reuseport.o",
        "policy.o",
        "trace_call.o",
        "ctx_probe.o",
    ] {
        let a = std::fs::read(format!("{dir}/{o}")).unwrap();
        let b = std::fs::read(tmp.join(o)).unwrap();
        assert!(
            a == b,
            "{o}: the committed object differs from a rebuild of its source"
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}
