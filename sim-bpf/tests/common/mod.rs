//! Shared test support: a loopback reuseport group as a [`StaticEnv`], the
//! fixture objects, and a tiny assembler.
#![allow(dead_code)]

use sim_bpf::ctx::tcp_state;
use sim_bpf::insn::*;
use sim_bpf::*;
use std::net::SocketAddr;

pub const GROUP: u32 = 7;
pub const PORT: u16 = 40000;

pub fn fixture(name: &str) -> BpfObject {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    BpfObject::load(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn local(v6: bool) -> SocketAddr {
    if v6 {
        format!("[::1]:{PORT}").parse().unwrap()
    } else {
        format!("127.0.0.1:{PORT}").parse().unwrap()
    }
}

pub fn remote(v6: bool, port: u16) -> SocketAddr {
    if v6 {
        format!("[::1]:{port}").parse().unwrap()
    } else {
        format!("127.0.0.1:{port}").parse().unwrap()
    }
}

/// `n` listening sockets with handles 0..n in group [`GROUP`].
pub fn group_env(n: u64, v6: bool) -> StaticEnv {
    let mut env = StaticEnv::default();
    for i in 0..n {
        env.socks.insert(
            SockHandle(i),
            SockInfo::tcp_listener(local(v6), tcp_state::LISTEN, Some(GROUP)),
        );
    }
    env
}

/// The listener stops (close or shutdown): out of the listening hash, kept
/// in its group's closed section (migration-capable), removed from every
/// socket map (`bpf_sk_reuseport_detach`).
pub fn stop(obj: &mut BpfObject, env: &mut StaticEnv, l: u64) {
    let info = env.socks.get_mut(&SockHandle(l)).unwrap();
    info.state = tcp_state::CLOSE;
    info.hashed = false;
    obj.maps_mut().remove_socket(SockHandle(l));
}

pub fn add_child(env: &mut StaticEnv, h: u64, state: u8, v6: bool) -> SockHandle {
    let info = if state == tcp_state::NEW_SYN_RECV {
        SockInfo::tcp_request(local(v6), remote(v6, 50000 + h as u16))
    } else {
        SockInfo::tcp_child(local(v6), remote(v6, 50000 + h as u16), state)
    };
    env.socks.insert(SockHandle(h), info);
    SockHandle(h)
}

pub fn selection(sk: u64, hash: u32) -> ReuseportCtx<'static> {
    ReuseportCtx {
        sk: SockHandle(sk),
        migrating_sk: None,
        hash,
        reuseport_id: GROUP,
        bind_inany: false,
        skb: Some(syn_skb()),
    }
}

pub fn migration(
    closed: u64,
    m: SockHandle,
    hash: u32,
    skb: Option<Skb<'static>>,
) -> ReuseportCtx<'static> {
    ReuseportCtx {
        sk: SockHandle(closed),
        migrating_sk: Some(m),
        hash,
        reuseport_id: GROUP,
        bind_inany: false,
        skb,
    }
}

/// A 14-byte Ethernet header, a 20-byte IPv4 header and a 32-byte TCP
/// header (an ACK with timestamps), no payload.
pub static ACK_FRAME: [u8; 66] = {
    let mut b = [0u8; 66];
    b[12] = 0x08; // ETH_P_IP
    b[14] = 0x45;
    b[23] = 6; // IPPROTO_TCP
    b[26] = 127;
    b[29] = 1;
    b[30] = 127;
    b[33] = 1;
    b[34] = 0xc3; // source port 50000
    b[35] = 0x50;
    b[36] = 0x9c; // destination port 40000
    b[37] = 0x40;
    b[46] = 0x80; // data offset 8 words
    b[47] = 0x10; // ACK
    b
};

pub fn syn_skb() -> Skb<'static> {
    Skb {
        bytes: &ACK_FRAME,
        mac_offset: Some(0),
        network_offset: 14,
        transport_offset: 34,
        protocol: ctx::ETH_P_IP,
    }
}

pub fn write_u32(obj: &mut BpfObject, env: &StaticEnv, map: &str, key: u32, v: u32) {
    let id = obj.map(map).unwrap();
    obj.maps_mut()
        .update(id, &key.to_le_bytes(), &v.to_le_bytes(), BPF_ANY, env)
        .unwrap();
}

pub fn put_sock(obj: &mut BpfObject, env: &StaticEnv, map: &str, slot: u32, h: u64) {
    let id = obj.map(map).unwrap();
    obj.maps_mut()
        .update(id, &slot.to_le_bytes(), &h.to_le_bytes(), BPF_NOEXIST, env)
        .unwrap();
}

pub fn cookie_at(obj: &BpfObject, env: &mut StaticEnv, map: &str, slot: u32) -> u64 {
    let id = obj.map(map).unwrap();
    let v = obj.maps().lookup(id, &slot.to_le_bytes(), env).unwrap();
    u64::from_le_bytes(v.try_into().unwrap())
}

pub fn global_u32(obj: &BpfObject, name: &str) -> u32 {
    u32::from_le_bytes(obj.maps().global(name).unwrap().try_into().unwrap())
}

// ---- a tiny assembler -------------------------------------------------

pub fn alu64(op: u8, dst: u8, imm: i32) -> RawInsn {
    RawInsn::new(BPF_ALU64 | op, dst, 0, 0, imm)
}
pub fn alu64x(op: u8, dst: u8, src: u8) -> RawInsn {
    RawInsn::new(BPF_ALU64 | op | BPF_X, dst, src, 0, 0)
}
pub fn alu32(op: u8, dst: u8, imm: i32) -> RawInsn {
    RawInsn::new(BPF_ALU | op, dst, 0, 0, imm)
}
pub fn alu32x(op: u8, dst: u8, src: u8) -> RawInsn {
    RawInsn::new(BPF_ALU | op | BPF_X, dst, src, 0, 0)
}
pub fn mov64(dst: u8, imm: i32) -> RawInsn {
    alu64(BPF_MOV, dst, imm)
}
pub fn mov64x(dst: u8, src: u8) -> RawInsn {
    alu64x(BPF_MOV, dst, src)
}
pub fn ld64(dst: u8, v: u64) -> [RawInsn; 2] {
    [
        RawInsn::new(BPF_LD | BPF_IMM | BPF_DW, dst, 0, 0, v as u32 as i32),
        RawInsn::new(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}
pub fn ld_map(dst: u8, map: i32) -> [RawInsn; 2] {
    [
        RawInsn::new(BPF_LD | BPF_IMM | BPF_DW, dst, 1, 0, map),
        RawInsn::new(0, 0, 0, 0, 0),
    ]
}
pub fn ld_map_value(dst: u8, map: i32, off: i32) -> [RawInsn; 2] {
    [
        RawInsn::new(BPF_LD | BPF_IMM | BPF_DW, dst, 2, 0, map),
        RawInsn::new(0, 0, 0, 0, off),
    ]
}
pub fn ldx(size: u8, dst: u8, src: u8, off: i16) -> RawInsn {
    RawInsn::new(BPF_LDX | BPF_MEM | size, dst, src, off, 0)
}
pub fn ldxs(size: u8, dst: u8, src: u8, off: i16) -> RawInsn {
    RawInsn::new(BPF_LDX | BPF_MEMSX | size, dst, src, off, 0)
}
pub fn stx(size: u8, dst: u8, src: u8, off: i16) -> RawInsn {
    RawInsn::new(BPF_STX | BPF_MEM | size, dst, src, off, 0)
}
pub fn st(size: u8, dst: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn::new(BPF_ST | BPF_MEM | size, dst, 0, off, imm)
}
pub fn atomic(size: u8, op: i32, dst: u8, src: u8, off: i16) -> RawInsn {
    RawInsn::new(BPF_STX | BPF_ATOMIC | size, dst, src, off, op)
}
pub fn jmp(op: u8, dst: u8, imm: i32, off: i16) -> RawInsn {
    RawInsn::new(BPF_JMP | op, dst, 0, off, imm)
}
pub fn jmpx(op: u8, dst: u8, src: u8, off: i16) -> RawInsn {
    RawInsn::new(BPF_JMP | op | BPF_X, dst, src, off, 0)
}
pub fn jmp32(op: u8, dst: u8, imm: i32, off: i16) -> RawInsn {
    RawInsn::new(BPF_JMP32 | op, dst, 0, off, imm)
}
pub fn call(id: i32) -> RawInsn {
    RawInsn::new(BPF_JMP | BPF_CALL, 0, 0, 0, id)
}
pub fn call_local(rel: i32) -> RawInsn {
    RawInsn::new(BPF_JMP | BPF_CALL, 0, 1, 0, rel)
}
pub fn exit() -> RawInsn {
    RawInsn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

/// Concatenates instruction groups.
#[macro_export]
macro_rules! prog {
    ($($x:expr),* $(,)?) => {{
        let mut v: Vec<sim_bpf::RawInsn> = Vec::new();
        $( v.extend_from_slice(&$crate::common::Insns::from($x).0); )*
        v
    }};
}

pub struct Insns(pub Vec<RawInsn>);
impl From<RawInsn> for Insns {
    fn from(i: RawInsn) -> Self {
        Insns(vec![i])
    }
}
impl From<[RawInsn; 2]> for Insns {
    fn from(i: [RawInsn; 2]) -> Self {
        Insns(i.to_vec())
    }
}

/// Loads hand-written code as a select_or_migrate program with `maps`.
pub fn asm(code: Vec<RawInsn>, maps: Vec<MapDef>) -> Result<BpfObject, LoadError> {
    BpfObject::from_insns("t", AttachType::SelectOrMigrate, code, maps)
}

/// Runs code on a selection call in a 2-listener group; returns r0.
pub fn eval(code: Vec<RawInsn>) -> Result<u64, RunError> {
    eval_with(code, vec![])
}

pub fn eval_with(code: Vec<RawInsn>, maps: Vec<MapDef>) -> Result<u64, RunError> {
    let mut obj = asm(code, maps).unwrap_or_else(|e| panic!("{e}"));
    let mut env = group_env(2, false);
    obj.run(ProgId(0), &mut env, &selection(0, 0x8000_0000))
        .map(|o| o.ret)
}
