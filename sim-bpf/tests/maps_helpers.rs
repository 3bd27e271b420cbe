//! Maps through the user-space API and from programs, with the kernel's
//! errno values, and each helper.

mod common;

use common::*;
use sim_bpf::ctx::tcp_state;
use sim_bpf::insn::*;
use sim_bpf::*;

fn set(defs: Vec<MapDef>) -> MapSet {
    MapSet::new(defs).unwrap()
}

fn k(i: u32) -> [u8; 4] {
    i.to_le_bytes()
}

#[test]
fn array_user_space_errnos_arraymap_c() {
    let env = group_env(1, false);
    let mut m = set(vec![MapDef::new("a", MapType::Array, 4, 4, 2)]);
    let a = MapId(0);
    assert_eq!(m.update(a, &k(2), &k(1), BPF_ANY, &env), Err(Errno::TooBig));
    assert_eq!(
        m.update(a, &k(0), &k(1), BPF_NOEXIST, &env),
        Err(Errno::Exist),
        "all elements exist"
    );
    assert_eq!(m.update(a, &k(0), &k(5), BPF_EXIST, &env), Ok(()));
    assert_eq!(m.update(a, &k(0), &k(5), 3, &env), Err(Errno::Inval));
    assert_eq!(
        m.update(a, &[0; 8], &k(5), BPF_ANY, &env),
        Err(Errno::Inval),
        "key size"
    );
    assert_eq!(m.delete_user(a, &k(0)), Err(Errno::Inval));
    let mut envm = env.clone();
    assert_eq!(m.lookup(a, &k(0), &mut envm), Ok(k(5).to_vec()));
    assert_eq!(m.lookup(a, &k(7), &mut envm), Err(Errno::NoEnt));
    // PERCPU_ARRAY with one CPU: values are round_up(value_size, 8) bytes to user space.
    let mut p = set(vec![MapDef::new("p", MapType::PercpuArray, 4, 4, 1)]);
    p.update(MapId(0), &k(0), &[1, 2, 3, 4, 0, 0, 0, 0], BPF_ANY, &env)
        .unwrap();
    assert_eq!(
        p.lookup(MapId(0), &k(0), &mut envm).unwrap(),
        vec![1, 2, 3, 4, 0, 0, 0, 0]
    );
}

#[test]
fn hash_user_space_errnos_hashtab_c() {
    let env = group_env(1, false);
    let mut envm = env.clone();
    let mut m = set(vec![MapDef::new("h", MapType::Hash, 8, 4, 2)]);
    let h = MapId(0);
    let key = |x: u64| x.to_le_bytes();
    assert_eq!(
        m.update(h, &key(1), &k(10), BPF_EXIST, &env),
        Err(Errno::NoEnt)
    );
    assert_eq!(m.update(h, &key(1), &k(10), BPF_NOEXIST, &env), Ok(()));
    assert_eq!(
        m.update(h, &key(1), &k(11), BPF_NOEXIST, &env),
        Err(Errno::Exist)
    );
    assert_eq!(m.update(h, &key(2), &k(20), BPF_ANY, &env), Ok(()));
    assert_eq!(
        m.update(h, &key(3), &k(30), BPF_ANY, &env),
        Err(Errno::TooBig),
        "full"
    );
    assert_eq!(
        m.update(h, &key(2), &k(21), BPF_ANY, &env),
        Ok(()),
        "a full map still updates existing keys"
    );
    assert_eq!(m.delete_user(h, &key(9)), Err(Errno::NoEnt));
    assert_eq!(m.delete_user(h, &key(1)), Ok(()));
    assert_eq!(m.lookup(h, &key(1), &mut envm), Err(Errno::NoEnt));
    assert_eq!(m.update(h, &key(3), &k(30), BPF_ANY, &env), Ok(()));
    assert_eq!(m.lookup(h, &key(2), &mut envm), Ok(k(21).to_vec()));
    // Dumps list elements in slot order: key 3 reused key 1's slot.
    let d = m.dump(&mut envm);
    let keys: Vec<&str> = d[0].entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["03 00 00 00 00 00 00 00", "02 00 00 00 00 00 00 00"]);
}

#[test]
fn reuseport_sockarray_update_checks_reuseport_array_c() {
    let mut env = group_env(3, false);
    // Handle 3: a listener with no reuseport group; 4: stopped (unhashed).
    env.socks.insert(
        SockHandle(3),
        SockInfo::tcp_listener(local(false), tcp_state::LISTEN, None),
    );
    env.socks.insert(
        SockHandle(4),
        SockInfo::tcp_listener(local(false), tcp_state::CLOSE, Some(GROUP)),
    );
    let mut m = set(vec![
        MapDef::new("ra", MapType::ReuseportSockarray, 4, 8, 4),
        MapDef::new("rb", MapType::ReuseportSockarray, 4, 4, 4),
    ]);
    let (ra, rb) = (MapId(0), MapId(1));
    let fd = |h: u64| h.to_le_bytes();
    assert_eq!(
        m.update(ra, &k(4), &fd(0), BPF_ANY, &env),
        Err(Errno::TooBig)
    );
    assert_eq!(
        m.update(ra, &k(0), &fd(99), BPF_ANY, &env),
        Err(Errno::BadF)
    );
    assert_eq!(
        m.update(ra, &k(0), &fd(1 << 31), BPF_ANY, &env),
        Err(Errno::Inval),
        "fd > S32_MAX"
    );
    assert_eq!(
        m.update(ra, &k(0), &fd(0), maps::BPF_F_LOCK, &env),
        Err(Errno::Inval)
    );
    assert_eq!(
        m.update(ra, &k(0), &fd(3), BPF_ANY, &env),
        Err(Errno::Inval),
        "no reuseport group"
    );
    assert_eq!(
        m.update(ra, &k(0), &fd(4), BPF_ANY, &env),
        Err(Errno::Inval),
        "not hashed"
    );
    assert_eq!(
        m.update(ra, &k(0), &fd(0), BPF_EXIST, &env),
        Err(Errno::NoEnt)
    );
    assert_eq!(m.update(ra, &k(0), &fd(0), BPF_NOEXIST, &env), Ok(()));
    assert_eq!(
        m.update(ra, &k(0), &fd(1), BPF_NOEXIST, &env),
        Err(Errno::Exist)
    );
    assert_eq!(
        m.update(ra, &k(1), &fd(0), BPF_ANY, &env),
        Err(Errno::Busy),
        "sk_user_data is taken"
    );
    assert_eq!(
        m.update(rb, &k(1), &k(0), BPF_ANY, &env),
        Err(Errno::Busy),
        "even in another array"
    );
    assert_eq!(m.update(rb, &k(1), &k(1), BPF_ANY, &env), Ok(()));
    // User space reads the socket cookie; a 4-byte value cannot hold it.
    let c0 = env.cookies.cookie(SockHandle(0));
    assert_eq!(m.lookup(ra, &k(0), &mut env), Ok(c0.to_le_bytes().to_vec()));
    assert_eq!(m.lookup(rb, &k(1), &mut env), Err(Errno::NoSpc));
    assert_eq!(m.lookup(ra, &k(2), &mut env), Err(Errno::NoEnt));
    // Replacing slot 0 frees socket 0 for another slot.
    assert_eq!(m.update(ra, &k(0), &fd(2), BPF_ANY, &env), Ok(()));
    assert_eq!(m.update(ra, &k(3), &fd(0), BPF_ANY, &env), Ok(()));
    assert_eq!(m.delete_user(ra, &k(9)), Err(Errno::TooBig));
    assert_eq!(m.delete_user(ra, &k(1)), Err(Errno::NoEnt));
    // bpf_sk_reuseport_detach when the listener stops.
    assert_eq!(m.remove_socket(SockHandle(0)), 1);
    assert_eq!(m.socket_at(ra, &k(3)), None);
    assert_eq!(
        m.update(ra, &k(1), &fd(0), BPF_ANY, &env),
        Ok(()),
        "free again after detach"
    );
}

#[test]
fn sockmap_and_sockhash_update_checks_sock_map_c() {
    let mut env = group_env(2, false);
    let est = add_child(&mut env, 10, tcp_state::ESTABLISHED, false);
    let req = add_child(&mut env, 11, tcp_state::NEW_SYN_RECV, false);
    let closing = add_child(&mut env, 12, tcp_state::CLOSE_WAIT, false);
    let mut m = set(vec![
        MapDef::new("sm", MapType::SockMap, 4, 8, 2),
        MapDef::new("sh", MapType::SockHash, 4, 8, 1),
        MapDef::new("ra", MapType::ReuseportSockarray, 4, 8, 2),
    ]);
    let (sm, sh, ra) = (MapId(0), MapId(1), MapId(2));
    let fd = |h: SockHandle| h.0.to_le_bytes();
    assert_eq!(m.update(sm, &k(0), &fd(est), BPF_ANY, &env), Ok(()));
    assert_eq!(
        m.update(sm, &k(1), &fd(SockHandle(0)), BPF_ANY, &env),
        Ok(()),
        "listeners are allowed"
    );
    assert_eq!(
        m.update(sm, &k(0), &fd(req), BPF_ANY, &env),
        Err(Errno::Inval),
        "not a full socket"
    );
    assert_eq!(
        m.update(sm, &k(0), &fd(closing), BPF_ANY, &env),
        Err(Errno::OpNotSupp)
    );
    assert_eq!(
        m.update(sm, &k(2), &fd(est), BPF_ANY, &env),
        Err(Errno::TooBig)
    );
    assert_eq!(
        m.update(sh, &k(5), &fd(est), BPF_ANY, &env),
        Ok(()),
        "a socket may be in several sockmaps"
    );
    assert_eq!(
        m.update(sh, &k(6), &fd(est), BPF_ANY, &env),
        Err(Errno::TooBig),
        "sockhash full"
    );
    assert_eq!(
        m.update(ra, &k(0), &fd(SockHandle(0)), BPF_ANY, &env),
        Err(Errno::Busy),
        "has a psock"
    );
    assert_eq!(
        m.update(ra, &k(0), &fd(SockHandle(1)), BPF_ANY, &env),
        Ok(())
    );
    assert_eq!(
        m.update(sm, &k(0), &fd(SockHandle(1)), BPF_ANY, &env),
        Err(Errno::Busy),
        "in a reuseport array"
    );
    assert_eq!(m.delete_user(sm, &k(1)), Ok(()));
    assert_eq!(
        m.delete_user(sm, &k(1)),
        Err(Errno::Inval),
        "sock_map_delete_elem: EINVAL for an empty slot"
    );
    assert_eq!(m.delete_user(sm, &k(7)), Err(Errno::Inval));
    assert_eq!(m.delete_user(sh, &k(7)), Err(Errno::NoEnt));
    assert_eq!(m.remove_socket(est), 2, "unhash removes it from every map");
}

#[test]
fn map_in_map_user_space_and_program_lookup() {
    let env = group_env(1, false);
    let mut outer = MapDef::new("outer", MapType::ArrayOfMaps, 4, 4, 2);
    outer.inner = Some(Box::new(MapDef::new("inner", MapType::Array, 4, 8, 4)));
    let inner = MapDef::new("inner0", MapType::Array, 4, 8, 4);
    let wrong = MapDef::new("wrong", MapType::Array, 4, 4, 4);
    // r0 = *(u64 *)lookup(lookup(outer, 1), 3)
    let code = prog![
        st(BPF_W, 10, -4, 1),
        mov64x(2, 10),
        alu64(BPF_ADD, 2, -4),
        ld_map(1, 0),
        call(1),
        jmp(BPF_JNE, 0, 0, 2),
        mov64(0, -1),
        exit(),
        mov64x(1, 0),
        st(BPF_W, 10, -4, 3),
        mov64x(2, 10),
        alu64(BPF_ADD, 2, -4),
        call(1),
        ldx(BPF_DW, 0, 0, 0),
        exit(),
    ];
    let mut obj = asm(code, vec![outer, inner, wrong]).unwrap();
    let mut env2 = env.clone();
    assert_eq!(
        obj.run(ProgId(0), &mut env2, &selection(0, 0)).unwrap().ret,
        u64::MAX,
        "empty outer slot: NULL"
    );
    let m = obj.maps_mut();
    assert_eq!(
        m.update(MapId(0), &k(1), &k(2), BPF_ANY, &env),
        Err(Errno::Inval),
        "bpf_map_meta_equal"
    );
    assert_eq!(m.update(MapId(0), &k(1), &k(1), BPF_ANY, &env), Ok(()));
    m.update(MapId(1), &k(3), &0xabcdu64.to_le_bytes(), BPF_ANY, &env)
        .unwrap();
    assert_eq!(
        m.lookup(MapId(0), &k(1), &mut env2),
        Ok(k(1).to_vec()),
        "user space reads the inner map id"
    );
    assert_eq!(
        obj.run(ProgId(0), &mut env2, &selection(0, 0)).unwrap().ret,
        0xabcd
    );
}

/// `r0 = helper(r1 = map 0, r2 = &key(fp-4), r3 = &value(fp-16), r4 = flags)`.
fn update_prog(key: i32, value: i64, flags: i32) -> Vec<RawInsn> {
    prog![
        st(BPF_W, 10, -4, key),
        ld64(3, value as u64),
        stx(BPF_DW, 10, 3, -16),
        ld_map(1, 0),
        mov64x(2, 10),
        alu64(BPF_ADD, 2, -4),
        mov64x(3, 10),
        alu64(BPF_ADD, 3, -16),
        mov64(4, flags),
        call(2),
        exit(),
    ]
}

#[test]
fn helper_map_update_and_delete_return_negative_errno() {
    let arr = || vec![MapDef::new("a", MapType::Array, 4, 8, 2)];
    assert_eq!(eval_with(update_prog(1, 7, 0), arr()).unwrap(), 0);
    assert_eq!(
        eval_with(update_prog(2, 7, 0), arr()).unwrap() as i64,
        -7,
        "-E2BIG"
    );
    assert_eq!(
        eval_with(update_prog(0, 7, 1), arr()).unwrap() as i64,
        -17,
        "-EEXIST"
    );
    let del = prog![
        st(BPF_W, 10, -4, 0),
        ld_map(1, 0),
        mov64x(2, 10),
        alu64(BPF_ADD, 2, -4),
        call(3),
        exit()
    ];
    assert_eq!(
        eval_with(del.clone(), arr()).unwrap() as i64,
        -22,
        "-EINVAL: arrays cannot delete"
    );
    let hash = || vec![MapDef::new("h", MapType::Hash, 4, 8, 1)];
    assert_eq!(eval_with(del, hash()).unwrap() as i64, -2, "-ENOENT");
    assert_eq!(
        eval_with(update_prog(0, 7, 2), hash()).unwrap() as i64,
        -2,
        "BPF_EXIST on a missing key"
    );
    // The update is visible to user space.
    let mut obj = asm(update_prog(1, 0x55, 0), arr()).unwrap();
    let mut env = group_env(1, false);
    obj.run(ProgId(0), &mut env, &selection(0, 0)).unwrap();
    assert_eq!(
        obj.maps().lookup(MapId(0), &k(1), &mut env).unwrap(),
        0x55u64.to_le_bytes().to_vec()
    );
}

#[test]
fn helpers_the_verifier_would_refuse_on_socket_maps_are_errors_naming_the_helper() {
    let lookup = prog![
        st(BPF_W, 10, -4, 0),
        ld_map(1, 0),
        mov64x(2, 10),
        alu64(BPF_ADD, 2, -4),
        call(1),
        exit()
    ];
    for (t, want) in [
        (MapType::ReuseportSockarray, "only bpf_sk_select_reuseport"),
        (MapType::SockMap, "bpf_sk_release"),
    ] {
        let e = eval_with(lookup.clone(), vec![MapDef::new("s", t, 4, 8, 2)]).unwrap_err();
        assert!(
            e.to_string().contains("bpf_map_lookup_elem") && e.to_string().contains(want),
            "{e}"
        );
        assert_eq!(e.insn, 5);
    }
    let select = prog![
        st(BPF_W, 10, -4, 0),
        ld_map(2, 0),
        mov64x(3, 10),
        alu64(BPF_ADD, 3, -4),
        mov64(4, 0),
        call(82),
        exit()
    ];
    let e = eval_with(select, vec![MapDef::new("a", MapType::Array, 4, 8, 2)]).unwrap_err();
    assert!(
        e.to_string()
            .contains("bpf_sk_select_reuseport: map type array"),
        "{e}"
    );
}

/// `r0 = bpf_sk_select_reuseport(ctx, map 0, &slot, 0)`, then SK_PASS;
/// the return value goes to the trace via r0 of a second program.
fn select_prog(slots: &[i32]) -> Vec<RawInsn> {
    let mut code = prog![mov64x(6, 1), mov64(7, 0)];
    for s in slots {
        code.extend(prog![
            st(BPF_W, 10, -4, *s),
            mov64x(1, 6),
            ld_map(2, 0),
            mov64x(3, 10),
            alu64(BPF_ADD, 3, -4),
            mov64(4, 0),
            call(82),
            mov64x(7, 0),
        ]);
    }
    // r0 = SK_PASS; keep the last error in the high half of r0.
    code.extend(prog![
        mov64x(0, 7),
        alu64(BPF_LSH, 0, 32),
        alu64(BPF_OR, 0, 1),
        exit()
    ]);
    code
}

#[test]
fn sk_select_reuseport_errors_and_last_success_wins_filter_c() {
    let mut env = group_env(3, false);
    // 3: same group id? no: group 8, same protocol and family -> EBADFD.
    env.socks.insert(
        SockHandle(3),
        SockInfo::tcp_listener(local(false), tcp_state::LISTEN, Some(8)),
    );
    // 4: group 8, IPv6 -> EAFNOSUPPORT. 5: group 8, UDP -> EPROTOTYPE.
    env.socks.insert(
        SockHandle(4),
        SockInfo::tcp_listener(local(true), tcp_state::LISTEN, Some(8)),
    );
    let mut udp = SockInfo::tcp_listener(local(false), tcp_state::LISTEN, Some(8));
    udp.protocol = 17;
    env.socks.insert(SockHandle(5), udp);
    let est = add_child(&mut env, 10, tcp_state::ESTABLISHED, false);
    let run = |slots: &[i32], t: MapType, env: &mut StaticEnv| {
        let mut obj = asm(select_prog(slots), vec![MapDef::new("s", t, 4, 8, 8)]).unwrap();
        for (slot, h) in [(0u32, 0u64), (3, 3), (4, 4), (5, 5)] {
            obj.maps_mut()
                .update(MapId(0), &k(slot), &h.to_le_bytes(), BPF_ANY, env)
                .unwrap();
        }
        if t == MapType::SockMap {
            obj.maps_mut()
                .update(MapId(0), &k(6), &est.0.to_le_bytes(), BPF_ANY, env)
                .unwrap();
        }
        let o = obj.run(ProgId(0), env, &selection(0, 0)).unwrap();
        ((o.ret >> 32) as i32, o.verdict)
    };
    let sa = MapType::ReuseportSockarray;
    assert_eq!(run(&[0], sa, &mut env), (0, Verdict::Select(SockHandle(0))));
    assert_eq!(
        run(&[1], sa, &mut env),
        (-2, Verdict::Pass),
        "-ENOENT: empty slot"
    );
    assert_eq!(
        run(&[9], sa, &mut env),
        (-2, Verdict::Pass),
        "-ENOENT: beyond max_entries"
    );
    assert_eq!(
        run(&[3], sa, &mut env),
        (-77, Verdict::Pass),
        "-EBADFD: another group"
    );
    assert_eq!(
        run(&[4], sa, &mut env),
        (-97, Verdict::Pass),
        "-EAFNOSUPPORT"
    );
    assert_eq!(run(&[5], sa, &mut env), (-91, Verdict::Pass), "-EPROTOTYPE");
    assert_eq!(
        run(&[0, 3], sa, &mut env),
        (-77, Verdict::Select(SockHandle(0))),
        "a failure keeps the earlier pick"
    );
    assert_eq!(
        run(&[6], MapType::SockMap, &mut env),
        (-22, Verdict::Pass),
        "-EINVAL: sockmap socket without a group"
    );
    assert_eq!(
        run(&[0], MapType::SockMap, &mut env),
        (0, Verdict::Select(SockHandle(0)))
    );
}

#[test]
fn socket_cookie_clock_and_random_helpers_come_from_the_host() {
    let mut env = group_env(2, false);
    env.now_ns = 123_456_789;
    env.rng_state = 42;
    // r0 = cookie(sk) + cookie(NULL)
    let code = prog![
        ldx(BPF_DW, 1, 1, 40),
        call(46),
        mov64x(6, 0),
        mov64(1, 0),
        call(46),
        alu64x(BPF_ADD, 0, 6),
        exit()
    ];
    let mut obj = asm(code, vec![]).unwrap();
    let c = obj.run(ProgId(0), &mut env, &selection(1, 0)).unwrap().ret;
    assert_eq!(c, env.cookies.cookie(SockHandle(1)));
    assert_eq!(eval_time(&mut env, 5), 123_456_789);
    assert_eq!(eval_time(&mut env, 160), 123_456_789);
    let a = eval_time(&mut env, 7);
    let b = eval_time(&mut env, 7);
    assert_ne!(a, b);
    let mut env2 = group_env(2, false);
    env2.rng_state = 42;
    assert_eq!(
        eval_time(&mut env2, 7),
        a,
        "the same seed gives the same stream"
    );
}

fn eval_time(env: &mut StaticEnv, helper: i32) -> u64 {
    let mut obj = asm(prog![call(helper), exit()], vec![]).unwrap();
    obj.run(ProgId(0), env, &selection(0, 0)).unwrap().ret
}

/// `(r0 of load(ctx, off, fp-8, len[, start]), the first 4 bytes at fp-8)`.
fn load_bytes(off: i32, len: i32, start: Option<i32>, c: &ReuseportCtx<'_>) -> (i64, u64) {
    let mut code = prog![
        st(BPF_DW, 10, -8, -1),
        mov64(2, off),
        mov64x(3, 10),
        alu64(BPF_ADD, 3, -8),
        mov64(4, len)
    ];
    match start {
        Some(s) => code.extend(prog![mov64(5, s), call(68)]),
        None => code.push(call(26)),
    }
    code.extend(prog![
        ldx(BPF_W, 1, 10, -8),
        alu64(BPF_LSH, 0, 32),
        alu64x(BPF_OR, 0, 1),
        exit()
    ]);
    let mut obj = asm(code, vec![]).unwrap();
    let mut env = group_env(2, false);
    let r = obj.run(ProgId(0), &mut env, c).unwrap().ret;
    ((r as i64) >> 32, r & 0xffff_ffff)
}

#[test]
fn skb_load_bytes_and_relative_read_the_packet_or_zero_and_efault() {
    let c = selection(0, 0);
    // TCP header: source port 50000, destination port 40000 (network order).
    let (r, first) = load_bytes(0, 8, None, &c);
    assert_eq!(
        (r, first),
        (0, u32::from_le_bytes([0xc3, 0x50, 0x9c, 0x40]) as u64)
    );
    let (r, _) = load_bytes(28, 4, None, &c);
    assert_eq!(r, 0, "the last 4 of the 32 bytes");
    let (r, first) = load_bytes(30, 4, None, &c);
    assert_eq!((r, first), (-14, 0), "-EFAULT, destination zeroed");
    let (r, _) = load_bytes(-1, 4, None, &c);
    assert_eq!(r, -14, "offset > INT_MAX");
    // Relative to the network header (0x45: IPv4, 20 bytes) and the MAC header (ethertype at 12).
    assert_eq!(load_bytes(0, 4, Some(1), &c), (0, 0x45));
    assert_eq!(load_bytes(12, 4, Some(0), &c), (0, 0x0045_0008));
    let (r, _) = load_bytes(0, 4, Some(2), &c);
    assert_eq!(r, -14, "unknown start_header");
    let (r, _) = load_bytes(60, 8, Some(0), &c);
    assert_eq!(r, -14, "beyond the tail");
    // No packet on the timer and close paths (`alloc_skb(0)`).
    let mut env = group_env(2, false);
    let child = add_child(&mut env, 9, tcp_state::ESTABLISHED, false);
    let c = migration(0, child, 0, None);
    assert_eq!(load_bytes(0, 4, None, &c).0, -14);
    assert_eq!(load_bytes(0, 4, Some(0), &c).0, -14, "no MAC header");
    assert_eq!(load_bytes(0, 4, Some(1), &c).0, -14);
}

#[test]
fn trace_printk_formats_into_the_host_trace() {
    let mut fmt = b"hash %u sk %llx from %pI4 %s%%\0".to_vec();
    let fmt_len = fmt.len() as i32;
    fmt.extend_from_slice(b"ok\0\0");
    let mut ro = MapDef::new(".rodata", MapType::Array, 4, fmt.len() as u32, 1);
    ro.flags = maps::BPF_F_RDONLY_PROG;
    ro.data = Some(fmt);
    // args: hash, cookie-ish constant, pointer to 4 address bytes on the stack, "ok".
    let code = prog![
        ldx(BPF_W, 3, 1, 32),
        ld64(4, 0xabc),
        st(BPF_W, 10, -4, i32::from_le_bytes([10, 0, 0, 7])),
        mov64x(5, 10),
        alu64(BPF_ADD, 5, -4),
        ld_map_value(1, 0, 0),
        mov64(2, fmt_len),
        call(6),
        exit(),
    ];
    let mut obj = asm(code, vec![ro.clone()]).unwrap();
    let mut env = group_env(1, false);
    let r = obj.run(ProgId(0), &mut env, &selection(0, 99)).unwrap().ret;
    // Three conversions at most: %s is the fourth and makes it -EINVAL.
    assert_eq!(r as i64, -22);
    assert!(env.trace.is_empty());
    let mut fmt = b"hash %u sk %llx from %pI4%%\0".to_vec();
    let fmt_len = fmt.len() as i32;
    fmt.resize(40, 0);
    ro.value_size = 40;
    ro.data = Some(fmt);
    let code = prog![
        ldx(BPF_W, 3, 1, 32),
        ld64(4, 0xabc),
        st(BPF_W, 10, -4, i32::from_le_bytes([10, 0, 0, 7])),
        mov64x(5, 10),
        alu64(BPF_ADD, 5, -4),
        ld_map_value(1, 0, 0),
        mov64(2, fmt_len),
        call(6),
        exit(),
    ];
    let mut obj = asm(code, vec![ro]).unwrap();
    let r = obj.run(ProgId(0), &mut env, &selection(0, 99)).unwrap().ret;
    assert_eq!(
        env.trace,
        vec![("t".to_string(), "hash 99 sk abc from 10.0.0.7%".to_string())]
    );
    assert_eq!(r as usize, env.trace[0].1.len());
    assert!(license_is_gpl_compatible("Dual MIT/GPL") && !license_is_gpl_compatible("MIT"));
}

#[test]
fn map_dump_text_and_json_after_a_run() {
    let mut obj = fixture("migrate_reuseport.o");
    let mut env = group_env(2, false);
    put_sock(&mut obj, &env, "reuseport_map", 1, 1);
    let cookie = cookie_at(&obj, &mut env, "reuseport_map", 1);
    let mm = obj.map("migrate_map").unwrap();
    obj.maps_mut()
        .update(
            mm,
            &cookie.to_le_bytes(),
            &1u32.to_le_bytes(),
            BPF_ANY,
            &env,
        )
        .unwrap();
    stop(&mut obj, &mut env, 0);
    let cookie0 = env.cookies.cookie(SockHandle(0));
    obj.maps_mut()
        .update(
            mm,
            &cookie0.to_le_bytes(),
            &1u32.to_le_bytes(),
            BPF_ANY,
            &env,
        )
        .unwrap();
    let child = add_child(&mut env, 9, tcp_state::ESTABLISHED, false);
    let p = obj.program("migrate_reuseport").unwrap();
    assert_eq!(
        obj.run(p, &mut env, &migration(0, child, 0, None))
            .unwrap()
            .verdict,
        Verdict::Select(SockHandle(1))
    );
    let text = obj.maps().dump_text(&mut env);
    assert!(
        text.contains("reuseport_sockarray  name reuseport_map"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "key: 01 00 00 00  value: sock 1 (cookie {cookie})"
        )),
        "{text}"
    );
    assert!(text.contains("\tmigrated_at_close = 1\n"), "{text}");
    assert!(text.contains("Found 2 elements"), "{text}");
    let json = obj.maps().dump_json(&mut env);
    let bss = json
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == ".bss")
        .unwrap();
    assert_eq!(bss["globals"][0]["name"], "migrated_at_close");
    assert_eq!(bss["globals"][0]["value"], 1);
}

#[test]
fn hash_of_maps_holds_inner_maps_by_key_and_refuses_mismatched_ones() {
    let env = group_env(1, false);
    let mut envm = env.clone();
    let mut outer = MapDef::new("outer", MapType::HashOfMaps, 8, 4, 1);
    outer.inner = Some(Box::new(MapDef::new(
        "tmpl",
        MapType::ReuseportSockarray,
        4,
        8,
        4,
    )));
    let mut m = set(vec![
        outer,
        MapDef::new("gen1", MapType::ReuseportSockarray, 4, 8, 4),
        MapDef::new("bigger", MapType::ReuseportSockarray, 4, 8, 8),
    ]);
    let key = 1u64.to_le_bytes();
    assert_eq!(
        m.update(MapId(0), &key, &k(2), BPF_ANY, &env),
        Err(Errno::Inval),
        "max_entries differ"
    );
    assert_eq!(
        m.update(MapId(0), &key, &k(9), BPF_ANY, &env),
        Err(Errno::BadF),
        "no such map"
    );
    assert_eq!(m.update(MapId(0), &key, &k(1), BPF_NOEXIST, &env), Ok(()));
    assert_eq!(
        m.update(MapId(0), &2u64.to_le_bytes(), &k(1), BPF_ANY, &env),
        Err(Errno::TooBig)
    );
    assert_eq!(m.lookup(MapId(0), &key, &mut envm), Ok(k(1).to_vec()));
    assert_eq!(m.delete_user(MapId(0), &key), Ok(()));
    assert_eq!(m.delete_user(MapId(0), &key), Err(Errno::NoEnt));
    // An inner map created after load, with BPF_F_INNER_MAP in the template.
    let mut outer = MapDef::new("outer", MapType::ArrayOfMaps, 4, 4, 1);
    let mut tmpl = MapDef::new("tmpl", MapType::Array, 4, 4, 1);
    tmpl.flags = maps::BPF_F_INNER_MAP;
    outer.inner = Some(Box::new(tmpl));
    let mut m = set(vec![outer]);
    let mut inner = MapDef::new("any-size", MapType::Array, 4, 4, 64);
    inner.flags = maps::BPF_F_INNER_MAP;
    let id = m.create(inner).unwrap();
    assert_eq!(
        m.update(MapId(0), &k(0), &id.0.to_le_bytes(), BPF_ANY, &env),
        Ok(())
    );
}

#[test]
fn tcp_segment_frames_have_valid_checksums_and_linux_header_sizes() {
    fn sum16(b: &[u8]) -> u32 {
        b.chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
            .sum()
    }
    fn fold(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }
    let mut buf = Vec::new();
    for v6 in [false, true] {
        for (opts, hdr) in [
            (
                TcpOptions::Syn {
                    mss: 1460,
                    wscale: 7,
                    tsval: 9,
                },
                40,
            ),
            (TcpOptions::Timestamps { tsval: 1, tsecr: 2 }, 32),
            (TcpOptions::None, 20),
        ] {
            let seg = TcpSegment {
                src: remote(v6, 50000),
                dst: local(v6),
                seq: 7,
                ack: 8,
                flags: frame::tcp_flags::ACK,
                window: 512,
                options: opts,
                payload_len: 12,
            };
            let skb = seg.write(&mut buf).unwrap();
            let data = skb.data();
            assert_eq!(data.len(), hdr + 12);
            assert_eq!((data[12] >> 4) as usize * 4, hdr);
            let ip = &skb.bytes[skb.network_offset as usize..skb.transport_offset as usize];
            let pseudo = if v6 {
                assert_eq!(ip.len(), 40);
                sum16(&ip[8..40]) + 6 + data.len() as u32
            } else {
                assert_eq!(fold(sum16(ip)), 0xffff, "IPv4 header checksum");
                sum16(&ip[12..20]) + 6 + data.len() as u32
            };
            assert_eq!(fold(pseudo + sum16(data)), 0xffff, "TCP checksum");
        }
    }
    let mixed = TcpSegment {
        src: remote(true, 1),
        dst: local(false),
        seq: 0,
        ack: 0,
        flags: 0,
        window: 0,
        options: TcpOptions::None,
        payload_len: 0,
    };
    assert!(mixed.write(&mut buf).is_none());
}
