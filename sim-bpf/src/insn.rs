//! The eBPF instruction set (`include/uapi/linux/bpf.h`,
//! `Documentation/bpf/standardization/instruction-set.rst`): raw
//! instructions, the pre-decoded form the interpreter runs, load-time
//! validation and a disassembler for error messages.

use crate::error::LoadError;

pub use crate::disasm::{disasm_raw, helper_name};

/// One raw 8-byte instruction (`struct bpf_insn`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct RawInsn {
    /// Opcode.
    pub code: u8,
    /// Destination register (low nibble of byte 1).
    pub dst: u8,
    /// Source register (high nibble of byte 1).
    pub src: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl RawInsn {
    /// Decodes little-endian bytes (the only byte order clang's `-target
    /// bpf` emits on x86 and arm64 hosts).
    pub fn from_bytes(b: [u8; 8]) -> Self {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Builds an instruction (for tests and hand-written programs).
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }
}

// Instruction classes.
/// `BPF_LD`.
pub const BPF_LD: u8 = 0x00;
/// `BPF_LDX`.
pub const BPF_LDX: u8 = 0x01;
/// `BPF_ST`.
pub const BPF_ST: u8 = 0x02;
/// `BPF_STX`.
pub const BPF_STX: u8 = 0x03;
/// `BPF_ALU`.
pub const BPF_ALU: u8 = 0x04;
/// `BPF_JMP`.
pub const BPF_JMP: u8 = 0x05;
/// `BPF_JMP32`.
pub const BPF_JMP32: u8 = 0x06;
/// `BPF_ALU64`.
pub const BPF_ALU64: u8 = 0x07;
// Sizes and modes of loads and stores.
/// `BPF_W`.
pub const BPF_W: u8 = 0x00;
/// `BPF_H`.
pub const BPF_H: u8 = 0x08;
/// `BPF_B`.
pub const BPF_B: u8 = 0x10;
/// `BPF_DW`.
pub const BPF_DW: u8 = 0x18;
/// `BPF_IMM`.
pub const BPF_IMM: u8 = 0x00;
/// `BPF_MEM`.
pub const BPF_MEM: u8 = 0x60;
/// `BPF_MEMSX`.
pub const BPF_MEMSX: u8 = 0x80;
/// `BPF_ATOMIC`.
pub const BPF_ATOMIC: u8 = 0xc0;
// Source operand.
/// `BPF_X`.
pub const BPF_X: u8 = 0x08;
// ALU operations.
/// `BPF_ADD`.
pub const BPF_ADD: u8 = 0x00;
/// `BPF_SUB`.
pub const BPF_SUB: u8 = 0x10;
/// `BPF_MUL`.
pub const BPF_MUL: u8 = 0x20;
/// `BPF_DIV`.
pub const BPF_DIV: u8 = 0x30;
/// `BPF_OR`.
pub const BPF_OR: u8 = 0x40;
/// `BPF_AND`.
pub const BPF_AND: u8 = 0x50;
/// `BPF_LSH`.
pub const BPF_LSH: u8 = 0x60;
/// `BPF_RSH`.
pub const BPF_RSH: u8 = 0x70;
/// `BPF_NEG`.
pub const BPF_NEG: u8 = 0x80;
/// `BPF_MOD`.
pub const BPF_MOD: u8 = 0x90;
/// `BPF_XOR`.
pub const BPF_XOR: u8 = 0xa0;
/// `BPF_MOV`.
pub const BPF_MOV: u8 = 0xb0;
/// `BPF_ARSH`.
pub const BPF_ARSH: u8 = 0xc0;
/// `BPF_END`.
pub const BPF_END: u8 = 0xd0;
// Jump operations.
/// `BPF_JA`.
pub const BPF_JA: u8 = 0x00;
/// `BPF_JEQ`.
pub const BPF_JEQ: u8 = 0x10;
/// `BPF_JGT`.
pub const BPF_JGT: u8 = 0x20;
/// `BPF_JGE`.
pub const BPF_JGE: u8 = 0x30;
/// `BPF_JSET`.
pub const BPF_JSET: u8 = 0x40;
/// `BPF_JNE`.
pub const BPF_JNE: u8 = 0x50;
/// `BPF_JSGT`.
pub const BPF_JSGT: u8 = 0x60;
/// `BPF_JSGE`.
pub const BPF_JSGE: u8 = 0x70;
/// `BPF_CALL`.
pub const BPF_CALL: u8 = 0x80;
/// `BPF_EXIT`.
pub const BPF_EXIT: u8 = 0x90;
/// `BPF_JLT`.
pub const BPF_JLT: u8 = 0xa0;
/// `BPF_JLE`.
pub const BPF_JLE: u8 = 0xb0;
/// `BPF_JSLT`.
pub const BPF_JSLT: u8 = 0xc0;
/// `BPF_JSLE`.
pub const BPF_JSLE: u8 = 0xd0;
// Atomic operations (in `imm`).
/// `BPF_FETCH`.
pub const BPF_FETCH: i32 = 0x01;
/// `BPF_XCHG`.
pub const BPF_XCHG: i32 = 0xe0 | BPF_FETCH;
/// `BPF_CMPXCHG`.
pub const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;
// `src_reg` of `ld_imm64` and calls.
/// `BPF_PSEUDO_MAP_FD`.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `BPF_PSEUDO_MAP_VALUE`.
pub const BPF_PSEUDO_MAP_VALUE: u8 = 2;
/// `BPF_PSEUDO_CALL`.
pub const BPF_PSEUDO_CALL: u8 = 1;

/// `MAX_BPF_STACK`: bytes of stack per frame.
pub const STACK_SIZE: usize = 512;
/// `MAX_CALL_FRAMES`: the main program plus 7 nested bpf-to-bpf calls.
pub const MAX_CALL_FRAMES: usize = 8;

/// The pre-decoded operation. `X` variants take the source register, `K`
/// variants the immediate (already sign-extended into [`Insn::imm`]).
#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Add64X,
    Add64K,
    Sub64X,
    Sub64K,
    Mul64X,
    Mul64K,
    Div64X,
    Div64K,
    SDiv64X,
    SDiv64K,
    Mod64X,
    Mod64K,
    SMod64X,
    SMod64K,
    Or64X,
    Or64K,
    And64X,
    And64K,
    Lsh64X,
    Lsh64K,
    Rsh64X,
    Rsh64K,
    Arsh64X,
    Arsh64K,
    Xor64X,
    Xor64K,
    Mov64X,
    Mov64K,
    /// `movsx`: sign-extend the low `off` bits of src.
    MovSx64,
    Neg64,
    Add32X,
    Add32K,
    Sub32X,
    Sub32K,
    Mul32X,
    Mul32K,
    Div32X,
    Div32K,
    SDiv32X,
    SDiv32K,
    Mod32X,
    Mod32K,
    SMod32X,
    SMod32K,
    Or32X,
    Or32K,
    And32X,
    And32K,
    Lsh32X,
    Lsh32K,
    Rsh32X,
    Rsh32K,
    Arsh32X,
    Arsh32K,
    Xor32X,
    Xor32K,
    Mov32X,
    Mov32K,
    MovSx32,
    Neg32,
    /// `BPF_ALU | BPF_END | BPF_TO_LE`: truncate to `imm` bits (little-endian host).
    ToLe,
    /// `BPF_ALU | BPF_END | BPF_TO_BE`: byte-swap the low `imm` bits.
    ToBe,
    /// `BPF_ALU64 | BPF_END`: unconditional byte swap.
    Bswap,
    /// `ld_imm64` with a plain 64-bit constant in `imm`.
    LdImm64,
    /// `ld_imm64` of a map pointer: map index in `imm`.
    LdMap,
    /// `ld_imm64` of a map value address: map index `imm >> 32`, offset `imm as u32`.
    LdMapValue,
    /// Second half of an `ld_imm64` (never executed).
    LdImm64Tail,
    LdxB,
    LdxH,
    LdxW,
    LdxDW,
    LdxSB,
    LdxSH,
    LdxSW,
    StB,
    StH,
    StW,
    StDW,
    StxB,
    StxH,
    StxW,
    StxDW,
    /// Atomic read-modify-write of 4 bytes; the operation in `imm`.
    AtomicW,
    /// Atomic read-modify-write of 8 bytes; the operation in `imm`.
    AtomicDW,
    Ja,
    /// `gotol`: `JMP32 | JA`, 32-bit offset in `imm`.
    Ja32,
    Jeq64X,
    Jeq64K,
    Jgt64X,
    Jgt64K,
    Jge64X,
    Jge64K,
    Jset64X,
    Jset64K,
    Jne64X,
    Jne64K,
    Jsgt64X,
    Jsgt64K,
    Jsge64X,
    Jsge64K,
    Jlt64X,
    Jlt64K,
    Jle64X,
    Jle64K,
    Jslt64X,
    Jslt64K,
    Jsle64X,
    Jsle64K,
    Jeq32X,
    Jeq32K,
    Jgt32X,
    Jgt32K,
    Jge32X,
    Jge32K,
    Jset32X,
    Jset32K,
    Jne32X,
    Jne32K,
    Jsgt32X,
    Jsgt32K,
    Jsge32X,
    Jsge32K,
    Jlt32X,
    Jlt32K,
    Jle32X,
    Jle32K,
    Jslt32X,
    Jslt32K,
    Jsle32X,
    Jsle32K,
    /// Helper call: helper id in `imm`.
    Call,
    /// bpf-to-bpf call: absolute target instruction in `imm`.
    CallLocal,
    Exit,
}

/// A pre-decoded instruction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) op: Op,
    pub(crate) dst: u8,
    pub(crate) src: u8,
    pub(crate) off: i16,
    pub(crate) imm: i64,
}

fn alu_op(class: u8, op: u8, x: bool) -> Option<Op> {
    use Op::*;
    let w64 = class == BPF_ALU64;
    let pick = |a64x, a64k, a32x, a32k| {
        Some(match (w64, x) {
            (true, true) => a64x,
            (true, false) => a64k,
            (false, true) => a32x,
            (false, false) => a32k,
        })
    };
    match op {
        BPF_ADD => pick(Add64X, Add64K, Add32X, Add32K),
        BPF_SUB => pick(Sub64X, Sub64K, Sub32X, Sub32K),
        BPF_MUL => pick(Mul64X, Mul64K, Mul32X, Mul32K),
        BPF_DIV => pick(Div64X, Div64K, Div32X, Div32K),
        BPF_OR => pick(Or64X, Or64K, Or32X, Or32K),
        BPF_AND => pick(And64X, And64K, And32X, And32K),
        BPF_LSH => pick(Lsh64X, Lsh64K, Lsh32X, Lsh32K),
        BPF_RSH => pick(Rsh64X, Rsh64K, Rsh32X, Rsh32K),
        BPF_MOD => pick(Mod64X, Mod64K, Mod32X, Mod32K),
        BPF_XOR => pick(Xor64X, Xor64K, Xor32X, Xor32K),
        BPF_MOV => pick(Mov64X, Mov64K, Mov32X, Mov32K),
        BPF_ARSH => pick(Arsh64X, Arsh64K, Arsh32X, Arsh32K),
        _ => None,
    }
}

fn jmp_op(class: u8, op: u8, x: bool) -> Option<Op> {
    use Op::*;
    let w64 = class == BPF_JMP;
    let pick = |a64x, a64k, a32x, a32k| {
        Some(match (w64, x) {
            (true, true) => a64x,
            (true, false) => a64k,
            (false, true) => a32x,
            (false, false) => a32k,
        })
    };
    match op {
        BPF_JEQ => pick(Jeq64X, Jeq64K, Jeq32X, Jeq32K),
        BPF_JGT => pick(Jgt64X, Jgt64K, Jgt32X, Jgt32K),
        BPF_JGE => pick(Jge64X, Jge64K, Jge32X, Jge32K),
        BPF_JSET => pick(Jset64X, Jset64K, Jset32X, Jset32K),
        BPF_JNE => pick(Jne64X, Jne64K, Jne32X, Jne32K),
        BPF_JSGT => pick(Jsgt64X, Jsgt64K, Jsgt32X, Jsgt32K),
        BPF_JSGE => pick(Jsge64X, Jsge64K, Jsge32X, Jsge32K),
        BPF_JLT => pick(Jlt64X, Jlt64K, Jlt32X, Jlt32K),
        BPF_JLE => pick(Jle64X, Jle64K, Jle32X, Jle32K),
        BPF_JSLT => pick(Jslt64X, Jslt64K, Jslt32X, Jslt32K),
        BPF_JSLE => pick(Jsle64X, Jsle64K, Jsle32X, Jsle32K),
        _ => None,
    }
}

/// What the decoder needs to know about the object around the code.
pub(crate) trait DecodeEnv {
    /// Index of the map whose "fd" (our map id) is `fd`, if any.
    fn map_index(&self, fd: i32) -> Option<usize>;
    /// Whether a helper id is available to `BPF_PROG_TYPE_SK_REUSEPORT`.
    fn helper_supported(&self, id: i32) -> Result<(), String>;
}

/// Decodes and validates a linked program (main function followed by its
/// callees, as `aya-obj`'s `relocate_calls` lays them out), the way the
/// verifier's `check_subprogs`, `check_cfg` and `resolve_pseudo_ldimm64`
/// reject malformed code before anything runs.
pub(crate) fn decode(
    program: &str,
    raw: &[RawInsn],
    env: &dyn DecodeEnv,
) -> Result<Vec<Insn>, LoadError> {
    let err = |pc: usize, reason: String| LoadError::Insn {
        program: program.to_string(),
        insn: pc,
        text: raw.get(pc).map(|r| disasm_raw(r, raw.get(pc + 1))),
        reason,
    };
    if raw.is_empty() {
        return Err(LoadError::Program {
            program: program.to_string(),
            reason: "the program has no instructions".into(),
        });
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut pc = 0;
    while pc < raw.len() {
        let r = raw[pc];
        if r.dst > 10 || r.src > 10 {
            return Err(err(pc, format!("invalid register r{}", r.dst.max(r.src))));
        }
        let insn = decode_one(pc, raw, env).map_err(|e| err(pc, e))?;
        let writes_dst = !matches!(
            insn.op,
            Op::StB
                | Op::StH
                | Op::StW
                | Op::StDW
                | Op::StxB
                | Op::StxH
                | Op::StxW
                | Op::StxDW
                | Op::AtomicW
                | Op::AtomicDW
                | Op::Call
                | Op::CallLocal
                | Op::Exit
                | Op::Ja
                | Op::Ja32
        ) && !is_cond_jump(insn.op);
        if writes_dst && r.dst == 10 {
            return Err(err(pc, "frame pointer r10 is read only".into()));
        }
        out.push(insn);
        if matches!(insn.op, Op::LdImm64 | Op::LdMap | Op::LdMapValue) {
            out.push(Insn {
                op: Op::LdImm64Tail,
                dst: 0,
                src: 0,
                off: 0,
                imm: 0,
            });
            pc += 2;
        } else {
            pc += 1;
        }
    }
    // Control flow: every jump lands on an instruction (not inside an
    // `ld_imm64`), the code does not fall off its end.
    for (pc, insn) in out.iter().enumerate() {
        let target = match insn.op {
            Op::Ja => Some(pc as i64 + 1 + insn.off as i64),
            Op::Ja32 => Some(pc as i64 + 1 + insn.imm),
            op if is_cond_jump(op) => Some(pc as i64 + 1 + insn.off as i64),
            Op::CallLocal => Some(insn.imm),
            _ => None,
        };
        if let Some(t) = target {
            if t < 0 || t as usize >= out.len() || out[t as usize].op == Op::LdImm64Tail {
                return Err(err(pc, format!("jump out of range to instruction {t}")));
            }
        }
    }
    let last = out.len() - 1;
    let last_op = if out[last].op == Op::LdImm64Tail {
        Op::LdImm64
    } else {
        out[last].op
    };
    if !matches!(last_op, Op::Exit | Op::Ja | Op::Ja32) {
        return Err(err(last, "last instruction is not an exit or jump".into()));
    }
    Ok(out)
}

pub(crate) fn is_cond_jump(op: Op) -> bool {
    use Op::*;
    matches!(
        op,
        Jeq64X
            | Jeq64K
            | Jgt64X
            | Jgt64K
            | Jge64X
            | Jge64K
            | Jset64X
            | Jset64K
            | Jne64X
            | Jne64K
            | Jsgt64X
            | Jsgt64K
            | Jsge64X
            | Jsge64K
            | Jlt64X
            | Jlt64K
            | Jle64X
            | Jle64K
            | Jslt64X
            | Jslt64K
            | Jsle64X
            | Jsle64K
            | Jeq32X
            | Jeq32K
            | Jgt32X
            | Jgt32K
            | Jge32X
            | Jge32K
            | Jset32X
            | Jset32K
            | Jne32X
            | Jne32K
            | Jsgt32X
            | Jsgt32K
            | Jsge32X
            | Jsge32K
            | Jlt32X
            | Jlt32K
            | Jle32X
            | Jle32K
            | Jslt32X
            | Jslt32K
            | Jsle32X
            | Jsle32K
    )
}

fn decode_one(pc: usize, raw: &[RawInsn], env: &dyn DecodeEnv) -> Result<Insn, String> {
    let r = raw[pc];
    let class = r.code & 0x07;
    let mk = |op: Op, imm: i64| Insn {
        op,
        dst: r.dst,
        src: r.src,
        off: r.off,
        imm,
    };
    match class {
        BPF_ALU | BPF_ALU64 => decode_alu(r, class).map(|(op, imm)| mk(op, imm)),
        BPF_JMP | BPF_JMP32 => decode_jmp(pc, r, class, env).map(|(op, imm)| mk(op, imm)),
        BPF_LD => {
            if r.code != (BPF_LD | BPF_IMM | BPF_DW) {
                return Err(format!(
                    "opcode {:#04x}: legacy packet loads (LD_ABS/LD_IND) are not allowed for \
                     BPF_PROG_TYPE_SK_REUSEPORT",
                    r.code
                ));
            }
            let Some(hi) = raw.get(pc + 1) else {
                return Err("ld_imm64 is the last instruction".into());
            };
            if hi.code != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0 {
                return Err("invalid second half of ld_imm64".into());
            }
            match r.src {
                0 => Ok(mk(
                    Op::LdImm64,
                    ((r.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32)) as i64,
                )),
                BPF_PSEUDO_MAP_FD => {
                    let m = env
                        .map_index(r.imm)
                        .ok_or_else(|| format!("ld_imm64 refers to unknown map fd {}", r.imm))?;
                    Ok(mk(Op::LdMap, m as i64))
                }
                BPF_PSEUDO_MAP_VALUE => {
                    let m = env
                        .map_index(r.imm)
                        .ok_or_else(|| format!("ld_imm64 refers to unknown map fd {}", r.imm))?;
                    Ok(mk(
                        Op::LdMapValue,
                        ((m as i64) << 32) | (hi.imm as u32 as i64),
                    ))
                }
                s => Err(format!(
                    "ld_imm64 with src_reg {s} (BTF ids, callbacks and map indexes are not \
                     supported)"
                )),
            }
        }
        BPF_LDX => {
            let mode = r.code & 0xe0;
            let size = r.code & 0x18;
            let op = match (mode, size) {
                (BPF_MEM, BPF_B) => Op::LdxB,
                (BPF_MEM, BPF_H) => Op::LdxH,
                (BPF_MEM, BPF_W) => Op::LdxW,
                (BPF_MEM, BPF_DW) => Op::LdxDW,
                (BPF_MEMSX, BPF_B) => Op::LdxSB,
                (BPF_MEMSX, BPF_H) => Op::LdxSH,
                (BPF_MEMSX, BPF_W) => Op::LdxSW,
                _ => return Err(format!("unknown opcode {:#04x}", r.code)),
            };
            Ok(mk(op, 0))
        }
        BPF_ST | BPF_STX => {
            let mode = r.code & 0xe0;
            let size = r.code & 0x18;
            if class == BPF_STX && mode == BPF_ATOMIC {
                let op = match size {
                    BPF_W => Op::AtomicW,
                    BPF_DW => Op::AtomicDW,
                    _ => return Err(format!("atomic operation of size {size:#x}")),
                };
                let ok = matches!(
                    r.imm,
                    0x00 | 0x01 | 0x40 | 0x41 | 0x50 | 0x51 | 0xa0 | 0xa1 | BPF_XCHG | BPF_CMPXCHG
                );
                if !ok {
                    return Err(format!("unknown atomic operation {:#x}", r.imm));
                }
                return Ok(mk(op, r.imm as i64));
            }
            if mode != BPF_MEM {
                return Err(format!("unknown opcode {:#04x}", r.code));
            }
            let op = match (class, size) {
                (BPF_ST, BPF_B) => Op::StB,
                (BPF_ST, BPF_H) => Op::StH,
                (BPF_ST, BPF_W) => Op::StW,
                (BPF_ST, _) => Op::StDW,
                (_, BPF_B) => Op::StxB,
                (_, BPF_H) => Op::StxH,
                (_, BPF_W) => Op::StxW,
                _ => Op::StxDW,
            };
            Ok(mk(op, r.imm as i64))
        }
        _ => unreachable!("class is 3 bits"),
    }
}

fn decode_alu(r: RawInsn, class: u8) -> Result<(Op, i64), String> {
    let op = r.code & 0xf0;
    let x = r.code & BPF_X != 0;
    let w64 = class == BPF_ALU64;
    let width = if w64 { 64 } else { 32 };
    match op {
        BPF_NEG => {
            if x {
                return Err(format!("unknown opcode {:#04x}", r.code));
            }
            return Ok((if w64 { Op::Neg64 } else { Op::Neg32 }, 0));
        }
        BPF_END => {
            if !matches!(r.imm, 16 | 32 | 64) {
                return Err(format!("byte swap of {} bits", r.imm));
            }
            let op = match (w64, x) {
                (false, false) => Op::ToLe,
                (false, true) => Op::ToBe,
                (true, false) => Op::Bswap,
                (true, true) => return Err(format!("unknown opcode {:#04x}", r.code)),
            };
            return Ok((op, r.imm as i64));
        }
        _ => {}
    }
    // `off` selects signed division and sign-extending moves (cpu v4).
    let mut decoded =
        alu_op(class, op, x).ok_or_else(|| format!("unknown opcode {:#04x}", r.code))?;
    match (op, r.off) {
        (_, 0) => {}
        (BPF_DIV | BPF_MOD, 1) => {
            use Op::*;
            decoded = match decoded {
                Div64X => SDiv64X,
                Div64K => SDiv64K,
                Div32X => SDiv32X,
                Div32K => SDiv32K,
                Mod64X => SMod64X,
                Mod64K => SMod64K,
                Mod32X => SMod32X,
                _ => SMod32K,
            };
        }
        (BPF_MOV, 8 | 16 | 32) if x && (w64 || r.off != 32) => {
            decoded = if w64 { Op::MovSx64 } else { Op::MovSx32 };
        }
        _ => return Err(format!("invalid offset {} for this ALU operation", r.off)),
    }
    if !x {
        if matches!(op, BPF_DIV | BPF_MOD) && r.imm == 0 {
            return Err("division by zero (immediate)".into());
        }
        if matches!(op, BPF_LSH | BPF_RSH | BPF_ARSH) && (r.imm < 0 || r.imm >= width) {
            return Err(format!("invalid shift {}", r.imm));
        }
    }
    Ok((decoded, r.imm as i64))
}

fn decode_jmp(pc: usize, r: RawInsn, class: u8, env: &dyn DecodeEnv) -> Result<(Op, i64), String> {
    let op = r.code & 0xf0;
    let x = r.code & BPF_X != 0;
    match op {
        BPF_JA => {
            if x {
                return Err(format!("unknown opcode {:#04x}", r.code));
            }
            Ok(if class == BPF_JMP {
                (Op::Ja, 0)
            } else {
                (Op::Ja32, r.imm as i64)
            })
        }
        BPF_CALL if class == BPF_JMP && !x => match r.src {
            0 => {
                env.helper_supported(r.imm)?;
                Ok((Op::Call, r.imm as i64))
            }
            BPF_PSEUDO_CALL => Ok((Op::CallLocal, pc as i64 + 1 + r.imm as i64)),
            _ => Err("kfunc calls are not supported".into()),
        },
        BPF_EXIT if class == BPF_JMP && !x => Ok((Op::Exit, 0)),
        _ => jmp_op(class, op, x)
            .map(|o| (o, r.imm as i64))
            .ok_or_else(|| format!("unknown opcode {:#04x}", r.code)),
    }
}
