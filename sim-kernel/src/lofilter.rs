//! Packet filters on a host's loopback traffic: `sim_core` filters applied
//! to same-host packets, which never reach the link emulator. An XDP
//! program (`bpf/lo_filter.bpf.c`, committed compiled) is attached to `lo`
//! in generic mode, like the kernel selftest's `drop_ack`; its rules carry
//! absolute `CLOCK_MONOTONIC` windows, written once the run's start is
//! known, so filters switch on and off at their exact times with no
//! user-space toggling.
//!
//! Chosen over generating bytecode in Rust: the C source states the
//! matching rules the way `FilterMatch` does, the verifier checks it, and
//! the same loader serves the `SK_REUSEPORT` policies.

use std::os::fd::{AsRawFd, OwnedFd};

use sim_core::{FilterMatch, PacketFilter, SimTime};

use crate::bpf::{self, LoadedObject, ProgType};
use crate::clock::Epoch;
use crate::error::{KernelError, Result};
use crate::netns::Netns;

/// The compiled XDP program.
pub const LO_FILTER_OBJECT: &[u8] = include_bytes!("../bpf/lo_filter.bpf.o");
/// Rules per host (`MAX_RULES` in the C source).
pub const MAX_RULES: usize = 8;
const RULE_SIZE: usize = 40;

/// One filter fault as it applies to a host's loopback.
#[derive(Clone, Debug)]
pub struct LoRule {
    /// Index among the spec's faults.
    pub fault: usize,
    /// The rule.
    pub rule: PacketFilter,
    /// Window start.
    pub from: SimTime,
    /// Window end (exclusive).
    pub until: SimTime,
}

/// An attached filter; dropping it detaches the program.
#[derive(Debug)]
pub struct LoFilter {
    /// Host index.
    pub host: usize,
    rules: Vec<LoRule>,
    link: OwnedFd,
    object: LoadedObject,
}

fn match_code(m: FilterMatch) -> u32 {
    match m {
        FilterMatch::Any => 0,
        FilterMatch::PureAck => 1,
        FilterMatch::AckNoSyn => 2,
        FilterMatch::Syn => 3,
        FilterMatch::SynAck => 4,
        FilterMatch::Rst => 5,
        FilterMatch::Data => 6,
    }
}

impl LoFilter {
    /// Loads the program and attaches it to `lo` in `ns`, all rules off.
    pub fn attach(ns: &Netns, host: usize, rules: Vec<LoRule>) -> Result<Self> {
        if rules.len() > MAX_RULES {
            return Err(KernelError::InvalidSpec(format!(
                "more than {MAX_RULES} packet filters apply to the loopback of host #{host}"
            )));
        }
        let object = LoadedObject::load(LO_FILTER_OBJECT, &[("lo_filter", ProgType::Xdp)])
            .map_err(|e| KernelError::Bpf(format!("loopback filter: {e}")))?;
        let prog = object.program("lo_filter").expect("loaded");
        // The interface index is resolved in the calling thread's namespace.
        let link = ns.run_in(|| {
            let lo =
                crate::netlink::if_index("lo").map_err(|e| KernelError::sys("finding lo", e))?;
            bpf::xdp_link(prog, lo).map_err(|e| KernelError::sys("attaching XDP to lo", e))
        })?;
        Ok(LoFilter {
            host,
            rules,
            link,
            object,
        })
    }

    /// Writes the rules with their absolute windows.
    pub fn arm(&self, epoch: Epoch) -> Result<()> {
        let map = self.object.map("rules").expect("rules map");
        for (i, r) in self.rules.iter().enumerate() {
            let mut v = [0u8; RULE_SIZE];
            v[0..8].copy_from_slice(&epoch.at(r.from).0.to_ne_bytes());
            v[8..16].copy_from_slice(&epoch.at(r.until).0.to_ne_bytes());
            v[16..20].copy_from_slice(&1u32.to_ne_bytes());
            v[20..24].copy_from_slice(&match_code(r.rule.match_kind).to_ne_bytes());
            v[24..26].copy_from_slice(&r.rule.src_port.unwrap_or(0).to_ne_bytes());
            v[26..28].copy_from_slice(&r.rule.dst_port.unwrap_or(0).to_ne_bytes());
            bpf::map_update(map.fd.as_raw_fd(), &(i as u32).to_ne_bytes(), &v)
                .map_err(|e| KernelError::sys("writing a loopback filter rule", e))?;
        }
        Ok(())
    }

    /// Packets each rule dropped: `(fault index, dropped)`.
    pub fn dropped(&self) -> Vec<(usize, u64)> {
        let map = self.object.map("rules").expect("rules map");
        self.rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut v = [0u8; RULE_SIZE];
                let n = bpf::map_lookup(map.fd.as_raw_fd(), &(i as u32).to_ne_bytes(), &mut v)
                    .map(|_| u64::from_ne_bytes(v[32..40].try_into().expect("8 bytes")))
                    .unwrap_or(0);
                (r.fault, n)
            })
            .collect()
    }

    /// The XDP link (kept open while attached).
    pub fn link_fd(&self) -> i32 {
        self.link.as_raw_fd()
    }
}
