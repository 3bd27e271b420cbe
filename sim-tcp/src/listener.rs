//! The listening socket (§2.2).

use crate::{ChildKey, ListenerId};
use serde::{Deserialize, Serialize};
use sim_core::SimTime;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// `sk_state` of a listener.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerState {
    /// Bound, not (yet) listening.
    Bound,
    /// `TCP_LISTEN`: hashed, selectable.
    Listen,
    /// `TCP_CLOSE` after `shutdown()`: still bound, may `listen()` again (§5.9).
    Shutdown,
    /// `TCP_CLOSE` after the last reference was closed.
    Closed,
}

/// Socket options of a listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerOptions {
    /// `TCP_SYNCNT` (`icsk_syn_retries`), 0 = use `tcp_synack_retries`.
    pub syn_retries: u8,
    /// `TCP_FASTOPEN` queue length; 0 = Fast Open off on this listener.
    pub fastopen_qlen: u32,
    /// `IPV6_V6ONLY` for an IPv6 wildcard listener.
    pub v6only: bool,
    /// `TCP_DEFER_ACCEPT` as the kernel stores it (`rskq_defer_accept`):
    /// a number of SYN-ACK timeouts, see [`secs_to_retrans`]; 0 = off.
    pub defer_accept: u8,
}

/// `secs_to_retrans(seconds, TCP_TIMEOUT_INIT, TCP_RTO_MAX)`: the
/// `TCP_DEFER_ACCEPT` seconds as the smallest number of SYN-ACK timeouts
/// `d` with 1 + 2 + … + 2^(d−1) ≥ seconds (intervals capped at 120 s), so
/// 5 s → 3 (7 s) and 30 s → 5 (31 s), as measured
/// (`tools/kernel-probes/results/defer_accept.txt`).
pub fn secs_to_retrans(seconds: u32) -> u8 {
    if seconds == 0 {
        return 0;
    }
    let (mut res, mut timeout, mut period) = (1u8, 1u64, 1u64);
    while u64::from(seconds) > period && res < 255 {
        res += 1;
        timeout = (timeout << 1).min(120);
        period += timeout;
    }
    res
}

/// A listening socket (§2.2), with the kernel's field names.
#[derive(Clone, Debug)]
pub struct Listener {
    /// This listener's id.
    pub id: ListenerId,
    /// Bound local address (the IP may be unspecified: a wildcard bind).
    pub local: SocketAddr,
    /// `sk_state`.
    pub state: ListenerState,
    /// `sk_max_ack_backlog` = min(listen backlog, somaxconn).
    pub backlog: u32,
    /// The accept queue (`icsk_accept_queue.rskq_accept_*`); its length is `sk_ack_backlog`.
    pub accept_queue: VecDeque<ChildKey>,
    /// `qlen`: request sockets owned by this listener. Signed, like the
    /// kernel's `atomic_t`: a 6.13+ accounting quirk can drive it below zero
    /// (see `docs/linux-semantics/synack-timer-migration-expiry.md`).
    pub syn_qlen: i32,
    /// `young`: owned requests that never timed out (signed, as `qlen`).
    pub syn_young: i32,
    /// Socket options.
    pub options: ListenerOptions,
    /// Request sockets referencing this listener object (`rsk_listener` refs):
    /// the object survives a close while this is non-zero (§6.1).
    pub req_refs: u32,
    /// `synq_overflow_ts` for a listener without a group.
    pub synq_overflow_ts: Option<SimTime>,
    /// Children returned by accept() so far.
    pub accepted_total: u64,
    /// Peak SYN-queue length seen.
    pub peak_syn_qlen: u32,
    /// Peak accept-queue length seen.
    pub peak_accept_qlen: u32,
    /// Peak SYN- and accept-queue lengths since the last
    /// [`Listener::take_window_peaks`] (plot sampling; never read by the model).
    window_peaks: (u32, u32),
    /// `fastopenq.qlen`: pending Fast Open children (final ACK not yet
    /// received), plus reset ones held on `fastopen_rst`.
    pub fastopen_pending: u32,
    /// `fastopenq.rskq_rst_head`: when each accepted pending Fast Open
    /// child that was reset stops holding its slot (60 s after the RST).
    pub fastopen_rst: VecDeque<SimTime>,
}

impl Listener {
    /// A bound, not yet listening socket.
    pub fn new(id: ListenerId, local: SocketAddr, options: ListenerOptions) -> Self {
        Listener {
            id,
            local,
            state: ListenerState::Bound,
            backlog: 0,
            accept_queue: VecDeque::new(),
            syn_qlen: 0,
            syn_young: 0,
            options,
            req_refs: 0,
            synq_overflow_ts: None,
            accepted_total: 0,
            peak_syn_qlen: 0,
            peak_accept_qlen: 0,
            window_peaks: (0, 0),
            fastopen_pending: 0,
            fastopen_rst: VecDeque::new(),
        }
    }

    /// `sk_ack_backlog`.
    pub fn ack_backlog(&self) -> u32 {
        self.accept_queue.len() as u32
    }

    /// `sk_acceptq_is_full`: `sk_ack_backlog > sk_max_ack_backlog`, so
    /// backlog + 1 children fit (§5.2 step 2).
    pub fn accept_queue_is_full(&self) -> bool {
        self.ack_backlog() > self.backlog
    }

    /// `inet_csk_reqsk_queue_is_full`: `qlen > sk_max_ack_backlog` (§5.2 step 1).
    /// The kernel compares the `int` qlen with the `u32` backlog, so C's
    /// conversion rules apply: a negative qlen reads as huge (full).
    pub fn syn_queue_is_full(&self) -> bool {
        (self.syn_qlen as u32) > self.backlog
    }

    /// `tcp_fastopen_queue_check`: whether a Fast Open SYN may create a
    /// child now. At the limit (`TCP_FASTOPEN` qlen), the oldest reset
    /// child's slot is freed if its 60 s are over; otherwise no.
    pub fn fastopen_queue_check(&mut self, now: SimTime) -> bool {
        if self.fastopen_pending < self.options.fastopen_qlen {
            return true;
        }
        match self.fastopen_rst.front() {
            Some(&expires) if expires <= now => {
                self.fastopen_rst.pop_front();
                self.fastopen_pending -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether the listener is in `TCP_LISTEN`.
    pub fn is_listening(&self) -> bool {
        self.state == ListenerState::Listen
    }

    pub(crate) fn note_queues(&mut self) {
        let (syn, accept) = (self.syn_qlen.max(0) as u32, self.ack_backlog());
        self.peak_syn_qlen = self.peak_syn_qlen.max(syn);
        self.peak_accept_qlen = self.peak_accept_qlen.max(accept);
        self.window_peaks = (
            self.window_peaks.0.max(syn),
            self.window_peaks.1.max(accept),
        );
    }

    /// The peak SYN- and accept-queue lengths since the last call (or since
    /// the listener was created), then starts a new window at the current
    /// lengths. A sampler that takes these at each sampling instant sees
    /// every peak the report states ([`Listener::peak_syn_qlen`]), however
    /// short.
    pub fn take_window_peaks(&mut self) -> (u32, u32) {
        let now = (self.syn_qlen.max(0) as u32, self.ack_backlog());
        let peaks = (
            self.window_peaks.0.max(now.0),
            self.window_peaks.1.max(now.1),
        );
        self.window_peaks = now;
        peaks
    }
}
