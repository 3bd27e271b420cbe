//! `SK_REUSEPORT` programs: loaded from an ELF object with the attach type
//! the spec gives, attached to a reuseport group through one of its
//! sockets, and their maps updated at run time.

use std::os::fd::{AsRawFd, RawFd};

use crate::bpf::{self, LoadedObject, ProgType};
use crate::error::{KernelError, Result};
use crate::spec::{BpfObject, PolicySpec, ReuseportAttach};
use crate::sys;

/// `SO_ATTACH_REUSEPORT_EBPF`.
pub const SO_ATTACH_REUSEPORT_EBPF: i32 = 52;
/// `SO_DETACH_REUSEPORT_BPF`.
pub const SO_DETACH_REUSEPORT_BPF: i32 = 68;

/// A policy's loaded object and program.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// The object (maps and programs).
    pub object: LoadedObject,
    /// Index of the program in `object.programs`.
    prog: usize,
}

impl LoadedPolicy {
    /// Loads the object and the named program as `BPF_PROG_TYPE_SK_REUSEPORT`
    /// with the spec's expected attach type.
    pub fn load(spec: &PolicySpec) -> Result<Self> {
        let bytes: std::sync::Arc<[u8]> = match &spec.object {
            BpfObject::Bytes(b) => b.clone(),
            BpfObject::Path(p) => std::fs::read(p)
                .map_err(|e| {
                    KernelError::Bpf(format!(
                        "policy `{}`: reading {}: {e}",
                        spec.name,
                        p.display()
                    ))
                })?
                .into(),
        };
        let attach = match spec.attach {
            ReuseportAttach::Select => bpf::BPF_SK_REUSEPORT_SELECT,
            ReuseportAttach::SelectOrMigrate => bpf::BPF_SK_REUSEPORT_SELECT_OR_MIGRATE,
        };
        let object = LoadedObject::load(
            &bytes,
            &[(spec.program.as_str(), ProgType::SkReuseport { attach })],
        )
        .map_err(|e| KernelError::Bpf(format!("policy `{}`: {e}", spec.name)))?;
        Ok(LoadedPolicy { object, prog: 0 })
    }

    /// The program fd.
    pub fn prog_fd(&self) -> RawFd {
        self.object.programs[self.prog].1.as_raw_fd()
    }
}

/// Attaches `prog` to the reuseport group of `sock` (or to the socket, if
/// it has no group yet: it takes it along when it joins one).
pub fn attach(sock: RawFd, prog: RawFd) -> std::io::Result<()> {
    sys::setsockopt_int(sock, libc::SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, prog)
}

/// Detaches the program of `sock`'s group.
pub fn detach(sock: RawFd) -> std::io::Result<()> {
    sys::setsockopt_int(sock, libc::SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
}
