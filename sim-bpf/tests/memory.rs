//! Memory regions and the program's view of the kernel: every access is
//! checked against its region, and the context and `bpf_sock` read as
//! `sk_reuseport_convert_ctx_access` and `bpf_sock_convert_ctx_access`
//! present them (`net/core/filter.c`).

mod common;

use common::*;
use sim_bpf::ctx::*;
use sim_bpf::insn::*;
use sim_bpf::*;

fn run_ctx(code: Vec<RawInsn>, env: &mut StaticEnv, c: &ReuseportCtx<'_>) -> Result<u64, RunError> {
    let mut obj = asm(code, vec![]).unwrap_or_else(|e| panic!("{e}"));
    obj.run(ProgId(0), env, c).map(|o| o.ret)
}

/// Loads `size` bytes at `off` of the context into r0.
fn md(size: u8, off: i16, c: &ReuseportCtx<'_>, env: &mut StaticEnv) -> Result<u64, RunError> {
    run_ctx(prog![ldx(size, 0, 1, off), exit()], env, c)
}

/// Loads `size` bytes at `off` of `migrating_sk` (or `sk`) into r0.
fn sock(
    size: u8,
    off: i16,
    migrating: bool,
    c: &ReuseportCtx<'_>,
    env: &mut StaticEnv,
) -> Result<u64, RunError> {
    let field = if migrating { MD_MIGRATING_SK } else { MD_SK } as i16;
    run_ctx(
        prog![ldx(BPF_DW, 2, 1, field), ldx(size, 0, 2, off), exit()],
        env,
        c,
    )
}

#[test]
fn context_fields_on_the_syn_path() {
    let mut env = group_env(2, false);
    let c = ReuseportCtx {
        bind_inany: true,
        ..selection(0, 0xdead_beef)
    };
    assert_eq!(
        md(BPF_W, MD_HASH as i16, &c, &mut env).unwrap(),
        0xdead_beef
    );
    // len: the TCP header and payload (skb->data is at the TCP header).
    assert_eq!(md(BPF_W, MD_LEN as i16, &c, &mut env).unwrap(), 32);
    // eth_protocol is skb->protocol, __be16: bpf_htons(ETH_P_IP).
    assert_eq!(
        md(BPF_W, MD_ETH_PROTOCOL as i16, &c, &mut env).unwrap(),
        0x0008
    );
    assert_eq!(
        md(BPF_H, MD_ETH_PROTOCOL as i16 + 2, &c, &mut env).unwrap(),
        0x0008,
        "narrow load quirk"
    );
    assert_eq!(md(BPF_W, MD_IP_PROTOCOL as i16, &c, &mut env).unwrap(), 6);
    assert_eq!(md(BPF_W, MD_BIND_INANY as i16, &c, &mut env).unwrap(), 1);
    assert_eq!(
        md(BPF_B, MD_LEN as i16, &c, &mut env).unwrap(),
        32,
        "narrow loads of len"
    );
    assert_eq!(md(BPF_B, MD_LEN as i16 + 1, &c, &mut env).unwrap(), 0);
    assert_eq!(
        md(BPF_DW, MD_MIGRATING_SK as i16, &c, &mut env).unwrap(),
        0,
        "migrating_sk is NULL"
    );
    // data_end - data == len on the model's linear skbs.
    let r = run_ctx(
        prog![
            ldx(BPF_DW, 2, 1, 0),
            ldx(BPF_DW, 3, 1, 8),
            mov64x(0, 3),
            alu64x(BPF_SUB, 0, 2),
            exit()
        ],
        &mut env,
        &c,
    );
    assert_eq!(r.unwrap(), 32);
    // Packet bytes: the TCP destination port, network order.
    let r = run_ctx(
        prog![ldx(BPF_DW, 2, 1, 0), ldx(BPF_H, 0, 2, 2), exit()],
        &mut env,
        &c,
    );
    assert_eq!(r.unwrap(), u16::from_be(40000) as u64);
}

#[test]
fn context_on_the_timer_and_close_paths_is_an_empty_alloc_skb_3_5_7() {
    let mut env = group_env(2, false);
    let req = add_child(&mut env, 9, tcp_state::NEW_SYN_RECV, false);
    let c = migration(0, req, 5, None);
    assert_eq!(md(BPF_W, MD_LEN as i16, &c, &mut env).unwrap(), 0);
    assert_eq!(md(BPF_W, MD_ETH_PROTOCOL as i16, &c, &mut env).unwrap(), 0);
    assert_eq!(
        md(BPF_W, MD_IP_PROTOCOL as i16, &c, &mut env).unwrap(),
        6,
        "sk->sk_protocol of the closed listener"
    );
    let r = run_ctx(
        prog![
            ldx(BPF_DW, 2, 1, 0),
            ldx(BPF_DW, 3, 1, 8),
            mov64x(0, 3),
            alu64x(BPF_SUB, 0, 2),
            exit()
        ],
        &mut env,
        &c,
    );
    assert_eq!(r.unwrap(), 0);
    let e = run_ctx(
        prog![ldx(BPF_DW, 2, 1, 0), ldx(BPF_B, 0, 2, 0), exit()],
        &mut env,
        &c,
    )
    .unwrap_err();
    assert!(
        matches!(e.kind, Fault::OutOfBounds { ref region, len: 0, .. } if region == "packet data"),
        "{e}"
    );
}

#[test]
fn invalid_context_accesses_are_refused_like_sk_reuseport_is_valid_access() {
    let mut env = group_env(2, false);
    let c = selection(0, 1);
    for (size, off, why) in [
        (
            BPF_DW,
            MD_HASH as i16,
            "hash is read with 4-byte loads only",
        ),
        (BPF_W, MD_DATA as i16, "pointer fields"),
        (BPF_B, MD_ETH_PROTOCOL as i16, "eth_protocol"),
        (BPF_W, 36, "no field"),
        (BPF_W, 56, "beyond"),
        (BPF_W, 18 + 1, "misaligned"),
        (BPF_W, -4, "negative"),
    ] {
        let e = md(size, off, &c, &mut env).unwrap_err();
        assert!(matches!(e.kind, Fault::BadFieldAccess { .. }), "{e}");
        assert!(e.to_string().contains(why), "want {why:?}: {e}");
        assert_eq!(e.insn, 0);
    }
    let e = run_ctx(prog![st(BPF_W, 1, 32, 0), exit()], &mut env, &c).unwrap_err();
    assert_eq!(
        e.kind,
        Fault::ReadOnly {
            region: "struct sk_reuseport_md".into()
        }
    );
}

#[test]
fn bpf_sock_fields_as_the_kernel_presents_them_ipv4() {
    let mut env = group_env(2, false);
    let child = add_child(&mut env, 9, tcp_state::ESTABLISHED, false);
    let c = migration(0, child, 5, None);
    // migrating_sk: sock_common fields.
    assert_eq!(
        sock(BPF_W, 72, true, &c, &mut env).unwrap(),
        tcp_state::ESTABLISHED as u64
    );
    assert_eq!(sock(BPF_W, 4, true, &c, &mut env).unwrap(), AF_INET as u64);
    assert_eq!(
        sock(BPF_W, 44, true, &c, &mut env).unwrap(),
        40000,
        "src_port: host order"
    );
    let dport = sock(BPF_W, 48, true, &c, &mut env).unwrap();
    assert_eq!(dport, u16::from_be(50009) as u64, "dst_port: network order");
    assert_eq!(
        sock(BPF_B, 48, true, &c, &mut env).unwrap(),
        (50009u16 >> 8) as u64,
        "first byte on the wire"
    );
    assert_eq!(
        sock(BPF_W, 24, true, &c, &mut env).unwrap(),
        u32::from_le_bytes([127, 0, 0, 1]) as u64
    );
    assert_eq!(
        sock(BPF_B, 27, true, &c, &mut env).unwrap(),
        1,
        "narrow load of src_ip4"
    );
    assert_eq!(
        sock(BPF_W, 52, true, &c, &mut env).unwrap(),
        u32::from_le_bytes([127, 0, 0, 1]) as u64
    );
    assert_eq!(
        sock(BPF_W, 28, true, &c, &mut env).unwrap(),
        0,
        "no IPv6 address"
    );
    assert_eq!(
        sock(BPF_W, 76, true, &c, &mut env).unwrap(),
        0xffff_ffff,
        "rx_queue_mapping: none"
    );
    // sk is the closed listener: a full socket (PTR_TO_SOCKET) in TCP_CLOSE.
    env.socks.get_mut(&SockHandle(0)).unwrap().state = tcp_state::CLOSE;
    assert_eq!(
        sock(BPF_W, 72, false, &c, &mut env).unwrap(),
        tcp_state::CLOSE as u64
    );
    assert_eq!(
        sock(BPF_W, 12, false, &c, &mut env).unwrap(),
        IPPROTO_TCP as u64
    );
    assert_eq!(
        sock(BPF_W, 8, false, &c, &mut env).unwrap(),
        SOCK_STREAM as u64
    );
    assert_eq!(
        sock(BPF_W, 52, false, &c, &mut env).unwrap(),
        0,
        "a listener has no peer"
    );
}

#[test]
fn bpf_sock_fields_ipv6_show_loopback4_ipv6_in_the_v4_fields() {
    let mut env = group_env(2, true);
    let child = add_child(&mut env, 9, tcp_state::SYN_RECV, true);
    let c = migration(0, child, 5, None);
    assert_eq!(sock(BPF_W, 4, true, &c, &mut env).unwrap(), AF_INET6 as u64);
    assert_eq!(
        sock(BPF_W, 40, true, &c, &mut env).unwrap(),
        u32::from_le_bytes([0, 0, 0, 1]) as u64,
        "::1, last word"
    );
    assert_eq!(
        sock(BPF_W, 68, true, &c, &mut env).unwrap(),
        u32::from_le_bytes([0, 0, 0, 1]) as u64
    );
    assert_eq!(
        sock(BPF_W, 24, true, &c, &mut env).unwrap(),
        u32::from_le_bytes([127, 0, 0, 6]) as u64
    );
    let req = add_child(&mut env, 10, tcp_state::NEW_SYN_RECV, true);
    let c = migration(0, req, 5, None);
    assert_eq!(
        sock(BPF_W, 72, true, &c, &mut env).unwrap(),
        tcp_state::NEW_SYN_RECV as u64
    );
    assert_eq!(
        sock(BPF_W, 24, true, &c, &mut env).unwrap(),
        0,
        "tcp_v6_init_req sets only the v6 addresses"
    );
}

#[test]
fn migrating_sk_is_sock_common_and_null_on_selection() {
    let mut env = group_env(2, false);
    let req = add_child(&mut env, 9, tcp_state::NEW_SYN_RECV, false);
    let c = migration(0, req, 5, None);
    for off in [8, 12, 16, 20] {
        let e = sock(BPF_W, off, true, &c, &mut env).unwrap_err();
        assert!(e.to_string().contains("not in sock_common"), "{e}");
    }
    for (size, off, why) in [
        (BPF_DW, 0, "size"),
        (BPF_H, 0, "size"),
        (BPF_H, 50, "padding"),
        (BPF_W, 80, ""),
    ] {
        let e = sock(size, off, false, &c, &mut env).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
    let e = sock(BPF_W, 72, true, &selection(0, 1), &mut env).unwrap_err();
    assert!(
        matches!(e.kind, Fault::InvalidAddress { addr: 0, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("NULL"), "{e}");
    assert_eq!(e.insn, 1);
    let e = run_ctx(
        prog![ldx(BPF_DW, 2, 1, MD_SK as i16), st(BPF_W, 2, 72, 1), exit()],
        &mut env,
        &c,
    )
    .unwrap_err();
    assert!(matches!(e.kind, Fault::ReadOnly { .. }), "{e}");
}

#[test]
fn stack_bounds() {
    let mut env = group_env(1, false);
    let c = selection(0, 1);
    let e = run_ctx(prog![ldx(BPF_DW, 0, 10, -520), exit()], &mut env, &c).unwrap_err();
    assert!(
        matches!(e.kind, Fault::OutOfBounds { ref region, offset: -520, size: 8, len: 512, .. } if region == "stack frame 0"),
        "{e}"
    );
    let e = run_ctx(prog![st(BPF_W, 10, -2, 0), exit()], &mut env, &c).unwrap_err();
    assert!(
        matches!(
            e.kind,
            Fault::OutOfBounds {
                access: "write",
                offset: -2,
                ..
            }
        ),
        "{e}"
    );
    // The last valid byte and the first.
    assert!(run_ctx(
        prog![
            st(BPF_B, 10, -1, 0),
            st(BPF_DW, 10, -512, 0),
            mov64(0, 1),
            exit()
        ],
        &mut env,
        &c
    )
    .is_ok());
}

#[test]
fn scalars_and_null_are_not_pointers() {
    let mut env = group_env(1, false);
    let c = selection(0, 1);
    let e = run_ctx(
        prog![mov64(2, 0), ldx(BPF_W, 0, 2, 0), exit()],
        &mut env,
        &c,
    )
    .unwrap_err();
    assert!(
        matches!(
            e.kind,
            Fault::InvalidAddress {
                access: "read",
                addr: 0
            }
        ),
        "{e}"
    );
    let e = run_ctx(
        prog![ld64(2, 0x7fff_1234_5678), stx(BPF_W, 2, 1, 0), exit()],
        &mut env,
        &c,
    )
    .unwrap_err();
    assert!(
        matches!(
            e.kind,
            Fault::InvalidAddress {
                access: "write",
                ..
            }
        ),
        "{e}"
    );
}

fn array(name: &str, value_size: u32, n: u32) -> MapDef {
    MapDef::new(name, MapType::Array, 4, value_size, n)
}

#[test]
fn map_value_bounds_and_rodata() {
    let mut env = group_env(1, false);
    let c = selection(0, 1);
    // r0 = lookup(vals, 0); read 8 bytes at +4 of a 8-byte value.
    let lookup = prog![
        st(BPF_W, 10, -4, 0),
        mov64x(2, 10),
        alu64(BPF_ADD, 2, -4),
        ld_map(1, 0),
        call(1)
    ];
    let mut code = lookup.clone();
    code.extend(prog![ldx(BPF_DW, 0, 0, 4), exit()]);
    let mut obj = asm(code, vec![array("vals", 8, 2)]).unwrap();
    let e = obj.run(ProgId(0), &mut env, &c).unwrap_err();
    assert!(
        matches!(e.kind, Fault::OutOfBounds { ref region, offset: 4, size: 8, len: 8, .. } if region == "map value of \"vals\""),
        "{e}"
    );
    // A failed lookup returns NULL; dereferencing it is an error.
    let mut code = prog![
        st(BPF_W, 10, -4, 9),
        mov64x(2, 10),
        alu64(BPF_ADD, 2, -4),
        ld_map(1, 0),
        call(1)
    ];
    code.extend(prog![ldx(BPF_W, 0, 0, 0), exit()]);
    let mut obj = asm(code, vec![array("vals", 8, 2)]).unwrap();
    let e = obj.run(ProgId(0), &mut env, &c).unwrap_err();
    assert!(e.to_string().contains("NULL"), "{e}");
    // .rodata (BPF_F_RDONLY_PROG) is read-only for programs.
    let mut ro = array(".rodata", 8, 1);
    ro.flags = maps::BPF_F_RDONLY_PROG;
    ro.data = Some(vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let mut obj = asm(
        prog![ld_map_value(1, 0, 2), ldx(BPF_H, 0, 1, 0), exit()],
        vec![ro.clone()],
    )
    .unwrap();
    assert_eq!(obj.run(ProgId(0), &mut env, &c).unwrap().ret, 0x0403);
    let mut obj = asm(
        prog![ld_map_value(1, 0, 2), st(BPF_H, 1, 0, 0), exit()],
        vec![ro],
    )
    .unwrap();
    let e = obj.run(ProgId(0), &mut env, &c).unwrap_err();
    assert!(matches!(e.kind, Fault::ReadOnly { .. }), "{e}");
    // A map pointer is not memory.
    let mut obj = asm(
        prog![ld_map(1, 0), ldx(BPF_W, 0, 1, 0), exit()],
        vec![array("vals", 8, 2)],
    )
    .unwrap();
    let e = obj.run(ProgId(0), &mut env, &c).unwrap_err();
    assert!(e.to_string().contains("struct bpf_map"), "{e}");
}

#[test]
fn errors_never_panic_on_random_programs() {
    // Fuzz-like: random instruction words either fail to load or run to a
    // verdict or an error; nothing panics.
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut env = group_env(2, false);
    // Opcodes that load on their own (with imm 1), to draw from.
    let codes: Vec<u8> = (0..=255u8)
        .filter(|&c| asm(vec![RawInsn::new(c, 0, 0, 0, 1), exit()], vec![]).is_ok())
        .collect();
    assert!(codes.len() > 100, "{} opcodes", codes.len());
    let mut ran = 0;
    for _ in 0..3000 {
        let n = 1 + (next() % 12) as usize;
        let mut code: Vec<RawInsn> = (0..n)
            .map(|_| {
                let w = next();
                let mut i = RawInsn::from_bytes(w.to_le_bytes());
                i.code = codes[(w >> 40) as usize % codes.len()];
                if i.code == (BPF_JMP | BPF_CALL) {
                    i.imm = [1, 2, 3, 5, 6, 7, 26, 46, 68, 82, 160][(w >> 56) as usize % 11];
                    i.src = 0;
                } else if w & 1 == 0 {
                    i.imm %= 64;
                }
                i.dst %= 11;
                i.src %= 11;
                i.off %= (n as i16) + 1;
                i
            })
            .collect();
        code.push(exit());
        if let Ok(mut obj) = asm(code, vec![array("m", 8, 4)]) {
            ran += 1;
            let _ = obj.run(ProgId(0), &mut env, &selection(0, 7));
        }
    }
    assert!(ran > 200, "only {ran} random programs loaded");
}
