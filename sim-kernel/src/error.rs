//! Errors of a kernel run. The caller maps [`KernelError::Environment`] and
//! [`KernelError::InvalidSpec`] to exit status 2, and
//! [`KernelError::Interrupted`] to 128 + the signal.

use std::fmt;
use std::io;

/// Why the host cannot run the kernel backend at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvError {
    /// Not running as root (effective uid shown).
    NotRoot(u32),
    /// `/dev/net/tun` is missing or cannot be opened.
    NoTun(String),
    /// The kernel is older than 5.14 (release string shown).
    KernelTooOld(String),
    /// The release string could not be parsed.
    UnknownKernel(String),
    /// Network namespaces are not available (`/proc/self/ns/net` missing).
    NoNetns(String),
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::NotRoot(uid) => write!(
                f,
                "the kernel backend needs root (effective uid is {uid}): it creates network namespaces and TUN devices"
            ),
            EnvError::NoTun(why) => write!(f, "the kernel backend needs /dev/net/tun: {why}"),
            EnvError::KernelTooOld(rel) => write!(
                f,
                "the kernel backend needs Linux 5.14 or later (socket migration); this kernel is {rel}"
            ),
            EnvError::UnknownKernel(rel) => {
                write!(f, "cannot parse the kernel release {rel:?} (need Linux 5.14 or later)")
            }
            EnvError::NoNetns(why) => {
                write!(f, "the kernel backend needs network namespaces: {why}")
            }
        }
    }
}

/// An error of a kernel run.
#[derive(Debug)]
pub enum KernelError {
    /// The host cannot run it (root, TUN, kernel version, netns).
    Environment(EnvError),
    /// The spec is inconsistent; the message names the field.
    InvalidSpec(String),
    /// A system call failed during setup or the run.
    Sys {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// A BPF object could not be loaded or used.
    Bpf(String),
    /// The run was stopped by a signal (or the stop flag); everything was
    /// cleaned up.
    Interrupted {
        /// The signal number (or the flag's value).
        signal: i32,
    },
    /// A thread of the run panicked; everything was cleaned up.
    ThreadPanicked(String),
}

impl KernelError {
    /// A [`KernelError::Sys`] from `source`.
    pub(crate) fn sys(context: impl Into<String>, source: io::Error) -> Self {
        KernelError::Sys {
            context: context.into(),
            source,
        }
    }

    /// The process exit status a CLI should use: 2 for environment and
    /// input errors, 128 + signal when interrupted, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            KernelError::Environment(_) | KernelError::InvalidSpec(_) => 2,
            KernelError::Interrupted { signal } => 128 + signal,
            KernelError::Sys { .. } | KernelError::Bpf(_) | KernelError::ThreadPanicked(_) => 1,
        }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Environment(e) => e.fmt(f),
            KernelError::InvalidSpec(m) => write!(f, "invalid kernel run: {m}"),
            KernelError::Sys { context, source } => write!(f, "{context}: {source}"),
            KernelError::Bpf(m) => write!(f, "BPF: {m}"),
            KernelError::Interrupted { signal } => {
                write!(
                    f,
                    "interrupted by signal {signal}; namespaces and devices removed"
                )
            }
            KernelError::ThreadPanicked(m) => write!(f, "a run thread panicked: {m}"),
        }
    }
}

impl std::error::Error for KernelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KernelError::Sys { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<EnvError> for KernelError {
    fn from(e: EnvError) -> Self {
        KernelError::Environment(e)
    }
}

/// Result of this crate.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
