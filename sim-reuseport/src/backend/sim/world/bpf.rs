//! The world's side of `bpf` policies: their first map contents, the
//! timeline's map updates and deletes (user space's `bpf()` calls, with
//! workers' sockets and cookies resolved when they run), their
//! `bpf_trace_printk` lines, and a program fault, which stops the run.

use super::World;
use crate::scenario::plan::{HostIx, MapBytes, MapWrite, Plan, PolicyIx};
use sim_bpf::{Errno, BPF_ANY};
use sim_core::SimTime;

impl World<'_> {
    /// Writes each `bpf` policy's initial map elements (at load, before
    /// any listener exists).
    pub(super) fn init_bpf(&mut self, plan: &Plan) {
        for (i, p) in plan.policies.iter().enumerate() {
            let Some(b) = &p.bpf else { continue };
            self.has_bpf = true;
            for w in &b.init {
                self.map_write(SimTime::ZERO, PolicyIx(i as u32), w, BPF_ANY);
            }
        }
    }

    /// After a call into host `h`'s stack: trace the programs' printk
    /// lines, and keep a program fault for the run loop.
    pub(super) fn after_bpf(&mut self, now: SimTime, h: HostIx) {
        let Some(stack) = self.hosts.stack_mut(h) else {
            return;
        };
        if let Some(f) = stack.hooks.take_fault() {
            self.fault.get_or_insert(f);
        }
        if stack.hooks.has_bpf_trace() {
            let lines = stack.hooks.take_bpf_trace();
            if self.tap.tracing() {
                for line in lines {
                    self.tap.trace_event(now, "bpf_printk", line);
                }
            }
        }
    }

    /// The bytes user space passes for `b` now: a worker's socket is the
    /// listener it holds now (none: fd 0, `EBADF`); its cookie is read
    /// with `SO_COOKIE`, which fails on a closed fd (`EBADF`).
    pub(super) fn map_bytes(&mut self, p: PolicyIx, b: &MapBytes) -> Result<Vec<u8>, Errno> {
        Ok(match b {
            MapBytes::Bytes(v) => v.clone(),
            MapBytes::Worker(w, size) => {
                let fd = self
                    .workers
                    .listener(*w)
                    .map_or(0, |l| crate::reuseport::bpf::sock_handle(l).0);
                fd.to_le_bytes()[..*size as usize].to_vec()
            }
            MapBytes::Cookie(w) => {
                let l = self.workers.listener(*w).ok_or(Errno::BadF)?;
                self.hosts.bpf_cookie(p, l).to_le_bytes().to_vec()
            }
        })
    }

    /// `BPF_MAP_UPDATE_ELEM` of `w` on policy `p`'s object.
    pub(super) fn map_write(&mut self, now: SimTime, p: PolicyIx, w: &MapWrite, flags: u64) {
        let (h, _) = self.hosts.policy_host(p);
        if let Some(stack) = self.hosts.stack_mut(h) {
            stack.hooks.set_now(now);
        }
        let r = match (self.map_bytes(p, &w.key), self.map_bytes(p, &w.value)) {
            (Ok(k), Ok(v)) => self.hosts.bpf_map_write(p, w.map, &k, Some(&v), flags),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        if let Err(e) = r {
            self.map_failed(now, &w.map_name, "update", e);
        }
    }

    /// A user-space map operation failed: traced (the report lists it too).
    pub(super) fn map_failed(&mut self, now: SimTime, map: &str, op: &str, e: Errno) {
        if self.tap.tracing() {
            self.tap
                .trace_event(now, "map_error", format!("map_{op} {map}: {}", e.name()));
        }
    }
}
