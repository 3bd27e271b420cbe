//! `sim-bpf`: runs real `BPF_PROG_TYPE_SK_REUSEPORT` programs — the ELF
//! objects clang builds and people deploy — instruction by instruction, so
//! the simulator can use them for listener selection (spec §4.2) and socket
//! migration (§4.3) in place of the declarative stand-ins of §2.7.
//!
//! - [`BpfObject::load`] parses and links an object (`aya-obj`), creates its
//!   maps ([`MapSet`]) and decodes and validates its `sk_reuseport` and
//!   `sk_reuseport/migrate` programs.
//! - [`BpfObject::run`] runs one program for one [`ReuseportCtx`]: the
//!   `struct sk_reuseport_md` the kernel builds in `bpf_run_sk_reuseport`,
//!   with `struct bpf_sock` views of `sk` and `migrating_sk`, and returns a
//!   [`Verdict`] as `bpf_run_sk_reuseport` interprets it.
//! - The host supplies sockets, time, randomness and the trace through
//!   [`Env`]; user space updates maps through [`MapSet`]
//!   (`update`/`lookup`/`delete_user`, kernel errno values), and the host
//!   removes a stopped listener from every socket map with
//!   [`MapSet::remove_socket`] (`bpf_sk_reuseport_detach`).
//! - Errors name the program, the instruction and the reason ([`RunError`],
//!   [`LoadError`]); nothing panics on a bad program and no access leaves
//!   its region.
//!
//! This crate depends on no other crate of the workspace: the reuseport
//! layer maps its `ListenerId`s to [`SockHandle`]s.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod ctx;
mod disasm;
pub mod env;
pub mod error;
pub mod frame;
pub mod helpers;
pub mod insn;
pub mod maps;
mod object;
mod printk;
mod vm;

pub use ctx::{ReuseportCtx, Skb, SockHandle, SockInfo};
pub use env::{CookieJar, Env, Sockets, StaticEnv};
pub use error::{Errno, Fault, LoadError, RunError};
pub use frame::{TcpOptions, TcpSegment};
pub use insn::RawInsn;
pub use maps::{MapDef, MapDump, MapId, MapSet, MapType, BPF_ANY, BPF_EXIST, BPF_NOEXIST};
pub use object::{
    license_is_gpl_compatible, AttachType, BpfObject, DivZero, Outcome, ProgId, Program,
    ProgramStats, RunOptions, Verdict,
};

/// `reciprocal_scale(val, ep_ro)` (`include/linux/kernel.h`): the kernel's
/// map of a 32-bit hash onto `[0, ep_ro)`.
pub fn reciprocal_scale(val: u32, ep_ro: u32) -> u32 {
    ((val as u64 * ep_ro as u64) >> 32) as u32
}
