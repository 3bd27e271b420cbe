//! The interpreter: registers, typed memory regions behind tagged pointers,
//! bpf-to-bpf call frames and the instruction loop, following the kernel's
//! interpreter (`___bpf_prog_run`, `kernel/bpf/core.c`) after the
//! verifier's rewrites (`do_misc_fixups`: division by zero).
//!
//! # Pointers
//! A pointer is a 64-bit value `kind:4 | map:8 | slot:20 | offset:32`.
//! Stack frames, the context, the packet, the two `bpf_sock`s, map values
//! and map objects are separate regions; every load and store decodes the
//! base register, adds the instruction's offset and checks the region's
//! bounds and rules. A scalar (including NULL) has kind 0 and is refused.
//! Pointer values are deterministic: the same program and inputs give the
//! same addresses on every machine.

use crate::ctx::{self, MdField, MdScalar, ReuseportCtx, SockHandle, SockInfo};
use crate::env::Env;
use crate::error::Fault;
use crate::insn::{Insn, Op, MAX_CALL_FRAMES, STACK_SIZE};
use crate::maps::{MapId, MapSet, BPF_F_RDONLY_PROG};
use crate::DivZero;

pub(crate) const K_STACK: u64 = 1;
pub(crate) const K_CTX: u64 = 2;
pub(crate) const K_PACKET: u64 = 3;
pub(crate) const K_SOCK: u64 = 4;
pub(crate) const K_VALUE: u64 = 5;
pub(crate) const K_MAP: u64 = 6;

pub(crate) fn ptr(kind: u64, map: u32, slot: u32, off: u32) -> u64 {
    (kind << 60) | ((map as u64 & 0xff) << 52) | ((slot as u64 & 0xf_ffff) << 32) | off as u64
}

#[derive(Copy, Clone, Debug)]
pub(crate) struct Ptr {
    pub(crate) kind: u64,
    pub(crate) map: u32,
    pub(crate) slot: u32,
    pub(crate) off: u32,
}

pub(crate) fn decode_ptr(v: u64) -> Ptr {
    Ptr {
        kind: v >> 60,
        map: ((v >> 52) & 0xff) as u32,
        slot: ((v >> 32) & 0xf_ffff) as u32,
        off: v as u32,
    }
}

/// Whether the index bits of a pointer name a region of its kind (a
/// pointer moved by arithmetic into other index bits must not alias
/// another region).
pub(crate) fn well_formed(p: &Ptr) -> bool {
    match p.kind {
        K_STACK => p.map == 0 && (p.slot as usize) < MAX_CALL_FRAMES,
        K_CTX | K_PACKET => p.map == 0 && p.slot == 0,
        K_SOCK => p.map == 0 && p.slot <= 1,
        K_VALUE => true,
        K_MAP => p.slot == 0,
        _ => false,
    }
}

/// Per-call state: what `struct sk_reuseport_kern` holds.
pub(crate) struct CallState<'a> {
    pub(crate) sk: SockHandle,
    pub(crate) migrating: Option<SockHandle>,
    pub(crate) hash: u32,
    pub(crate) reuseport_id: u32,
    pub(crate) bind_inany: bool,
    pub(crate) skb: Option<ctx::Skb<'a>>,
    pub(crate) data: &'a [u8],
    pub(crate) socks: [Option<SockInfo>; 2],
    pub(crate) selected: Option<SockHandle>,
}

impl<'a> CallState<'a> {
    pub(crate) fn new(c: &ReuseportCtx<'a>) -> Self {
        CallState {
            sk: c.sk,
            migrating: c.migrating_sk,
            hash: c.hash,
            reuseport_id: c.reuseport_id,
            bind_inany: c.bind_inany,
            skb: c.skb,
            data: c.skb.map_or(&[][..], |s| s.data()),
            socks: [None, None],
            selected: None,
        }
    }
}

#[derive(Copy, Clone, Default)]
struct Frame {
    ret_pc: usize,
    saved: [u64; 5],
}

/// The machine during one call.
pub(crate) struct Machine<'r, 'c, E: Env> {
    pub(crate) regs: [u64; 16],
    pub(crate) stack: &'r mut [u8],
    pub(crate) depth: usize,
    pub(crate) maps: &'r mut MapSet,
    pub(crate) env: &'r mut E,
    pub(crate) call: CallState<'c>,
    pub(crate) program: &'r str,
    pub(crate) gpl: bool,
    pub(crate) div_zero: DivZero,
    pub(crate) div_by_zero: u64,
    pub(crate) scratch: &'r mut Vec<u8>,
}

#[inline(always)]
fn read_le(b: &[u8], size: u8) -> u64 {
    match size {
        1 => b[0] as u64,
        2 => u16::from_le_bytes([b[0], b[1]]) as u64,
        4 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64,
        _ => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

#[inline(always)]
fn write_le(b: &mut [u8], size: u8, v: u64) {
    b[..size as usize].copy_from_slice(&v.to_le_bytes()[..size as usize]);
}

impl<E: Env> Machine<'_, '_, E> {
    pub(crate) fn region_name(&self, p: &Ptr) -> String {
        match p.kind {
            K_STACK => format!("stack frame {}", p.slot),
            K_CTX => "struct sk_reuseport_md".into(),
            K_PACKET => "packet data".into(),
            K_SOCK if p.slot == 0 => "bpf_sock sk".into(),
            K_SOCK => "bpf_sock migrating_sk".into(),
            K_VALUE => format!("map value of {:?}", self.map_name(p.map)),
            K_MAP => format!("map {:?}", self.map_name(p.map)),
            _ => "no region".into(),
        }
    }

    fn map_name(&self, m: u32) -> &str {
        self.maps
            .get(MapId(m))
            .map_or("?", |x| x.def().name.as_str())
    }

    fn oob(&self, access: &'static str, p: &Ptr, off: i64, size: u8, len: u64) -> Fault {
        Fault::OutOfBounds {
            access,
            region: self.region_name(p),
            offset: off,
            size,
            len,
        }
    }

    /// The `bpf_sock` of slot 0 (`sk`) or 1 (`migrating_sk`), fetched from
    /// the host once per call.
    pub(crate) fn sock_info(&mut self, slot: u32) -> Result<SockInfo, Fault> {
        let s = slot as usize;
        if s > 1 {
            return Err(Fault::InvalidAddress {
                access: "read",
                addr: ptr(K_SOCK, 0, slot, 0),
            });
        }
        if let Some(i) = self.call.socks[s] {
            return Ok(i);
        }
        let h = if s == 0 {
            Some(self.call.sk)
        } else {
            self.call.migrating
        };
        let h = h.ok_or(Fault::InvalidAddress {
            access: "read",
            addr: 0,
        })?;
        let info = self.env.sock(h).ok_or_else(|| Fault::HelperArgument {
            helper: "bpf_sock",
            reason: format!("socket handle {} is unknown to the host", h.0),
        })?;
        self.call.socks[s] = Some(info);
        Ok(info)
    }

    /// The stack index of an in-bounds access to the current frame (the
    /// common case, handled inline); `None` sends it to `load`/`store`.
    #[inline(always)]
    fn stack_at(&self, base: u64, off: i16, size: u8) -> Option<usize> {
        if base >> 32 != (K_STACK << 28) | self.depth as u64 {
            return None;
        }
        let o = (base as u32 as i64) + off as i64;
        (o >= 0 && o + size as i64 <= STACK_SIZE as i64)
            .then(|| self.depth * STACK_SIZE + o as usize)
    }

    /// A load of `size` bytes at `base + off`.
    pub(crate) fn load(&mut self, base: u64, off: i16, size: u8) -> Result<u64, Fault> {
        let p = decode_ptr(base);
        if !well_formed(&p) {
            return Err(Fault::InvalidAddress {
                access: "read",
                addr: base,
            });
        }
        let o = p.off as i64 + off as i64;
        match p.kind {
            K_STACK => {
                if p.slot as usize > self.depth {
                    return Err(Fault::InvalidAddress {
                        access: "read",
                        addr: base,
                    });
                }
                if o < 0 || o + size as i64 > STACK_SIZE as i64 {
                    return Err(self.oob(
                        "read",
                        &p,
                        o - STACK_SIZE as i64,
                        size,
                        STACK_SIZE as u64,
                    ));
                }
                let at = p.slot as usize * STACK_SIZE + o as usize;
                Ok(read_le(&self.stack[at..at + size as usize], size))
            }
            K_VALUE => {
                let Some(v) = self.maps.value(MapId(p.map), p.slot) else {
                    return Err(Fault::InvalidAddress {
                        access: "read",
                        addr: base,
                    });
                };
                if o < 0 || o + size as i64 > v.len() as i64 {
                    let len = v.len() as u64;
                    return Err(self.oob("read", &p, o, size, len));
                }
                Ok(read_le(&v[o as usize..o as usize + size as usize], size))
            }
            K_PACKET => {
                let d = self.call.data;
                if o < 0 || o + size as i64 > d.len() as i64 {
                    return Err(self.oob("read", &p, o, size, d.len() as u64));
                }
                Ok(read_le(&d[o as usize..o as usize + size as usize], size))
            }
            K_CTX => self.ctx_load(o, size),
            K_SOCK => {
                let info = self.sock_info(p.slot)?;
                if !(0..ctx::BPF_SOCK_SIZE as i64).contains(&o) {
                    return Err(self.oob("read", &p, o, size, ctx::BPF_SOCK_SIZE as u64));
                }
                let object = if p.slot == 0 {
                    "bpf_sock (sk)"
                } else {
                    "bpf_sock (migrating_sk)"
                };
                ctx::sock_load(&info, o as u32, size, p.slot == 1).map_err(|reason| {
                    Fault::BadFieldAccess {
                        object,
                        offset: o,
                        size,
                        reason,
                    }
                })
            }
            K_MAP => Err(Fault::BadFieldAccess {
                object: "struct bpf_map",
                offset: o,
                size,
                reason: "a map pointer is only an argument to helpers",
            }),
            _ => Err(Fault::InvalidAddress {
                access: "read",
                addr: base,
            }),
        }
    }

    fn ctx_load(&mut self, o: i64, size: u8) -> Result<u64, Fault> {
        let bad = |reason| Fault::BadFieldAccess {
            object: "struct sk_reuseport_md",
            offset: o,
            size,
            reason,
        };
        if o < 0 {
            return Err(bad("negative offset"));
        }
        if o >= ctx::MD_SIZE as i64 {
            return Err(bad("beyond struct sk_reuseport_md"));
        }
        let field = ctx::md_field(o as u32, size).map_err(bad)?;
        Ok(match field {
            MdField::Data => ptr(K_PACKET, 0, 0, 0),
            MdField::DataEnd => ptr(K_PACKET, 0, 0, self.call.data.len() as u32),
            MdField::Sk => ptr(K_SOCK, 0, 0, 0),
            MdField::MigratingSk => {
                if self.call.migrating.is_some() {
                    ptr(K_SOCK, 0, 1, 0)
                } else {
                    0
                }
            }
            MdField::Scalar { which, target } => {
                let v = match which {
                    MdScalar::Len => self.call.data.len() as u64,
                    // `skb->protocol`, __be16.
                    MdScalar::EthProtocol => {
                        self.call.skb.map_or(0, |s| s.protocol.swap_bytes() as u64)
                    }
                    // `reuse_kern->sk->sk_protocol`.
                    MdScalar::IpProtocol => self.sock_info(0)?.protocol as u64,
                    MdScalar::BindInany => self.call.bind_inany as u64,
                    MdScalar::Hash => self.call.hash as u64,
                };
                ctx::md_scalar(v, o as u32, size, target)
            }
        })
    }

    /// A store of `size` bytes at `base + off`.
    pub(crate) fn store(&mut self, base: u64, off: i16, size: u8, v: u64) -> Result<(), Fault> {
        let p = decode_ptr(base);
        if !well_formed(&p) {
            return Err(Fault::InvalidAddress {
                access: "write",
                addr: base,
            });
        }
        let o = p.off as i64 + off as i64;
        match p.kind {
            K_STACK => {
                if p.slot as usize > self.depth {
                    return Err(Fault::InvalidAddress {
                        access: "write",
                        addr: base,
                    });
                }
                if o < 0 || o + size as i64 > STACK_SIZE as i64 {
                    return Err(self.oob(
                        "write",
                        &p,
                        o - STACK_SIZE as i64,
                        size,
                        STACK_SIZE as u64,
                    ));
                }
                let at = p.slot as usize * STACK_SIZE + o as usize;
                write_le(&mut self.stack[at..], size, v);
                Ok(())
            }
            K_VALUE => {
                let id = MapId(p.map);
                if self
                    .maps
                    .get(id)
                    .is_some_and(|m| m.def().flags & BPF_F_RDONLY_PROG != 0)
                {
                    return Err(Fault::ReadOnly {
                        region: self.region_name(&p),
                    });
                }
                let len = match self.maps.value(id, p.slot) {
                    Some(b) => b.len() as i64,
                    None => {
                        return Err(Fault::InvalidAddress {
                            access: "write",
                            addr: base,
                        })
                    }
                };
                if o < 0 || o + size as i64 > len {
                    return Err(self.oob("write", &p, o, size, len as u64));
                }
                let b = self.maps.value_mut(id, p.slot).expect("checked");
                write_le(&mut b[o as usize..], size, v);
                Ok(())
            }
            K_CTX | K_PACKET | K_SOCK | K_MAP => Err(Fault::ReadOnly {
                region: self.region_name(&p),
            }),
            _ => Err(Fault::InvalidAddress {
                access: "write",
                addr: base,
            }),
        }
    }

    /// Runs `code` from instruction 0 with `r1` = context; returns `r0` and
    /// the number of instructions executed, or the failing instruction.
    pub(crate) fn run(
        &mut self,
        code: &[Insn],
        budget: u64,
    ) -> Result<(u64, u64), (usize, Fault, u64)> {
        let mut frames = [Frame::default(); MAX_CALL_FRAMES];
        self.stack[..STACK_SIZE].fill(0);
        self.depth = 0;
        self.regs = [0; 16];
        self.regs[1] = ptr(K_CTX, 0, 0, 0);
        self.regs[10] = ptr(K_STACK, 0, 0, STACK_SIZE as u32);
        let mut pc = 0usize;
        let mut left = budget;
        macro_rules! fail {
            ($f:expr) => {
                return Err((pc, $f, budget - left))
            };
        }
        loop {
            let Some(&insn) = code.get(pc) else {
                fail!(Fault::InvalidAddress {
                    access: "execute",
                    addr: pc as u64
                });
            };
            if left == 0 {
                fail!(Fault::InstructionBudget { limit: budget });
            }
            left -= 1;
            let d = (insn.dst & 15) as usize;
            let s = (insn.src & 15) as usize;
            let dst = self.regs[d];
            let src = self.regs[s];
            let imm = insn.imm as u64;
            let mut next = pc + 1;
            let jump = |c: bool| {
                if c {
                    (pc as i64 + 1 + insn.off as i64) as usize
                } else {
                    pc + 1
                }
            };
            macro_rules! set {
                ($v:expr) => {
                    self.regs[d] = $v
                };
            }
            macro_rules! set32 {
                ($v:expr) => {
                    self.regs[d] = ($v) as u32 as u64
                };
            }
            match insn.op {
                Op::Add64X => set!(dst.wrapping_add(src)),
                Op::Add64K => set!(dst.wrapping_add(imm)),
                Op::Sub64X => set!(dst.wrapping_sub(src)),
                Op::Sub64K => set!(dst.wrapping_sub(imm)),
                Op::Mul64X => set!(dst.wrapping_mul(src)),
                Op::Mul64K => set!(dst.wrapping_mul(imm)),
                Op::Div64X => match dst.checked_div(src) {
                    Some(v) => set!(v),
                    None => {
                        self.div_zero_hit().map_err(|f| (pc, f, budget - left))?;
                        set!(0)
                    }
                },
                Op::Div64K => set!(dst / imm),
                Op::SDiv64X => {
                    if src == 0 {
                        self.div_zero_hit().map_err(|f| (pc, f, budget - left))?;
                        set!(0)
                    } else {
                        set!((dst as i64).wrapping_div(src as i64) as u64)
                    }
                }
                Op::SDiv64K => set!((dst as i64).wrapping_div(imm as i64) as u64),
                Op::Mod64X => {
                    if src == 0 {
                        self.div_zero_hit().map_err(|f| (pc, f, budget - left))?;
                    } else {
                        set!(dst % src)
                    }
                }
                Op::Mod64K => set!(dst % imm),
                Op::SMod64X => {
                    if src == 0 {
                        self.div_zero_hit().map_err(|f| (pc, f, budget - left))?;
                    } else {
                        set!((dst as i64).wrapping_rem(src as i64) as u64)
                    }
                }
                Op::SMod64K => set!((dst as i64).wrapping_rem(imm as i64) as u64),
                Op::Or64X => set!(dst | src),
                Op::Or64K => set!(dst | imm),
                Op::And64X => set!(dst & src),
                Op::And64K => set!(dst & imm),
                Op::Lsh64X => set!(dst << (src & 63)),
                Op::Lsh64K => set!(dst << (imm & 63)),
                Op::Rsh64X => set!(dst >> (src & 63)),
                Op::Rsh64K => set!(dst >> (imm & 63)),
                Op::Arsh64X => set!(((dst as i64) >> (src & 63)) as u64),
                Op::Arsh64K => set!(((dst as i64) >> (imm & 63)) as u64),
                Op::Xor64X => set!(dst ^ src),
                Op::Xor64K => set!(dst ^ imm),
                Op::Mov64X => set!(src),
                Op::Mov64K => set!(imm),
                Op::MovSx64 => set!(match insn.off {
                    8 => src as i8 as i64 as u64,
                    16 => src as i16 as i64 as u64,
                    _ => src as i32 as i64 as u64,
                }),
                Op::Neg64 => set!(dst.wrapping_neg()),
                Op::Add32X => set32!((dst as u32).wrapping_add(src as u32)),
                Op::Add32K => set32!((dst as u32).wrapping_add(imm as u32)),
                Op::Sub32X => set32!((dst as u32).wrapping_sub(src as u32)),
                Op::Sub32K => set32!((dst as u32).wrapping_sub(imm as u32)),
                Op::Mul32X => set32!((dst as u32).wrapping_mul(src as u32)),
                Op::Mul32K => set32!((dst as u32).wrapping_mul(imm as u32)),
                Op::Div32X => match (dst as u32).checked_div(src as u32) {
                    Some(v) => set32!(v),
                    None => {
                        self.div_zero_hit().map_err(|f| (pc, f, budget - left))?;
                        set!(0)
                    }
                },
                Op::Div32K => set32!(dst as u32 / imm as u32),
                Op::SDiv32X => {
                    if src as u32 == 0 {
                        self.div_zero_hit().map_err(|f| (pc, f, budget - left))?;
                        set!(0)
                    } else {
                        set32!((dst as i32).wrapping_div(src as i32))
                    }
                }
                Op::SDiv32K => set32!((dst as i32).wrapping_div(imm as i32)),
                Op::Mod32X => {
                    if src as u32 == 0 {
                        self.div_zero_hit().map_err(|f| (pc, f, budget - left))?;
                        set32!(dst)
                    } else {
                        set32!(dst as u32 % src as u32)
                    }
                }
                Op::Mod32K => set32!(dst as u32 % imm as u32),
                Op::SMod32X => {
                    if src as u32 == 0 {
                        self.div_zero_hit().map_err(|f| (pc, f, budget - left))?;
                        set32!(dst)
                    } else {
                        set32!((dst as i32).wrapping_rem(src as i32))
                    }
                }
                Op::SMod32K => set32!((dst as i32).wrapping_rem(imm as i32)),
                Op::Or32X => set32!(dst as u32 | src as u32),
                Op::Or32K => set32!(dst as u32 | imm as u32),
                Op::And32X => set32!(dst as u32 & src as u32),
                Op::And32K => set32!(dst as u32 & imm as u32),
                Op::Lsh32X => set32!((dst as u32) << (src & 31)),
                Op::Lsh32K => set32!((dst as u32) << (imm & 31)),
                Op::Rsh32X => set32!((dst as u32) >> (src & 31)),
                Op::Rsh32K => set32!((dst as u32) >> (imm & 31)),
                Op::Arsh32X => set32!((dst as i32) >> (src & 31)),
                Op::Arsh32K => set32!((dst as i32) >> (imm & 31)),
                Op::Xor32X => set32!(dst as u32 ^ src as u32),
                Op::Xor32K => set32!(dst as u32 ^ imm as u32),
                Op::Mov32X => set32!(src),
                Op::Mov32K => set32!(imm),
                Op::MovSx32 => set32!(match insn.off {
                    8 => src as i8 as i32,
                    _ => src as i16 as i32,
                }),
                Op::Neg32 => set32!((dst as u32).wrapping_neg()),
                Op::ToLe => set!(match insn.imm {
                    16 => dst & 0xffff,
                    32 => dst & 0xffff_ffff,
                    _ => dst,
                }),
                Op::ToBe | Op::Bswap => set!(match insn.imm {
                    16 => (dst as u16).swap_bytes() as u64,
                    32 => (dst as u32).swap_bytes() as u64,
                    _ => dst.swap_bytes(),
                }),
                Op::LdImm64 => {
                    set!(imm);
                    next = pc + 2;
                }
                Op::LdMap => {
                    set!(ptr(K_MAP, insn.imm as u32, 0, 0));
                    next = pc + 2;
                }
                Op::LdMapValue => {
                    set!(ptr(K_VALUE, (insn.imm >> 32) as u32, 0, insn.imm as u32));
                    next = pc + 2;
                }
                Op::LdImm64Tail => fail!(Fault::InvalidAddress {
                    access: "execute",
                    addr: pc as u64
                }),
                Op::LdxB | Op::LdxH | Op::LdxW | Op::LdxDW | Op::LdxSB | Op::LdxSH | Op::LdxSW => {
                    let (size, sx) = match insn.op {
                        Op::LdxB => (1, false),
                        Op::LdxH => (2, false),
                        Op::LdxW => (4, false),
                        Op::LdxDW => (8, false),
                        Op::LdxSB => (1, true),
                        Op::LdxSH => (2, true),
                        _ => (4, true),
                    };
                    let v = match self.stack_at(src, insn.off, size) {
                        Some(at) => read_le(&self.stack[at..at + size as usize], size),
                        None => match self.load(src, insn.off, size) {
                            Ok(v) => v,
                            Err(f) => fail!(f),
                        },
                    };
                    set!(if sx {
                        match size {
                            1 => v as i8 as i64 as u64,
                            2 => v as i16 as i64 as u64,
                            _ => v as i32 as i64 as u64,
                        }
                    } else {
                        v
                    });
                }
                Op::StB
                | Op::StH
                | Op::StW
                | Op::StDW
                | Op::StxB
                | Op::StxH
                | Op::StxW
                | Op::StxDW => {
                    let (size, v) = match insn.op {
                        Op::StB => (1, imm),
                        Op::StH => (2, imm),
                        Op::StW => (4, imm),
                        Op::StDW => (8, imm),
                        Op::StxB => (1, src),
                        Op::StxH => (2, src),
                        Op::StxW => (4, src),
                        _ => (8, src),
                    };
                    match self.stack_at(dst, insn.off, size) {
                        Some(at) => write_le(&mut self.stack[at..], size, v),
                        None => {
                            if let Err(f) = self.store(dst, insn.off, size, v) {
                                fail!(f);
                            }
                        }
                    }
                }
                Op::AtomicW | Op::AtomicDW => {
                    if let Err(f) = self.atomic(&insn, dst, src) {
                        fail!(f);
                    }
                }
                Op::Ja => next = jump(true),
                Op::Ja32 => next = (pc as i64 + 1 + insn.imm) as usize,
                Op::Jeq64X => next = jump(dst == src),
                Op::Jeq64K => next = jump(dst == imm),
                Op::Jgt64X => next = jump(dst > src),
                Op::Jgt64K => next = jump(dst > imm),
                Op::Jge64X => next = jump(dst >= src),
                Op::Jge64K => next = jump(dst >= imm),
                Op::Jset64X => next = jump(dst & src != 0),
                Op::Jset64K => next = jump(dst & imm != 0),
                Op::Jne64X => next = jump(dst != src),
                Op::Jne64K => next = jump(dst != imm),
                Op::Jsgt64X => next = jump((dst as i64) > src as i64),
                Op::Jsgt64K => next = jump((dst as i64) > imm as i64),
                Op::Jsge64X => next = jump((dst as i64) >= src as i64),
                Op::Jsge64K => next = jump((dst as i64) >= imm as i64),
                Op::Jlt64X => next = jump(dst < src),
                Op::Jlt64K => next = jump(dst < imm),
                Op::Jle64X => next = jump(dst <= src),
                Op::Jle64K => next = jump(dst <= imm),
                Op::Jslt64X => next = jump((dst as i64) < src as i64),
                Op::Jslt64K => next = jump((dst as i64) < imm as i64),
                Op::Jsle64X => next = jump((dst as i64) <= src as i64),
                Op::Jsle64K => next = jump((dst as i64) <= imm as i64),
                Op::Jeq32X => next = jump(dst as u32 == src as u32),
                Op::Jeq32K => next = jump(dst as u32 == imm as u32),
                Op::Jgt32X => next = jump(dst as u32 > src as u32),
                Op::Jgt32K => next = jump(dst as u32 > imm as u32),
                Op::Jge32X => next = jump(dst as u32 >= src as u32),
                Op::Jge32K => next = jump(dst as u32 >= imm as u32),
                Op::Jset32X => next = jump(dst as u32 & src as u32 != 0),
                Op::Jset32K => next = jump(dst as u32 & imm as u32 != 0),
                Op::Jne32X => next = jump(dst as u32 != src as u32),
                Op::Jne32K => next = jump(dst as u32 != imm as u32),
                Op::Jsgt32X => next = jump((dst as i32) > src as i32),
                Op::Jsgt32K => next = jump((dst as i32) > imm as i32),
                Op::Jsge32X => next = jump((dst as i32) >= src as i32),
                Op::Jsge32K => next = jump((dst as i32) >= imm as i32),
                Op::Jlt32X => next = jump((dst as u32) < src as u32),
                Op::Jlt32K => next = jump((dst as u32) < imm as u32),
                Op::Jle32X => next = jump(dst as u32 <= src as u32),
                Op::Jle32K => next = jump(dst as u32 <= imm as u32),
                Op::Jslt32X => next = jump((dst as i32) < src as i32),
                Op::Jslt32K => next = jump((dst as i32) < imm as i32),
                Op::Jsle32X => next = jump((dst as i32) <= src as i32),
                Op::Jsle32K => next = jump((dst as i32) <= imm as i32),
                Op::Call => match self.helper(insn.imm as i32) {
                    Ok(r0) => self.regs[0] = r0,
                    Err(f) => fail!(f),
                },
                Op::CallLocal => {
                    if self.depth + 1 >= MAX_CALL_FRAMES {
                        fail!(Fault::CallDepth);
                    }
                    frames[self.depth] = Frame {
                        ret_pc: pc + 1,
                        saved: [
                            self.regs[6],
                            self.regs[7],
                            self.regs[8],
                            self.regs[9],
                            self.regs[10],
                        ],
                    };
                    self.depth += 1;
                    let at = self.depth * STACK_SIZE;
                    self.stack[at..at + STACK_SIZE].fill(0);
                    self.regs[10] = ptr(K_STACK, 0, self.depth as u32, STACK_SIZE as u32);
                    next = insn.imm as usize;
                }
                Op::Exit => {
                    if self.depth == 0 {
                        return Ok((self.regs[0], budget - left));
                    }
                    self.depth -= 1;
                    let f = frames[self.depth];
                    self.regs[6..11].copy_from_slice(&f.saved);
                    next = f.ret_pc;
                }
            }
            pc = next;
        }
    }

    fn div_zero_hit(&mut self) -> Result<(), Fault> {
        self.div_by_zero += 1;
        match self.div_zero {
            DivZero::Kernel => Ok(()),
            DivZero::Error => Err(Fault::DivisionByZero),
        }
    }

    fn atomic(&mut self, insn: &Insn, dst: u64, src: u64) -> Result<(), Fault> {
        let size = if insn.op == Op::AtomicW { 4 } else { 8 };
        let mask = if size == 4 { 0xffff_ffff } else { u64::MAX };
        let old = self.load(dst, insn.off, size)?;
        let op = insn.imm as i32;
        let s = src & mask;
        let (new, fetch_to) = match op & !crate::insn::BPF_FETCH {
            0x00 => (old.wrapping_add(s) & mask, Some(insn.src)),
            0x40 => (old | s, Some(insn.src)),
            0x50 => (old & s, Some(insn.src)),
            0xa0 => (old ^ s, Some(insn.src)),
            0xe0 => (s, Some(insn.src)),
            _ => {
                // BPF_CMPXCHG: compare with r0, r0 gets the old value.
                let r0 = self.regs[0] & mask;
                let new = if old == r0 { s } else { old };
                self.store(dst, insn.off, size, new)?;
                self.regs[0] = old;
                return Ok(());
            }
        };
        self.store(dst, insn.off, size, new)?;
        if op & crate::insn::BPF_FETCH != 0 {
            if let Some(r) = fetch_to {
                self.regs[(r & 15) as usize] = old;
            }
        }
        Ok(())
    }
}
