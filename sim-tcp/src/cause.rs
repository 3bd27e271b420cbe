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
    /// The application closed an accepted connection with request bytes
    /// unread (`__tcp_close`: `TCPAbortOnClose`, §5.10). Outside §7, which
    /// covers only connections not yet accepted.
    ApplicationAbort,
    /// Data arrived for an accepted connection its application had already
    /// closed (`tcp_rcv_state_process`: `TCPAbortOnData`, §5.10), e.g. the
    /// request of a connection whose worker exited before it arrived.
    AbortOnData,
}

impl RstCause {
    /// All causes, in report order.
    pub const ALL: [RstCause; 13] = [
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
        RstCause::AbortOnData,
    ];

    /// The value a packet carries in [`sim_core::Packet::tag`] for this
    /// cause (never 0), so that the receiver's outcome can name it.
    pub fn tag(self) -> u8 {
        RstCause::ALL
            .iter()
            .position(|&c| c == self)
            .expect("every cause is in ALL") as u8
            + 1
    }

    /// The cause a packet's tag names, if any.
    pub fn from_tag(tag: u8) -> Option<RstCause> {
        RstCause::ALL.get(usize::from(tag).checked_sub(1)?).copied()
    }

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
            RstCause::ApplicationAbort | RstCause::AbortOnData => "-",
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
            RstCause::ApplicationAbort => "§5.10 (close with unread data)",
            RstCause::AbortOnData => "§5.10 (data after close)",
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
            RstCause::AbortOnData => "abort_on_data",
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
    /// A segment for a request fell outside its receive window
    /// (`tcp_check_req` → `tcp_in_window`, §5.4 step 3); answered with an
    /// ACK (rate-limited).
    OutOfWindow,
    /// An RST outside the receive window of its request or child (§5.4
    /// step 3; `tcp_validate_incoming` step 1), e.g. a late RST of an earlier
    /// connection on the same 4-tuple.
    RstOutOfWindow,
    /// An RST inside a child's window but not at exactly `rcv_nxt`: dropped
    /// with a challenge ACK (RFC 5961 3.2, `tcp_validate_incoming` step 2).
    RstChallenged,
    /// A bare final ACK (no data) reached a request of a `TCP_DEFER_ACCEPT`
    /// listener within its defer period: dropped, the request marked
    /// `acked` (`tcp_check_req`, `TCPDeferAcceptDrop`, §5.3).
    DeferAcceptBareAck,
}

impl DropCause {
    /// All causes, in declaration order.
    pub const ALL: [DropCause; 16] = [
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
        DropCause::OutOfWindow,
        DropCause::RstOutOfWindow,
        DropCause::RstChallenged,
        DropCause::DeferAcceptBareAck,
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
            DropCause::OutOfWindow => "§5.4 step 3",
            DropCause::RstOutOfWindow => "§5.11",
            DropCause::RstChallenged => "§5.11 (challenge ACK)",
            DropCause::DeferAcceptBareAck => "§5.3 (TCP_DEFER_ACCEPT)",
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
            DropCause::OutOfWindow => "out_of_window",
            DropCause::RstOutOfWindow => "rst_out_of_window",
            DropCause::RstChallenged => "rst_challenged",
            DropCause::DeferAcceptBareAck => "defer_accept_bare_ack",
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

/// Why a client host sent an RST. Outside §7, which lists the server
/// host's RSTs; counted in the client host's `TcpOutRsts`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRstCause {
    /// A segment in SYN-SENT acknowledged something never sent
    /// (`tcp_rcv_synsent_state_process` → `reset_and_undo`), e.g. a late
    /// SYN-ACK of an earlier connection on the same 4-tuple.
    SynSentBadAck,
    /// Data arrived for a socket its application had closed
    /// (`TCPAbortOnData`), e.g. the response after the client gave up.
    AbortOnData,
    /// A segment for a 4-tuple with no socket on the client host
    /// (`tcp_v4_send_reset`), e.g. a SYN-ACK after the client gave up.
    NoSocket,
}

impl ClientRstCause {
    /// All causes, in report order.
    pub const ALL: [ClientRstCause; 3] = [
        ClientRstCause::SynSentBadAck,
        ClientRstCause::AbortOnData,
        ClientRstCause::NoSocket,
    ];

    /// Stable snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            ClientRstCause::SynSentBadAck => "syn_sent_bad_ack",
            ClientRstCause::AbortOnData => "abort_on_data",
            ClientRstCause::NoSocket => "no_socket",
        }
    }

    /// The kernel rule behind this RST.
    pub fn rule(self) -> &'static str {
        match self {
            ClientRstCause::SynSentBadAck => "tcp_rcv_synsent_state_process (bad ACK)",
            ClientRstCause::AbortOnData => "tcp_rcv_state_process step 7 (TCPAbortOnData)",
            ClientRstCause::NoSocket => "tcp_v4_send_reset (no socket)",
        }
    }
}
