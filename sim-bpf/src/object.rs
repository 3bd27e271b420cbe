//! Loading a clang-built eBPF ELF object (`aya-obj`: sections, BTF `.maps`,
//! legacy `maps`, data sections, map and call relocations) into runnable
//! programs and live maps, and the run API.

use crate::ctx::{ReuseportCtx, SockHandle};
use crate::env::Env;
use crate::error::{Fault, LoadError, RunError};
use crate::helpers;
use crate::insn::{self, disasm_raw, Insn, RawInsn, MAX_CALL_FRAMES, STACK_SIZE};
use crate::maps::{Global, MapDef, MapId, MapSet, MapType};
use crate::vm::{CallState, Machine};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

/// `expected_attach_type` of an `SK_REUSEPORT` program, from its section:
/// `sk_reuseport` or `sk_reuseport/migrate` (libbpf's section names).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AttachType {
    /// `BPF_SK_REUSEPORT_SELECT`: called for listener selection only.
    Select,
    /// `BPF_SK_REUSEPORT_SELECT_OR_MIGRATE`: also for every migration, and
    /// makes the group migration-capable (`reuseport_stop_listen_sock`).
    SelectOrMigrate,
}

/// How division and modulo by zero behave.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum DivZero {
    /// As the kernel after `do_misc_fixups`: `x / 0 = 0`, `x % 0 = x`
    /// (32-bit: zero-extended), never a fault. Each occurrence is counted in
    /// [`ProgramStats::div_by_zero`].
    #[default]
    Kernel,
    /// Stop the call with [`Fault::DivisionByZero`].
    Error,
}

/// Per-call limits and behaviour.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Executed-instruction budget per call (default 1,000,000, the
    /// verifier's complexity limit `BPF_COMPLEXITY_LIMIT_INSNS`, which bounds
    /// what a verified program can execute).
    pub insn_budget: u64,
    /// Division by zero.
    pub div_zero: DivZero,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            insn_budget: 1_000_000,
            div_zero: DivZero::Kernel,
        }
    }
}

/// A program's decision, as `bpf_run_sk_reuseport` turns it into a socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `SK_PASS` after a successful `bpf_sk_select_reuseport` (the last
    /// successful one wins).
    Select(SockHandle),
    /// `SK_PASS` without a selection: the kernel falls back to the hash.
    Pass,
    /// Any other return value: `ERR_PTR(-ECONNREFUSED)` (selection: no
    /// listener, RST; migration: `TCPMigrateReqFailure`).
    Drop,
}

/// The result of one call.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The decision.
    pub verdict: Verdict,
    /// `r0` at exit.
    pub ret: u64,
    /// Instructions executed.
    pub insns: u64,
}

/// Counters of one program.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgramStats {
    /// Calls (including failed ones).
    pub calls: u64,
    /// Instructions executed in all calls.
    pub insns: u64,
    /// Most instructions in one call.
    pub insns_max: u64,
    /// [`Verdict::Select`] results.
    pub selects: u64,
    /// [`Verdict::Pass`] results.
    pub passes: u64,
    /// [`Verdict::Drop`] results.
    pub drops: u64,
    /// Calls that stopped with a [`RunError`].
    pub errors: u64,
    /// Divisions or modulos by zero (given the kernel's result).
    pub div_by_zero: u64,
}

/// One loaded `SK_REUSEPORT` program.
#[derive(Clone, Debug)]
pub struct Program {
    name: String,
    section: String,
    attach: AttachType,
    raw: Vec<RawInsn>,
    code: Vec<Insn>,
    stats: ProgramStats,
}

impl Program {
    /// Function name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// ELF section name.
    pub fn section(&self) -> &str {
        &self.section
    }
    /// Attach type.
    pub fn attach_type(&self) -> AttachType {
        self.attach
    }
    /// The linked instructions (main function then callees).
    pub fn instructions(&self) -> &[RawInsn] {
        &self.raw
    }
    /// Counters so far.
    pub fn stats(&self) -> &ProgramStats {
        &self.stats
    }
}

/// A program's index in its object.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgId(pub usize);

/// A loaded object: its `SK_REUSEPORT` programs and its maps, shared by
/// the programs as in the kernel.
#[derive(Clone, Debug)]
pub struct BpfObject {
    programs: Vec<Program>,
    maps: MapSet,
    license: String,
    gpl: bool,
    options: RunOptions,
    stack: Box<[u8]>,
    scratch: Vec<u8>,
}

/// `license_is_gpl_compatible` (`include/linux/license.h`).
pub fn license_is_gpl_compatible(l: &str) -> bool {
    matches!(
        l,
        "GPL"
            | "GPL v2"
            | "GPL and additional rights"
            | "Dual BSD/GPL"
            | "Dual MIT/GPL"
            | "Dual MPL/GPL"
    )
}

struct Decoding<'a> {
    maps: &'a MapSet,
    gpl: bool,
}

impl insn::DecodeEnv for Decoding<'_> {
    fn map_index(&self, fd: i32) -> Option<usize> {
        (fd >= 0 && (fd as usize) < self.maps.len()).then_some(fd as usize)
    }

    fn helper_supported(&self, id: i32) -> Result<(), String> {
        if !helpers::SUPPORTED.contains(&id) {
            return Err(format!(
                "helper {id} ({}) is not available to BPF_PROG_TYPE_SK_REUSEPORT in the simulator",
                insn::helper_name(id)
            ));
        }
        if id == helpers::TRACE_PRINTK && !self.gpl {
            return Err(
                "bpf_trace_printk is GPL-only and the object's license is not GPL-compatible"
                    .into(),
            );
        }
        Ok(())
    }
}

fn to_raw(i: &aya_obj::generated::bpf_insn) -> RawInsn {
    RawInsn::new(i.code, i.dst_reg(), i.src_reg(), i.off, i.imm)
}

fn map_def_of(name: &str, m: &aya_obj::Map) -> Result<MapDef, LoadError> {
    let t = m.map_type();
    let map_type = MapType::from_u32(t).ok_or_else(|| LoadError::Map {
        map: name.to_string(),
        reason: format!("map type {t} is not supported by the simulator"),
    })?;
    let inner = match m.inner() {
        Some(i) => Some(Box::new(map_def_of(&format!("{name}.inner"), &i)?)),
        None => None,
    };
    let is_data = matches!(
        m.section_kind(),
        aya_obj::EbpfSectionKind::Data
            | aya_obj::EbpfSectionKind::Rodata
            | aya_obj::EbpfSectionKind::Bss
    );
    Ok(MapDef {
        name: name.to_string(),
        map_type,
        key_size: m.key_size(),
        value_size: m.value_size(),
        max_entries: m.max_entries(),
        flags: m.map_flags(),
        inner,
        data: is_data.then(|| m.data().to_vec()),
        globals: Vec::new(),
    })
}

impl BpfObject {
    /// Parses and links an ELF object built with `clang -target bpf`. Every
    /// `sk_reuseport` program is decoded and validated now; other program
    /// types in the object are ignored.
    #[allow(clippy::disallowed_types)] // aya-obj's relocation API takes a std HashSet; it is only looked up.
    pub fn load(bytes: &[u8]) -> Result<Self, LoadError> {
        let elf = |e: &dyn std::fmt::Display| LoadError::Elf(e.to_string());
        let mut obj = aya_obj::Object::parse(bytes).map_err(|e| elf(&e))?;
        let file = object::File::parse(bytes).map_err(|e| elf(&e))?;
        if obj.has_btf_relocations() {
            return Err(LoadError::Elf(
                "the object has CO-RE (BTF) relocations, which the simulator does not resolve; \
                 build against the UAPI <linux/bpf.h>, not vmlinux.h"
                    .into(),
            ));
        }
        let license = obj.license.to_string_lossy().into_owned();
        // Maps in name order: stable ids whatever aya-obj's HashMap does.
        let mut names: Vec<String> = obj.maps.keys().cloned().collect();
        names.sort();
        let mut defs = Vec::with_capacity(names.len());
        for n in &names {
            let m = &obj.maps[n];
            let mut def = map_def_of(n, m)?;
            if def.data.is_some() {
                def.globals = globals_of(&file, m.section_index());
            }
            defs.push(def);
        }
        let maps = MapSet::new(defs)?;
        let text_sections: std::collections::HashSet<usize> =
            obj.functions.keys().map(|(section, _)| *section).collect();
        let aya_maps = obj.maps.clone();
        obj.relocate_maps(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i as i32, &aya_maps[n])),
            &text_sections,
        )
        .map_err(|e| LoadError::Elf(format!("{e}: {:?}", std::error::Error::source(&e))))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| LoadError::Elf(format!("{e}: {:?}", std::error::Error::source(&e))))?;

        let gpl = license_is_gpl_compatible(&license);
        let mut prog_names: Vec<&String> = obj.programs.keys().collect();
        prog_names.sort();
        let mut programs = Vec::new();
        for name in prog_names {
            let p = &obj.programs[name];
            let aya_obj::ProgramSection::SkReuseport { attach_type } = &p.section else {
                continue;
            };
            let attach = match attach_type {
                aya_obj::programs::SkReuseportAttachType::Select => AttachType::Select,
                aya_obj::programs::SkReuseportAttachType::SelectOrMigrate => {
                    AttachType::SelectOrMigrate
                }
            };
            let section = file
                .section_by_index(object::SectionIndex(p.section_index))
                .and_then(|s| s.name().map(str::to_string))
                .unwrap_or_default();
            let f = obj
                .functions
                .get(&p.function_key())
                .ok_or_else(|| LoadError::Program {
                    program: name.clone(),
                    reason: "no code".into(),
                })?;
            let raw: Vec<RawInsn> = f.instructions.iter().map(to_raw).collect();
            programs.push(Self::decode_program(
                name, &section, attach, raw, &maps, gpl,
            )?);
        }
        if programs.is_empty() {
            return Err(LoadError::Elf(
                "the object has no sk_reuseport program".into(),
            ));
        }
        Ok(Self::assemble(programs, maps, license, gpl))
    }

    /// Builds an object from hand-assembled instructions (tests, tools).
    /// Map references in `ld_imm64` use `src_reg = BPF_PSEUDO_MAP_FD` (1) or
    /// `BPF_PSEUDO_MAP_VALUE` (2) with the map's index in `maps` as `imm`.
    /// The license is `"GPL"`.
    pub fn from_insns(
        name: &str,
        attach: AttachType,
        raw: Vec<RawInsn>,
        maps: Vec<MapDef>,
    ) -> Result<Self, LoadError> {
        let maps = MapSet::new(maps)?;
        let section = match attach {
            AttachType::Select => "sk_reuseport",
            AttachType::SelectOrMigrate => "sk_reuseport/migrate",
        };
        let p = Self::decode_program(name, section, attach, raw, &maps, true)?;
        Ok(Self::assemble(vec![p], maps, "GPL".into(), true))
    }

    fn decode_program(
        name: &str,
        section: &str,
        attach: AttachType,
        raw: Vec<RawInsn>,
        maps: &MapSet,
        gpl: bool,
    ) -> Result<Program, LoadError> {
        let code = insn::decode(name, &raw, &Decoding { maps, gpl })?;
        Ok(Program {
            name: name.to_string(),
            section: section.to_string(),
            attach,
            raw,
            code,
            stats: ProgramStats::default(),
        })
    }

    fn assemble(programs: Vec<Program>, maps: MapSet, license: String, gpl: bool) -> Self {
        BpfObject {
            programs,
            maps,
            license,
            gpl,
            options: RunOptions::default(),
            stack: vec![0u8; MAX_CALL_FRAMES * STACK_SIZE].into_boxed_slice(),
            scratch: Vec::with_capacity(64),
        }
    }

    /// The programs, in name order.
    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// A program by function name, or by section name if exactly one
    /// program lives in that section.
    pub fn program(&self, name_or_section: &str) -> Result<ProgId, LoadError> {
        if let Some(i) = self.programs.iter().position(|p| p.name == name_or_section) {
            return Ok(ProgId(i));
        }
        let in_section: Vec<usize> = (0..self.programs.len())
            .filter(|&i| self.programs[i].section == name_or_section)
            .collect();
        match in_section.as_slice() {
            [i] => Ok(ProgId(*i)),
            [] => Err(LoadError::Program {
                program: name_or_section.to_string(),
                reason: format!(
                    "no sk_reuseport program or section of that name (programs: {})",
                    self.programs
                        .iter()
                        .map(|p| format!("{} in {}", p.name, p.section))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            _ => Err(LoadError::Program {
                program: name_or_section.to_string(),
                reason: "several programs in that section: name the function".into(),
            }),
        }
    }

    /// The object's license string.
    pub fn license(&self) -> &str {
        &self.license
    }

    /// The maps.
    pub fn maps(&self) -> &MapSet {
        &self.maps
    }

    /// The maps, for user-space updates.
    pub fn maps_mut(&mut self) -> &mut MapSet {
        &mut self.maps
    }

    /// Definitions of the maps (for a kernel backend creating the same maps).
    pub fn map_defs(&self) -> Vec<MapDef> {
        self.maps.iter().map(|(_, m)| m.def().clone()).collect()
    }

    /// A map id by name.
    pub fn map(&self, name: &str) -> Option<MapId> {
        self.maps.by_name(name)
    }

    /// Sets the per-call options.
    pub fn set_options(&mut self, options: RunOptions) {
        self.options = options;
    }

    /// The counters of a program.
    pub fn stats(&self, prog: ProgId) -> &ProgramStats {
        &self.programs[prog.0].stats
    }

    /// Runs a program once, as `bpf_run_sk_reuseport` does: builds the
    /// context, interprets the program, and turns `r0` and the selection into
    /// a [`Verdict`]. Allocation-free after the first calls.
    pub fn run<E: Env>(
        &mut self,
        prog: ProgId,
        env: &mut E,
        ctx: &ReuseportCtx<'_>,
    ) -> Result<Outcome, RunError> {
        let p = &mut self.programs[prog.0];
        p.stats.calls += 1;
        if p.attach == AttachType::Select && ctx.migrating_sk.is_some() {
            p.stats.errors += 1;
            return Err(RunError {
                program: p.name.clone(),
                insn: 0,
                text: "(entry)".into(),
                kind: Fault::HelperArgument {
                    helper: "reuseport_migrate_sock",
                    reason: "a BPF_SK_REUSEPORT_SELECT program is never called for migration"
                        .into(),
                },
            });
        }
        let mut m = Machine {
            regs: [0; 16],
            stack: &mut self.stack,
            depth: 0,
            maps: &mut self.maps,
            env,
            call: CallState::new(ctx),
            program: &p.name,
            gpl: self.gpl,
            div_zero: self.options.div_zero,
            div_by_zero: 0,
            scratch: &mut self.scratch,
        };
        let res = m.run(&p.code, self.options.insn_budget);
        let selected = m.call.selected;
        let dz = m.div_by_zero;
        let s = &mut p.stats;
        s.div_by_zero += dz;
        match res {
            Ok((r0, n)) => {
                s.insns += n;
                s.insns_max = s.insns_max.max(n);
                // `action == SK_PASS` on the u32 `bpf_prog_run` returns.
                let verdict = if r0 as u32 == 1 {
                    match selected {
                        Some(h) => {
                            s.selects += 1;
                            Verdict::Select(h)
                        }
                        None => {
                            s.passes += 1;
                            Verdict::Pass
                        }
                    }
                } else {
                    s.drops += 1;
                    Verdict::Drop
                };
                Ok(Outcome {
                    verdict,
                    ret: r0,
                    insns: n,
                })
            }
            Err((pc, kind, n)) => {
                s.insns += n;
                s.errors += 1;
                Err(RunError {
                    program: p.name.clone(),
                    insn: pc,
                    text: p
                        .raw
                        .get(pc)
                        .map_or_else(String::new, |r| disasm_raw(r, p.raw.get(pc + 1))),
                    kind,
                })
            }
        }
    }
}

/// Global variables of a data section: its ELF symbols.
fn globals_of(file: &object::File<'_>, section_index: usize) -> Vec<Global> {
    let mut g: Vec<Global> = file
        .symbols()
        .filter(|s| s.section_index() == Some(object::SectionIndex(section_index)))
        .filter(|s| s.kind() == object::SymbolKind::Data && s.size() > 0)
        .filter_map(|s| {
            Some(Global {
                name: s.name().ok()?.to_string(),
                offset: s.address() as u32,
                size: s.size() as u32,
            })
        })
        .collect();
    g.sort_by_key(|x| (x.offset, x.name.clone()));
    g
}
