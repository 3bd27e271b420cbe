//! The interface through which the TCP model asks the reuseport layer to
//! select listeners (§4.2) and migration targets (§4.3). Implemented by
//! `sim-reuseport`; the TCP model owns no group state.

use crate::{Listener, ListenerId};
use sim_core::FourTuple;
use sim_core::SimTime as SimTimeAlias;

/// The socket being migrated, as the policy context sees it (§2.7).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MigratingSock {
    /// A request socket (`NEW_SYN_RECV`). `len` is 0 on the timer path and the
    /// segment's length (> 0 as the kernel counts it) on the final-ACK path.
    Request {
        /// `sk_hash` of the flow.
        hash: u32,
        /// Packet length as seen by the program: 0 from the timer.
        len: u32,
        /// The flow, as the server sees it.
        tuple: FourTuple,
    },
    /// An `ESTABLISHED` (or `CLOSE_WAIT`) child in the accept queue, at close.
    Established {
        /// `sk_hash` of the flow.
        hash: u32,
        /// The flow, as the server sees it.
        tuple: FourTuple,
    },
    /// A Fast Open child still in `SYN_RECV`, at close.
    SynRecv {
        /// `sk_hash` of the flow.
        hash: u32,
        /// The flow, as the server sees it.
        tuple: FourTuple,
    },
}

impl MigratingSock {
    /// The flow hash of the migrating socket.
    pub fn hash(self) -> u32 {
        match self {
            MigratingSock::Request { hash, .. }
            | MigratingSock::Established { hash, .. }
            | MigratingSock::SynRecv { hash, .. } => hash,
        }
    }

    /// The flow of the migrating socket (local = the server's side).
    pub fn tuple(self) -> FourTuple {
        match self {
            MigratingSock::Request { tuple, .. }
            | MigratingSock::Established { tuple, .. }
            | MigratingSock::SynRecv { tuple, .. } => tuple,
        }
    }
}

/// Result of listener selection (§4.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// This listener receives the segment.
    Listener(ListenerId),
    /// No hashed listener matches (or the group has no live member).
    NoListener,
    /// The group's policy returned `Drop`.
    PolicyDrop,
}

/// Why `reuseport_migrate_sock` failed (the `FAIL` branch of §4.3; each
/// counts `TCPMigrateReqFailure`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateFailure {
    /// The group has no live member left.
    NoLiveMember,
    /// The migrate-capable policy returned `Drop`.
    PolicyDrop,
    /// No migrate-capable policy and `tcp_migrate_req` is 0 at migration time (§5.8).
    SysctlOff,
    /// The chosen target is not listening (`inet_csk_reqsk_queue_add` failed).
    TargetNotListening,
    /// The target's accept queue was full at a migrated final ACK (§5.4 step 6).
    TargetAcceptQueueFull,
    /// The migrated request could not be kept (it expired on the new listener, §5.3).
    RequestExpired,
}

impl MigrateFailure {
    /// Stable snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            MigrateFailure::NoLiveMember => "no_live_member",
            MigrateFailure::PolicyDrop => "policy_drop",
            MigrateFailure::SysctlOff => "sysctl_off",
            MigrateFailure::TargetNotListening => "target_not_listening",
            MigrateFailure::TargetAcceptQueueFull => "target_accept_queue_full",
            MigrateFailure::RequestExpired => "request_expired",
        }
    }
}

/// Result of choosing a migration target (§4.3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MigrateOutcome {
    /// Migrate to this live member.
    Target(ListenerId),
    /// The closed listener was detached from its group at close (not
    /// migration-capable then): no migration and no failure counted.
    Detached,
    /// Migration failed; `TCPMigrateReqFailure` is counted by the caller.
    Fail(MigrateFailure),
}

/// Group-level decisions the TCP model delegates (`net/core/sock_reuseport.c`).
/// `listeners` is the stack's listener table, read-only, for policies that
/// look at queue lengths.
pub trait ReuseportHooks {
    /// §5.1 / §5.9: listener `id` has just entered `Listen`. `resurrect` is true
    /// when it was shut down earlier and listens again (`reuseport_resurrect`).
    fn on_listen(&mut self, listeners: &[Listener], id: ListenerId, resurrect: bool);

    /// §5.7 steps 1–2: listener `id` leaves the listener table. The group
    /// decides whether it is migration-capable, reading `tcp_migrate_req`
    /// now (`migrate_req`).
    fn on_stop_listen(&mut self, listeners: &[Listener], id: ListenerId, migrate_req: bool);

    /// §6.1: the closed listener object is destroyed (its last request is
    /// gone); it leaves the closed section (`reuseport_detach_sock`).
    fn on_destroy(&mut self, id: ListenerId);

    /// §4.2: choose the listener for a segment of `tuple` (as seen by the
    /// server) that matched no request or child. `has_payload` is the
    /// program's `len > 0`.
    fn select(
        &mut self,
        listeners: &[Listener],
        tuple: &FourTuple,
        hash: u32,
        has_payload: bool,
    ) -> Selection;

    /// §4.3: choose a live member for `migrating`, owned by closed listener
    /// `closed`, reading `tcp_migrate_req` now (`migrate_req`).
    fn migrate_target(
        &mut self,
        listeners: &[Listener],
        closed: ListenerId,
        migrating: MigratingSock,
        migrate_req: bool,
    ) -> MigrateOutcome;

    /// Records a SYN-queue overflow of `id` at `now` (`synq_overflow_ts`, §2.3).
    fn note_synq_overflow(&mut self, id: ListenerId, now: SimTimeAlias);

    /// Whether the group of `id` (or `id` itself) overflowed within the last
    /// `TCP_SYNCOOKIE_VALID` (§5.5).
    fn synq_overflow_recent(&self, id: ListenerId, now: SimTimeAlias) -> bool;
}
