//! A disassembler in the kernel's verifier-log style, for error messages.

use crate::insn::*;
use std::fmt;

/// Disassembles a raw instruction in the kernel's verifier-log style (the
/// second half of an `ld_imm64` is passed as `next`).
pub fn disasm_raw(r: &RawInsn, next: Option<&RawInsn>) -> String {
    let class = r.code & 0x07;
    let op = r.code & 0xf0;
    let x = r.code & BPF_X != 0;
    let size = |code: u8| match code & 0x18 {
        BPF_B => "u8",
        BPF_H => "u16",
        BPF_W => "u32",
        _ => "u64",
    };
    match class {
        BPF_ALU | BPF_ALU64 => {
            let p = if class == BPF_ALU64 { "r" } else { "w" };
            let s = if x {
                format!("{p}{}", r.src)
            } else {
                format!("{}", r.imm)
            };
            let sym = match op {
                BPF_ADD => "+=",
                BPF_SUB => "-=",
                BPF_MUL => "*=",
                BPF_DIV if r.off == 1 => "s/=",
                BPF_DIV => "/=",
                BPF_OR => "|=",
                BPF_AND => "&=",
                BPF_LSH => "<<=",
                BPF_RSH => ">>=",
                BPF_MOD if r.off == 1 => "s%=",
                BPF_MOD => "%=",
                BPF_XOR => "^=",
                BPF_MOV => "=",
                BPF_ARSH => "s>>=",
                BPF_NEG => return format!("{p}{} = -{p}{}", r.dst, r.dst),
                BPF_END => {
                    let kind = match (class, x) {
                        (BPF_ALU, false) => "le",
                        (BPF_ALU, true) => "be",
                        _ => "bswap",
                    };
                    return format!("r{} = {kind}{} r{}", r.dst, r.imm, r.dst);
                }
                _ => return format!("invalid opcode {:#04x}", r.code),
            };
            if op == BPF_MOV && r.off != 0 {
                return format!("{p}{} = (s{}){p}{}", r.dst, r.off, r.src);
            }
            format!("{p}{} {sym} {s}", r.dst)
        }
        BPF_JMP | BPF_JMP32 => {
            let p = if class == BPF_JMP { "r" } else { "w" };
            let s = if x {
                format!("{p}{}", r.src)
            } else {
                format!("{}", r.imm)
            };
            let cmp = match op {
                BPF_JA if class == BPF_JMP => return format!("goto {:+}", r.off),
                BPF_JA => return format!("gotol {:+}", r.imm),
                BPF_CALL if r.src == BPF_PSEUDO_CALL => return format!("call pc{:+}", r.imm),
                BPF_CALL => return format!("call {} ({})", r.imm, helper_name(r.imm)),
                BPF_EXIT => return "exit".to_string(),
                BPF_JEQ => "==",
                BPF_JGT => ">",
                BPF_JGE => ">=",
                BPF_JSET => "&",
                BPF_JNE => "!=",
                BPF_JSGT => "s>",
                BPF_JSGE => "s>=",
                BPF_JLT => "<",
                BPF_JLE => "<=",
                BPF_JSLT => "s<",
                BPF_JSLE => "s<=",
                _ => return format!("invalid opcode {:#04x}", r.code),
            };
            format!("if {p}{} {cmp} {s} goto {:+}", r.dst, r.off)
        }
        BPF_LD => {
            let hi = next.map_or(0, |n| n.imm as u32 as u64);
            match r.src {
                BPF_PSEUDO_MAP_FD => format!("r{} = map[id:{}] ll", r.dst, r.imm),
                BPF_PSEUDO_MAP_VALUE => {
                    format!("r{} = map[id:{}][0]+{} ll", r.dst, r.imm, hi)
                }
                _ => format!("r{} = {:#x} ll", r.dst, (r.imm as u32 as u64) | (hi << 32)),
            }
        }
        BPF_LDX => {
            let sx = if r.code & 0xe0 == BPF_MEMSX { "s" } else { "" };
            format!(
                "r{} = *({sx}{} *)(r{} {:+})",
                r.dst,
                size(r.code),
                r.src,
                r.off
            )
        }
        BPF_ST => format!("*({} *)(r{} {:+}) = {}", size(r.code), r.dst, r.off, r.imm),
        _ => {
            if r.code & 0xe0 == BPF_ATOMIC {
                format!(
                    "lock *({} *)(r{} {:+}) op {:#x} r{}",
                    size(r.code),
                    r.dst,
                    r.off,
                    r.imm,
                    r.src
                )
            } else {
                format!("*({} *)(r{} {:+}) = r{}", size(r.code), r.dst, r.off, r.src)
            }
        }
    }
}

/// The kernel's name of a helper id (`___BPF_FUNC_MAPPER`), for messages.
pub fn helper_name(id: i32) -> &'static str {
    match id {
        1 => "bpf_map_lookup_elem",
        2 => "bpf_map_update_elem",
        3 => "bpf_map_delete_elem",
        4 => "bpf_probe_read",
        5 => "bpf_ktime_get_ns",
        6 => "bpf_trace_printk",
        7 => "bpf_get_prandom_u32",
        8 => "bpf_get_smp_processor_id",
        12 => "bpf_tail_call",
        14 => "bpf_get_current_pid_tgid",
        26 => "bpf_skb_load_bytes",
        42 => "bpf_get_numa_node_id",
        46 => "bpf_get_socket_cookie",
        68 => "bpf_skb_load_bytes_relative",
        82 => "bpf_sk_select_reuseport",
        84 => "bpf_sk_release",
        87 => "bpf_map_push_elem",
        88 => "bpf_map_pop_elem",
        89 => "bpf_map_peek_elem",
        118 => "bpf_jiffies64",
        125 => "bpf_ktime_get_boot_ns",
        130 => "bpf_ringbuf_output",
        160 => "bpf_ktime_get_coarse_ns",
        164 => "bpf_for_each_map_elem",
        165 => "bpf_snprintf",
        177 => "bpf_trace_vprintk",
        181 => "bpf_loop",
        _ => "unknown helper",
    }
}

impl fmt::Display for RawInsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&disasm_raw(self, None))
    }
}
