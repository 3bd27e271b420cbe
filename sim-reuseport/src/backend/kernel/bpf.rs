//! `bpf` policies on the kernel: the scenario's own `SK_REUSEPORT` object
//! (the very bytes the simulator loaded, [`BpfPlan::elf`]) loaded with
//! `sim-kernel`'s loader, its initial map elements written at load, and
//! the timeline's `map_update` / `map_delete` carried out at their times.
//!
//! A worker's socket in a map value is the listener the worker holds at
//! that instant, as in the simulator (`world/bpf.rs`): its own, or one
//! handed over to it; a worker that holds none gives fd 0 (not a socket:
//! the kernel refuses the write, as the simulator does with `EBADF`).
//! Cookies are read with `SO_COOKIE` from the worker's own listener (no
//! listener has been handed over when the object is loaded).
//!
//! At the end the program's array maps and global data (`.bss`, `.data`)
//! are read back from the kernel and dumped like the simulator's report
//! (`bpftool map dump` shape); hash and socket maps are not read back, and
//! the kernel gives no instruction or call counts (notes say so).

use crate::policy::PolicyKind;
use crate::reuseport::bpf::BpfReport;
use crate::scenario::plan::{BpfPlan, MapBytes, MapWrite, PolicyPlan, Prim};
use sim_kernel::{Action, BpfObject, MapDatum, MapEntry, PolicyData, PolicySpec, ReuseportAttach};

/// What a kernel report of a `bpf` policy cannot say.
pub const NOTE: &str = "bpf policies: calls and instruction counts are simulator-only (0 here); only array maps and global data (.bss, .data) are read back from the kernel at the end, hash and socket maps are left out of bpf.maps";

/// The program to load for a `bpf` policy, with its initial elements.
pub fn policy_spec(p: &PolicyPlan, b: &BpfPlan) -> PolicySpec {
    let holds: Vec<Option<usize>> = Vec::new();
    PolicySpec {
        name: p.name.clone(),
        object: BpfObject::Bytes(b.elf.clone()),
        program: b.program.clone(),
        attach: match p.kind {
            PolicyKind::Select => ReuseportAttach::Select,
            PolicyKind::SelectOrMigrate => ReuseportAttach::SelectOrMigrate,
        },
        // Lowering refuses sockets among the initial values: every element
        // can be written before any listener listens.
        initial_entries: b.init.iter().map(|w| entry(w, &holds)).collect(),
        // The plan's timeline holds every attach, `attach_at` included.
        attach_at: None,
        via: p.via.index(),
    }
}

/// The listener each worker holds (by the index of the worker that created
/// it), followed through the timeline as the simulator's workers do.
#[derive(Debug)]
pub struct Holds(Vec<Option<usize>>);

impl Holds {
    /// Every worker holds its own listener.
    pub fn new(workers: usize) -> Self {
        Holds((0..workers).map(Some).collect())
    }

    /// Follows `prim`.
    pub fn after(&mut self, prim: &Prim) {
        match prim {
            Prim::Close(w) | Prim::Kill(w) => {
                if let Some(l) = self.0[w.index()].take() {
                    for h in &mut self.0 {
                        if *h == Some(l) {
                            *h = None;
                        }
                    }
                }
            }
            Prim::Handover { from, to } => self.0[to.index()] = self.0[from.index()].take(),
            _ => {}
        }
    }

    /// The kernel action of a map step, or `None` for another step.
    pub fn map_action(&self, prim: &Prim) -> Option<Action> {
        match prim {
            Prim::MapUpdate {
                policy,
                write,
                flags,
            } => Some(Action::MapUpdate {
                policy: policy.index(),
                entry: entry(write, &self.0),
                flags: *flags,
            }),
            Prim::MapDelete {
                policy,
                map_name,
                key,
                ..
            } => Some(Action::MapDelete {
                policy: policy.index(),
                map: map_name.clone(),
                key: datum(key, &self.0),
            }),
            _ => None,
        }
    }
}

fn entry(w: &MapWrite, holds: &[Option<usize>]) -> MapEntry {
    MapEntry {
        map: w.map_name.clone(),
        key: datum(&w.key, holds),
        value: datum(&w.value, holds),
    }
}

/// `holds` empty: at load, every worker holds its own listener.
fn datum(b: &MapBytes, holds: &[Option<usize>]) -> MapDatum {
    let held = |w: usize| holds.get(w).copied().unwrap_or(Some(w));
    match b {
        MapBytes::Bytes(v) => MapDatum::Bytes(v.clone()),
        MapBytes::Worker(w, size) => match held(w.index()) {
            Some(l) => MapDatum::ListenerFd(l),
            None => MapDatum::Bytes(vec![0; usize::from(*size)]),
        },
        MapBytes::Cookie(w) => MapDatum::ListenerCookie(w.index()),
    }
}

/// The report's `bpf` section of a `bpf` policy: the maps read back from
/// the kernel (`data`: this policy's sections), dumped through a copy of
/// the simulator's object so that names, types and globals are the same.
pub fn report(b: &BpfPlan, data: &[&PolicyData]) -> BpfReport {
    let mut obj = (*b.loaded).clone();
    let mut env = sim_bpf::StaticEnv::default();
    let mut read_back = Vec::new();
    let mut map_errors = Vec::new();
    for d in data {
        let Some(id) = obj.map(&d.section) else {
            continue;
        };
        let def = obj
            .maps()
            .get(id)
            .expect("a map of the object")
            .def()
            .clone();
        let size = def.value_size as usize;
        if size == 0 {
            continue;
        }
        for (i, value) in d.bytes.chunks(size).enumerate() {
            if let Err(e) =
                obj.maps_mut()
                    .update(id, &(i as u32).to_ne_bytes(), value, sim_bpf::BPF_ANY, &env)
            {
                map_errors.push(format!("read back {}[{i}]: {e:?}", d.section));
            }
        }
        read_back.push(def.name);
    }
    let maps = obj.maps();
    let dumps: Vec<_> = maps
        .dump(&mut env)
        .into_iter()
        .filter(|m| read_back.contains(&m.name))
        .collect();
    let text = maps
        .dump_text(&mut env)
        .split_inclusive('\n')
        .fold((String::new(), false), |(mut out, keep), line| {
            let keep = if line.starts_with(char::is_numeric) {
                let name = line
                    .split("  name ")
                    .nth(1)
                    .and_then(|r| r.split("  ").next());
                name.is_some_and(|n| read_back.iter().any(|r| r == n))
            } else {
                keep
            };
            if keep {
                out.push_str(line);
            }
            (out, keep)
        })
        .0;
    BpfReport {
        object: b.object.clone(),
        program: b.program.clone(),
        calls: 0,
        insns: 0,
        insns_max: 0,
        div_by_zero: 0,
        map_errors,
        maps: serde_json::to_value(dumps).expect("dump serializes"),
        maps_text: text,
    }
}
