//! The errors of lowering: one kind per rule, each raised with the JSON
//! path of the field that breaks it.

use super::super::format::ScenarioError;
use std::fmt;

macro_rules! error_kinds {
    ($($(#[$m:meta])* $kind:ident,)*) => {
        /// The rule a scenario broke: one kind per check of [`lower`](crate::scenario::lower).
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum LowerErrorKind {
            $($(#[$m])* $kind,)*
        }

        impl LowerErrorKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [LowerErrorKind] = &[$(LowerErrorKind::$kind,)*];
        }
    };
}

error_kinds! {
    /// `duration` is 0.
    DurationZero,
    /// `duration` is longer than [`MAX_DURATION`](super::MAX_DURATION).
    DurationTooLong,
    /// A time (an action, a fault window, a client's start or stop) is after the duration.
    AfterEnd,
    /// A delay is longer than [`MAX_DELAY`](super::MAX_DELAY).
    DelayTooLong,
    /// No host.
    NoHosts,
    /// More than [`MAX_HOSTS`](super::MAX_HOSTS) hosts.
    TooManyHosts,
    /// An empty host, link, server, worker, policy or client name.
    EmptyName,
    /// Two hosts, links, servers, workers, policies or clients of one name.
    DuplicateName,
    /// A name that refers to nothing (the message lists the known names).
    UnknownName,
    /// A host without an address.
    NoAddresses,
    /// An unspecified address, or one address on two hosts or twice on one.
    BadAddress,
    /// An unknown sysctl, or a value out of its range.
    BadSysctl,
    /// A host `hz` other than 100, 250, 300 or 1000 (`CONFIG_HZ`, §3.1).
    BadHz,
    /// A host `cpus` of 0.
    CpusZero,
    /// A worker `incoming_cpu` that is not a CPU of its host.
    IncomingCpuOutOfRange,
    /// A link from a host to itself.
    LinkToSelf,
    /// Two links between the same pair of hosts.
    DuplicateLink,
    /// Link parameters the network model refuses (a bandwidth of 0).
    BadLinkParams,
    /// A fault window that ends before it starts.
    WindowReversed,
    /// A client `connect_timeout` or `request_timeout` of 0.
    TimeoutZero,
    /// No server.
    NoServers,
    /// A server address that is not an address of its host.
    AddressNotOnHost,
    /// Port 0.
    PortZero,
    /// No worker.
    NoWorkers,
    /// More than [`MAX_WORKERS`](super::MAX_WORKERS) workers.
    TooManyWorkers,
    /// An accept rate, batch interval or batch size of 0.
    AcceptZero,
    /// A backlog of 0.
    BacklogZero,
    /// A policy map whose `missing` is neither `"drop"` nor `"pass"`.
    BadMapMissing,
    /// A `bpf` policy's object file cannot be read.
    BpfObjectUnreadable,
    /// A `bpf` policy's object is refused: not an eBPF ELF object, an
    /// unsupported map, helper or instruction (what the verifier refuses).
    BpfLoad,
    /// A `bpf` policy names a program the object does not have.
    BpfUnknownProgram,
    /// A `bpf` policy's `kind` is not its program's attach type (its section).
    BpfAttachType,
    /// A `bpf` policy that also gives declarative rules.
    BpfWithRules,
    /// A map name the `bpf` policy's object does not have.
    BpfUnknownMap,
    /// Map key or value bytes that do not fit the map (size, kind).
    BpfMapBytes,
    /// A map action on a policy that is not a `bpf` policy.
    NotBpfPolicy,
    /// A `rolling_restart` or `fd_passing` with unequal `old` and `new` lists.
    MacroListsDiffer,
    /// A handover between workers of different hosts.
    HandoverAcrossHosts,
    /// A handover to the same worker, or to one that listens on its own.
    HandoverToListener,
    /// A worker that inherits two listeners.
    InheritsTwice,
    /// A worker that inherits a listener and also listens on its own.
    HeirListens,
    /// A worker named in both `old` and `new` of a macro.
    WorkerInOldAndNew,
    /// An action through a worker's listener after it was closed (close
    /// twice, listen or shutdown after close): the kernel answers `EBADF`.
    ClosedFd,
    /// An action of a worker after it was killed (its process is gone).
    WorkerKilled,
    /// A `relisten` by a worker that has not listened (nor inherited a
    /// listener) by then: there is no listening socket to call it on.
    RelistenBeforeListen,
    /// A wildcard server whose host has no address of its family to connect to.
    NoServerAddress,
    /// A client host without an address of the server's family.
    NoSourceAddress,
    /// A client host with no route to its server's host.
    NoRoute,
    /// A burst larger than [`MAX_BURST`](super::MAX_BURST).
    BurstTooLarge,
    /// An arrival rate of 0.
    RateZero,
    /// An arrival rate above [`MAX_RATE`](super::MAX_RATE).
    RateTooHigh,
    /// A request of 0 bytes.
    RequestZero,
    /// A client population that stops before it starts.
    StopBeforeStart,
    /// More than [`MAX_CLIENTS`](super::MAX_CLIENTS) client populations.
    TooManyClients,
}

/// Why [`lower`](crate::scenario::lower) refused a scenario: the rule, the JSON path of the field
/// and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerError {
    /// The rule broken.
    pub kind: LowerErrorKind,
    /// JSON path of the offending field (e.g. `workers[2].server`).
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl LowerError {
    pub(super) fn new(
        kind: LowerErrorKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        LowerError {
            kind,
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error as a [`ScenarioError`] naming `file`.
    pub fn in_file(self, file: &str) -> ScenarioError {
        ScenarioError::from(self).in_file(file)
    }
}

impl From<LowerError> for ScenarioError {
    fn from(e: LowerError) -> Self {
        ScenarioError::at(e.path, e.message)
    }
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ScenarioError::from(self.clone()).fmt(f)
    }
}

impl std::error::Error for LowerError {}
