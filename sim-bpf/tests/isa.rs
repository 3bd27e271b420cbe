//! The instruction set, instruction by instruction, against the kernel's
//! interpreter (`___bpf_prog_run`, `kernel/bpf/core.c`) and the verifier's
//! rewrites (`do_misc_fixups`) and load-time checks.

mod common;

use common::*;
use sim_bpf::insn::*;
use sim_bpf::*;

fn r0_after(setup: Vec<RawInsn>) -> u64 {
    let mut code = setup;
    code.push(exit());
    eval(code).unwrap_or_else(|e| panic!("{e}"))
}

/// r0 = a (64-bit), r1 = b (64-bit), then `op`, exit.
fn bin64(a: u64, b: u64, op: RawInsn) -> u64 {
    r0_after(prog![ld64(0, a), ld64(1, b), op])
}

#[test]
fn alu64_arithmetic_wraps() {
    assert_eq!(bin64(u64::MAX, 2, alu64x(BPF_ADD, 0, 1)), 1);
    assert_eq!(bin64(1, 2, alu64x(BPF_SUB, 0, 1)), u64::MAX);
    assert_eq!(bin64(1 << 63, 2, alu64x(BPF_MUL, 0, 1)), 0);
    assert_eq!(
        bin64(7, 0, alu64(BPF_ADD, 0, -8)),
        u64::MAX,
        "imm is sign-extended"
    );
    assert_eq!(bin64(0xf0, 0x3c, alu64x(BPF_AND, 0, 1)), 0x30);
    assert_eq!(bin64(0xf0, 0x0f, alu64x(BPF_OR, 0, 1)), 0xff);
    assert_eq!(bin64(0xff, 0x0f, alu64x(BPF_XOR, 0, 1)), 0xf0);
    assert_eq!(bin64(5, 0, alu64(BPF_NEG, 0, 0)), (-5i64) as u64);
    assert_eq!(
        bin64(0, 0, alu64(BPF_MOV, 0, -1)),
        u64::MAX,
        "mov64 imm sign-extends"
    );
}

#[test]
fn alu32_zero_extends_the_result() {
    assert_eq!(bin64(u64::MAX, 1, alu32x(BPF_ADD, 0, 1)), 0);
    assert_eq!(bin64(0xffff_ffff_0000_0005, 0, alu32(BPF_ADD, 0, 1)), 6);
    assert_eq!(
        bin64(0, 0, alu32(BPF_MOV, 0, -1)),
        0xffff_ffff,
        "mov32 imm zero-extends"
    );
    assert_eq!(bin64(0x1_0000_0005, 0, alu32(BPF_NEG, 0, 0)), 0xffff_fffb);
    assert_eq!(bin64(0, 0xdead_beef_0000_0001, alu32x(BPF_MOV, 0, 1)), 1);
}

#[test]
fn register_shifts_are_masked_like_the_kernel_interpreter() {
    // `DST << (SRC & 63)` and `(u32) DST << (SRC & 31)`.
    assert_eq!(bin64(1, 65, alu64x(BPF_LSH, 0, 1)), 2);
    assert_eq!(bin64(1, 33, alu32x(BPF_LSH, 0, 1)), 2);
    assert_eq!(
        bin64(0x8000_0000_0000_0000, 64, alu64x(BPF_RSH, 0, 1)),
        0x8000_0000_0000_0000
    );
    assert_eq!(bin64(0x8000_0000, 31 + 32, alu32x(BPF_RSH, 0, 1)), 1);
    assert_eq!(
        bin64(0x8000_0000_0000_0000, 63, alu64x(BPF_ARSH, 0, 1)),
        u64::MAX
    );
    assert_eq!(bin64(0x8000_0000, 31, alu32x(BPF_ARSH, 0, 1)), 0xffff_ffff);
    assert_eq!(bin64(0xff, 4, alu64(BPF_RSH, 0, 4)), 0xf);
}

#[test]
fn immediate_shift_beyond_the_width_is_refused_at_load() {
    let e = asm(prog![mov64(0, 1), alu64(BPF_LSH, 0, 64), exit()], vec![]).unwrap_err();
    assert!(e.to_string().contains("invalid shift 64"), "{e}");
    let e = asm(prog![mov64(0, 1), alu32(BPF_LSH, 0, 32), exit()], vec![]).unwrap_err();
    assert!(e.to_string().contains("instruction 1"), "{e}");
}

#[test]
fn division_and_modulo_by_a_zero_register_follow_do_misc_fixups() {
    // 64-bit: x / 0 = 0, x % 0 = x.
    assert_eq!(bin64(7, 0, alu64x(BPF_DIV, 0, 1)), 0);
    assert_eq!(bin64(7, 0, alu64x(BPF_MOD, 0, 1)), 7);
    // 32-bit: x % 0 = (u32) x (the `BPF_MOV32_REG dst, dst` of the patchlet).
    assert_eq!(bin64(0x1_0000_0007, 0, alu32x(BPF_MOD, 0, 1)), 7);
    assert_eq!(
        bin64(0x1_0000_0007, 0x1_0000_0000, alu32x(BPF_DIV, 0, 1)),
        0,
        "the low 32 bits are 0"
    );
    assert_eq!(bin64(100, 7, alu64x(BPF_DIV, 0, 1)), 14);
    assert_eq!(bin64(100, 7, alu64x(BPF_MOD, 0, 1)), 2);
}

#[test]
fn division_by_zero_is_counted_or_an_error_when_asked() {
    let code = prog![ld64(0, 9), mov64(1, 0), alu64x(BPF_DIV, 0, 1), exit()];
    let mut obj = asm(code, vec![]).unwrap();
    let mut env = group_env(1, false);
    assert_eq!(
        obj.run(ProgId(0), &mut env, &selection(0, 0)).unwrap().ret,
        0
    );
    assert_eq!(obj.stats(ProgId(0)).div_by_zero, 1);
    obj.set_options(RunOptions {
        div_zero: DivZero::Error,
        ..Default::default()
    });
    let e = obj.run(ProgId(0), &mut env, &selection(0, 0)).unwrap_err();
    assert_eq!(e.insn, 3);
    assert_eq!(e.kind, Fault::DivisionByZero);
    assert!(
        e.to_string().contains("program \"t\", instruction 3"),
        "{e}"
    );
}

#[test]
fn immediate_division_by_zero_is_refused_at_load() {
    let e = asm(prog![mov64(0, 1), alu64(BPF_DIV, 0, 0), exit()], vec![]).unwrap_err();
    assert!(e.to_string().contains("division by zero"), "{e}");
}

fn sdiv(class_alu64: bool, a: u64, b: u64, modulo: bool) -> u64 {
    let class = if class_alu64 { BPF_ALU64 } else { BPF_ALU };
    let op = if modulo { BPF_MOD } else { BPF_DIV };
    r0_after(prog![
        ld64(0, a),
        ld64(1, b),
        RawInsn::new(class | op | BPF_X, 0, 1, 1, 0)
    ])
}

#[test]
fn signed_division_and_modulo_cpu_v4() {
    assert_eq!(sdiv(true, (-7i64) as u64, 2, false), (-3i64) as u64);
    assert_eq!(
        sdiv(true, (-7i64) as u64, 2, true),
        (-1i64) as u64,
        "the remainder has the dividend's sign"
    );
    assert_eq!(sdiv(true, 7, (-2i64) as u64, true), 1);
    assert_eq!(
        sdiv(false, (-7i32) as u32 as u64, 2, false),
        (-3i32) as u32 as u64
    );
    assert_eq!(
        sdiv(false, (-7i32) as u32 as u64, 2, true),
        (-1i32) as u32 as u64
    );
    // LLONG_MIN / -1 = LLONG_MIN, x % -1 = 0, x s/ 0 = 0, x s% 0 = x.
    assert_eq!(
        sdiv(true, i64::MIN as u64, u64::MAX, false),
        i64::MIN as u64
    );
    assert_eq!(
        sdiv(false, i32::MIN as u32 as u64, 0xffff_ffff, false),
        i32::MIN as u32 as u64
    );
    assert_eq!(sdiv(true, 5, u64::MAX, true), 0);
    assert_eq!(sdiv(true, 5, 0, false), 0);
    assert_eq!(sdiv(true, 5, 0, true), 5);
    // Immediate -1: `BPF_NEG` / `BPF_MOV32_IMM dst, 0`.
    assert_eq!(
        r0_after(prog![
            ld64(0, 9),
            RawInsn::new(BPF_ALU64 | BPF_DIV, 0, 0, 1, -1)
        ]),
        (-9i64) as u64
    );
    assert_eq!(
        r0_after(prog![
            ld64(0, 9),
            RawInsn::new(BPF_ALU64 | BPF_MOD, 0, 0, 1, -1)
        ]),
        0
    );
}

#[test]
fn sign_extending_moves_and_loads() {
    let movsx = |w: u8, bits: i16, v: u64| {
        r0_after(prog![
            ld64(1, v),
            RawInsn::new(w | BPF_MOV | BPF_X, 0, 1, bits, 0)
        ])
    };
    assert_eq!(movsx(BPF_ALU64, 8, 0x80), 0xffff_ffff_ffff_ff80);
    assert_eq!(movsx(BPF_ALU64, 16, 0x1_8000), 0xffff_ffff_ffff_8000);
    assert_eq!(movsx(BPF_ALU64, 32, 0x8000_0000), 0xffff_ffff_8000_0000);
    assert_eq!(
        movsx(BPF_ALU, 8, 0x80),
        0xffff_ff80,
        "32-bit movsx zero-extends"
    );
    let r = r0_after(prog![st(BPF_W, 10, -4, -2), ldxs(BPF_B, 0, 10, -4)]);
    assert_eq!(r, u64::MAX - 1);
    let r = r0_after(prog![st(BPF_W, 10, -4, -2), ldx(BPF_H, 0, 10, -4)]);
    assert_eq!(r, 0xfffe);
}

#[test]
fn byte_swaps() {
    let v = 0x0102_0304_0506_0708u64;
    let end = |class: u8, src: u8, bits: i32| {
        r0_after(prog![
            ld64(0, v),
            RawInsn::new(class | BPF_END | src, 0, 0, 0, bits)
        ])
    };
    assert_eq!(
        end(BPF_ALU, BPF_X, 16),
        0x0807,
        "to_be16 swaps and truncates"
    );
    assert_eq!(end(BPF_ALU, BPF_X, 32), 0x0807_0605);
    assert_eq!(end(BPF_ALU, BPF_X, 64), 0x0807_0605_0403_0201);
    assert_eq!(
        end(BPF_ALU, 0, 16),
        0x0708,
        "to_le16 on a little-endian host truncates"
    );
    assert_eq!(end(BPF_ALU, 0, 32), 0x0506_0708);
    assert_eq!(end(BPF_ALU64, 0, 32), 0x0807_0605, "bswap32");
}

#[test]
fn jumps_64_and_32_bit_signed_and_unsigned() {
    // r0 = 1 if the jump is taken, else 0.
    let taken = |j: RawInsn, a: u64, b: u64| {
        r0_after(prog![ld64(1, a), ld64(2, b), mov64(0, 1), j, mov64(0, 0)])
    };
    assert_eq!(taken(jmpx(BPF_JGT, 1, 2, 1), u64::MAX, 1), 1);
    assert_eq!(
        taken(jmpx(BPF_JSGT, 1, 2, 1), u64::MAX, 1),
        0,
        "-1 s> 1 is false"
    );
    assert_eq!(taken(jmpx(BPF_JSLT, 1, 2, 1), u64::MAX, 1), 1);
    assert_eq!(taken(jmpx(BPF_JLE, 1, 2, 1), 3, 3), 1);
    assert_eq!(taken(jmpx(BPF_JSET, 1, 2, 1), 0b1010, 0b0101), 0);
    assert_eq!(
        taken(jmp(BPF_JEQ, 1, -1, 1), u64::MAX, 0),
        1,
        "imm sign-extends for 64-bit compares"
    );
    assert_eq!(
        taken(jmp32(BPF_JEQ, 1, 5, 1), 0xffff_ffff_0000_0005, 0),
        1,
        "JMP32 compares the low halves"
    );
    assert_eq!(taken(jmp(BPF_JEQ, 1, 5, 1), 0xffff_ffff_0000_0005, 0), 0);
    assert_eq!(taken(jmp32(BPF_JSLT, 1, 0, 1), 0x8000_0000, 0), 1);
    assert_eq!(taken(jmp32(BPF_JGE, 1, 0, 1), 0x8000_0000, 0), 1);
    assert_eq!(
        taken(
            RawInsn::new(BPF_JMP32 | BPF_JNE | BPF_X, 1, 2, 1, 0),
            0x1_0000_0000,
            0
        ),
        0
    );
    // gotol: `JMP32 | JA` with the offset in imm.
    assert_eq!(
        r0_after(prog![
            mov64(0, 1),
            RawInsn::new(BPF_JMP32 | BPF_JA, 0, 0, 0, 1),
            mov64(0, 2)
        ]),
        1
    );
}

#[test]
fn ld_imm64_and_a_loop() {
    // Sum 1..=10 with a backward jump.
    let r = r0_after(prog![
        mov64(0, 0),
        mov64(1, 10),
        alu64x(BPF_ADD, 0, 1),
        alu64(BPF_SUB, 1, 1),
        jmp(BPF_JNE, 1, 0, -3),
    ]);
    assert_eq!(r, 55);
    assert_eq!(
        r0_after(prog![ld64(0, 0x1234_5678_9abc_def0)]),
        0x1234_5678_9abc_def0
    );
}

#[test]
fn stack_loads_and_stores_of_every_size() {
    let r = r0_after(prog![
        ld64(1, 0x1122_3344_5566_7788),
        stx(BPF_DW, 10, 1, -8),
        st(BPF_B, 10, -8, 0x99),
        st(BPF_H, 10, -6, 0x7777),
        ldx(BPF_DW, 0, 10, -8),
    ]);
    assert_eq!(r, 0x1122_3344_7777_7799);
    let r = r0_after(prog![st(BPF_DW, 10, -16, -1), ldx(BPF_W, 0, 10, -12)]);
    assert_eq!(r, 0xffff_ffff, "st DW sign-extends its imm");
}

#[test]
fn atomics_add_fetch_cmpxchg_xchg_xor_of_both_sizes() {
    let r = r0_after(prog![
        st(BPF_DW, 10, -8, 40),
        mov64(1, 2),
        atomic(BPF_DW, 0x00, 10, 1, -8), // add
        mov64(1, 5),
        atomic(BPF_DW, 0x01, 10, 1, -8), // fetch_add: r1 = 42
        mov64x(0, 1),
        ldx(BPF_DW, 2, 10, -8), // 47
        alu64x(BPF_ADD, 0, 2),  // 89
    ]);
    assert_eq!(r, 89);
    // cmpxchg: r0 = old; store if old == r0.
    let r = r0_after(prog![
        st(BPF_W, 10, -4, 7),
        mov64(0, 7),
        mov64(1, 9),
        atomic(BPF_W, 0xf1, 10, 1, -4),
        ldx(BPF_W, 3, 10, -4),
        alu64(BPF_LSH, 3, 8),
        alu64x(BPF_OR, 0, 3),
    ]);
    assert_eq!(r, 9 << 8 | 7);
    // xchg, or/and/xor with fetch on 32 bits.
    let r = r0_after(prog![
        st(BPF_W, 10, -4, 0b1100),
        mov64(1, 0b1010),
        atomic(BPF_W, 0xa1, 10, 1, -4), // fetch_xor: r1 = 12, mem = 6
        mov64(2, 3),
        atomic(BPF_W, 0xe1, 10, 2, -4), // xchg: r2 = 6, mem = 3
        ldx(BPF_W, 0, 10, -4),
        alu64(BPF_LSH, 0, 8),
        alu64x(BPF_OR, 0, 2),
        alu64(BPF_LSH, 0, 8),
        alu64x(BPF_OR, 0, 1),
    ]);
    assert_eq!(r, (3 << 16) | (6 << 8) | 12);
}

#[test]
fn bpf_to_bpf_calls_have_their_own_stack_frames_and_keep_callee_saved_registers() {
    let code = prog![
        mov64(6, 100),
        st(BPF_DW, 10, -8, 1),
        mov64(1, 20),
        call_local(4),
        ldx(BPF_DW, 1, 10, -8),
        alu64x(BPF_ADD, 0, 1),
        alu64x(BPF_ADD, 0, 6),
        exit(),
        st(BPF_DW, 10, -8, 555),
        mov64(6, 0),
        mov64x(0, 1),
        alu64(BPF_MUL, 0, 2),
        exit(),
    ];
    assert_eq!(eval(code).unwrap(), 40 + 1 + 100);
}

#[test]
fn call_depth_is_limited_to_eight_frames() {
    // A subprogram that calls itself forever.
    let code = prog![call_local(1), exit(), call_local(-1), exit()];
    let e = eval(code).unwrap_err();
    assert_eq!(e.kind, Fault::CallDepth);
}

#[test]
fn the_instruction_budget_stops_an_endless_loop_with_an_error() {
    let code = prog![
        mov64(0, 0),
        RawInsn::new(BPF_JMP | BPF_JA, 0, 0, -1, 0),
        exit()
    ];
    let mut obj = asm(code, vec![]).unwrap();
    obj.set_options(RunOptions {
        insn_budget: 1000,
        ..Default::default()
    });
    let mut env = group_env(1, false);
    let e = obj.run(ProgId(0), &mut env, &selection(0, 0)).unwrap_err();
    assert_eq!(e.kind, Fault::InstructionBudget { limit: 1000 });
    assert_eq!(e.insn, 1);
    assert_eq!(obj.stats(ProgId(0)).insns, 1000);
    assert_eq!(obj.stats(ProgId(0)).errors, 1);
}

#[test]
fn malformed_code_is_refused_at_load_naming_the_instruction() {
    let cases: Vec<(Vec<RawInsn>, &str)> = vec![
        (
            prog![RawInsn::new(0xff, 0, 0, 0, 0), exit()],
            "unknown opcode 0xff",
        ),
        (prog![jmp(BPF_JEQ, 0, 0, 5), exit()], "jump out of range"),
        (prog![mov64(0, 0)], "last instruction is not an exit"),
        (
            prog![mov64(10, 0), exit()],
            "frame pointer r10 is read only",
        ),
        (
            prog![RawInsn::new(BPF_ALU64 | BPF_MOV, 11, 0, 0, 0), exit()],
            "invalid register r11",
        ),
        (
            prog![RawInsn::new(BPF_LD | BPF_IMM | BPF_DW, 0, 0, 0, 0)],
            "ld_imm64 is the last instruction",
        ),
        (
            prog![ld64(0, 1), jmp(BPF_JA, 0, 0, -2), exit()],
            "jump out of range",
        ),
        (prog![RawInsn::new(0x20, 0, 0, 0, 0), exit()], "LD_ABS"),
        (prog![call(12), exit()], "bpf_tail_call"),
        (prog![ld_map(1, 3), exit()], "unknown map fd 3"),
        (
            prog![RawInsn::new(BPF_JMP | BPF_CALL, 0, 2, 0, 7), exit()],
            "kfunc",
        ),
    ];
    for (code, want) in cases {
        let e = asm(code, vec![]).unwrap_err().to_string();
        assert!(e.contains(want), "want {want:?} in {e}");
        assert!(e.contains("program \"t\""), "{e}");
    }
}

#[test]
fn return_values_other_than_sk_pass_drop_and_only_the_low_32_bits_count() {
    let run = |v: u64| {
        let mut obj = asm(prog![ld64(0, v), exit()], vec![]).unwrap();
        let mut env = group_env(1, false);
        obj.run(ProgId(0), &mut env, &selection(0, 0))
            .unwrap()
            .verdict
    };
    assert_eq!(run(1), Verdict::Pass);
    assert_eq!(run(0), Verdict::Drop);
    assert_eq!(run(2), Verdict::Drop);
    assert_eq!(
        run(0x1_0000_0001),
        Verdict::Pass,
        "bpf_prog_run returns a u32"
    );
}
