//! Why each RST was sent and why each segment or socket was silently dropped.
//! Every cause names the spec rule it implements and its §7 row.

use serde::{Deserialize, Serialize};

/// The reason for an RST sent by the server host (§7). Finer than the §7 ids;
/// [`RstCause::spec_id`] maps each to its row.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RstCause {
    /// A listener closed with this child in its accept queue and it could not
    /// migrate (`inet_child_forget`, §5.7 step 4).
    ListenerCloseChild,
    /// A final ACK completed a request on a migration target that was not
    /// listening: `inet_csk_reqsk_queue_add` refused the new child and
    /// `inet_child_forget` reset it (§5.4 step 7, §5.7 forget rule).
    ForgottenChild,
    /// A segment arrived for a request of a closed listener, migration found no
    /// target, the request was dropped and the re-lookup found a listener that
    /// answered the ACK with an RST (§5.4, §5.5).
    ClosedListenerRequest,
    /// A request migrated at its final ACK, but the target's accept queue was
    /// full and `tcp_abort_on_overflow = 1` (§5.4 step 6).
    MigratedAcceptQueueOverflow,
    /// A non-SYN segment matched no request or child, e.g. the request had
    /// expired or been dropped earlier (§5.5).
    NoRequest,
    /// A SYN, or any segment, found no listener at all (§4.2 → §5.5).
    NoListener,
    /// The group's selection policy returned `Drop` (§4.2).
    PolicyDrop,
    /// Accept queue full at the final ACK with `tcp_abort_on_overflow = 1` (§5.4 step 6).
    AcceptQueueOverflow,
    /// An ACK for a request acknowledged the wrong sequence (§5.4 step 2).
    BadAck,
    /// A SYN inside the window of a request with a different ISN (§5.4 step 4).
    SynInWindow,
    /// An ACK reached a listener after a recent SYN-queue overflow but carried
    /// no valid syncookie (§5.5).
    InvalidCookie,
    /// The application aborted an accepted connection (its worker was killed).
    /// Outside §7, which covers only connections not yet accepted.
    ApplicationAbort,
}

impl RstCause {
    /// All causes, in report order.
    pub const ALL: [RstCause; 12] = [
        RstCause::ListenerCloseChild,
        RstCause::ForgottenChild,
        RstCause::ClosedListenerRequest,
        RstCause::MigratedAcceptQueueOverflow,
        RstCause::NoRequest,
        RstCause::NoListener,
        RstCause::PolicyDrop,
        RstCause::AcceptQueueOverflow,
        RstCause::BadAck,
        RstCause::SynInWindow,
        RstCause::InvalidCookie,
        RstCause::ApplicationAbort,
    ];

    /// The §7 row ("A".."I"), or "-" for causes outside §7.
    pub fn spec_id(self) -> &'static str {
        match self {
            RstCause::ListenerCloseChild | RstCause::ForgottenChild => "A",
            RstCause::ClosedListenerRequest | RstCause::MigratedAcceptQueueOverflow => "B",
            RstCause::NoRequest
            | RstCause::BadAck
            | RstCause::SynInWindow
            | RstCause::InvalidCookie => "D",
            RstCause::NoListener => "E",
            RstCause::PolicyDrop => "F",
            RstCause::AcceptQueueOverflow => "G",
            RstCause::ApplicationAbort => "-",
        }
    }

    /// The spec rule that produces this RST.
    pub fn spec_rule(self) -> &'static str {
        match self {
            RstCause::ListenerCloseChild => "§5.7 step 4",
            RstCause::ForgottenChild => "§5.4 step 7 (forget)",
            RstCause::ClosedListenerRequest => "§5.4 (no target) + §5.5",
            RstCause::MigratedAcceptQueueOverflow => "§5.4 step 6 (S != L, aoo=1)",
            RstCause::NoRequest => "§5.5",
            RstCause::NoListener => "§4.2 + §5.5",
            RstCause::PolicyDrop => "§4.2 (policy Drop)",
            RstCause::AcceptQueueOverflow => "§5.4 step 6 (aoo=1)",
            RstCause::BadAck => "§5.4 step 2",
            RstCause::SynInWindow => "§5.4 step 4",
            RstCause::InvalidCookie => "§5.5 (syncookie check)",
            RstCause::ApplicationAbort => "application abort after accept()",
        }
    }

    /// Stable snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            RstCause::ListenerCloseChild => "listener_close_child",
            RstCause::ForgottenChild => "forgotten_child",
            RstCause::ClosedListenerRequest => "closed_listener_request",
            RstCause::MigratedAcceptQueueOverflow => "migrated_accept_queue_overflow",
            RstCause::NoRequest => "no_request",
            RstCause::NoListener => "no_listener",
            RstCause::PolicyDrop => "policy_drop",
            RstCause::AcceptQueueOverflow => "accept_queue_overflow",
            RstCause::BadAck => "bad_ack",
            RstCause::SynInWindow => "syn_in_window",
            RstCause::InvalidCookie => "invalid_cookie",
            RstCause::ApplicationAbort => "application_abort",
        }
    }
}

/// Why a segment or a request socket was dropped without any RST.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropCause {
    /// A SYN found the accept queue full (§5.2 step 2, §7 I). The client retries.
    SynAcceptQueueFull,
    /// A SYN found the SYN queue full with syncookies off (§5.2 step 1).
    SynQueueFull,
    /// Syncookies off and less than a quarter of `tcp_max_syn_backlog` free (§5.2 step 3).
    SynBacklogQuarter,
    /// A request of a closed listener found no migration target when its timer
    /// fired (§5.3, §7 C). The client's next segment will get an RST.
    RequestTimerNoTarget,
    /// A request exhausted its SYN-ACK retransmissions (§5.3).
    RequestExpired,
    /// A valid final ACK was dropped because the accept queue was full,
    /// `tcp_abort_on_overflow = 0`; the request is marked `acked` (§5.4 step 6).
    FinalAckAcceptQueueFull,
    /// A valid syncookie ACK found the accept queue full (§5.5).
    CookieAckAcceptQueueFull,
    /// A segment without ACK for a request (§5.4 step 5).
    NoAckFlag,
    /// A RST, or a segment without ACK and SYN, reached a listener (§5.5).
    ListenerIgnored,
    /// The client reset a request (§5.4 step 4).
    RequestReset,
    /// A duplicate SYN for a request within the 500 ms SYN-ACK rate limit (§5.4 step 1).
    DuplicateSynRateLimited,
    /// No RST is ever sent in reply to an RST (§5.5).
    RstNotAnswered,
}

impl DropCause {
    /// All causes, in declaration order.
    pub const ALL: [DropCause; 12] = [
        DropCause::SynAcceptQueueFull,
        DropCause::SynQueueFull,
        DropCause::SynBacklogQuarter,
        DropCause::RequestTimerNoTarget,
        DropCause::RequestExpired,
        DropCause::FinalAckAcceptQueueFull,
        DropCause::CookieAckAcceptQueueFull,
        DropCause::NoAckFlag,
        DropCause::ListenerIgnored,
        DropCause::RequestReset,
        DropCause::DuplicateSynRateLimited,
        DropCause::RstNotAnswered,
    ];

    /// The spec rule behind this drop.
    pub fn spec_rule(self) -> &'static str {
        match self {
            DropCause::SynAcceptQueueFull => "§5.2 step 2 (§7 I)",
            DropCause::SynQueueFull => "§5.2 step 1",
            DropCause::SynBacklogQuarter => "§5.2 step 3",
            DropCause::RequestTimerNoTarget => "§5.3 (§7 C)",
            DropCause::RequestExpired => "§5.3",
            DropCause::FinalAckAcceptQueueFull => "§5.4 step 6 (aoo=0)",
            DropCause::CookieAckAcceptQueueFull => "§5.5",
            DropCause::NoAckFlag => "§5.4 step 5",
            DropCause::ListenerIgnored => "§5.5",
            DropCause::RequestReset => "§5.4 step 4",
            DropCause::DuplicateSynRateLimited => "§5.4 step 1",
            DropCause::RstNotAnswered => "§5.5",
        }
    }

    /// Stable snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            DropCause::SynAcceptQueueFull => "syn_accept_queue_full",
            DropCause::SynQueueFull => "syn_queue_full",
            DropCause::SynBacklogQuarter => "syn_backlog_quarter",
            DropCause::RequestTimerNoTarget => "request_timer_no_target",
            DropCause::RequestExpired => "request_expired",
            DropCause::FinalAckAcceptQueueFull => "final_ack_accept_queue_full",
            DropCause::CookieAckAcceptQueueFull => "cookie_ack_accept_queue_full",
            DropCause::NoAckFlag => "no_ack_flag",
            DropCause::ListenerIgnored => "listener_ignored",
            DropCause::RequestReset => "request_reset",
            DropCause::DuplicateSynRateLimited => "duplicate_syn_rate_limited",
            DropCause::RstNotAnswered => "rst_not_answered",
        }
    }
}

/// The three migration paths of the patch series.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationPath {
    /// Accept-queue children at close/shutdown (`inet_csk_listen_stop`, §5.7 step 4).
    AcceptQueue,
    /// Requests when their SYN-ACK timer fires (`reqsk_timer_handler`, §5.3).
    SynackTimer,
    /// Requests when their final ACK (or data, FIN) arrives
    /// (`tcp_v4_rcv` → `inet_csk_complete_hashdance`, §5.4).
    FinalAck,
}

impl MigrationPath {
    /// Stable snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            MigrationPath::AcceptQueue => "accept_queue",
            MigrationPath::SynackTimer => "synack_timer",
            MigrationPath::FinalAck => "final_ack",
        }
    }
}
