//! TIME_WAIT sockets (`struct inet_timewait_sock`): what is left of a
//! connection on the side that closed first, for `TCP_TIMEWAIT_LEN` (60 s)
//! on the host's timer wheel (`tcp_time_wait`, `inet_twsk_schedule`), and
//! how a segment for its 4-tuple is answered (`tcp_timewait_state_process`).
//! One table per network namespace: the server stack keeps its own and the
//! driver one per client host. Measured on Linux 6.18:
//! `tools/kernel-probes/results/time_wait.txt`, `docs/linux-semantics/time-wait.md`.

use crate::rtt::ts_now;
use crate::server::tcp_oow_rate_limited;
use crate::{Counters, Sysctls};
use sim_core::{FourTuple, Packet, SimDuration, SimTime, TcpFlags, TimerModel};
use slotmap::SlotMap;
use std::collections::VecDeque;

/// `TCP_TIMEWAIT_LEN`: how long a TIME_WAIT socket lives (60 s).
pub const TCP_TIMEWAIT_LEN: SimDuration = SimDuration::from_secs(60);
/// `TCP_PAWS_WINDOW`: a timestamp this much older than `ts_recent` is still
/// accepted (`tcp_paws_check`).
const TCP_PAWS_WINDOW: u32 = 1;

slotmap::new_key_type! {
    /// A TIME_WAIT socket of a [`TimeWaitTable`].
    pub struct TwKey;
}

/// The state of a connection that a TIME_WAIT socket keeps
/// (`tw_snd_nxt`, `tw_rcv_nxt`, `tw_ts_recent`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimeWaitSock {
    /// (local, remote) from the owning side.
    pub tuple: FourTuple,
    /// `tw_snd_nxt`: after our FIN.
    pub snd_nxt: u32,
    /// `tw_rcv_nxt`: after the peer's FIN.
    pub rcv_nxt: u32,
    /// Timestamps in use (`tw_ts_recent_stamp != 0`).
    pub ts_ok: bool,
    /// `tw_ts_recent`: the peer's last timestamp.
    pub ts_recent: u32,
    /// When the socket entered TIME_WAIT (`tw_ts_recent_stamp`, read by
    /// `tcp_tw_reuse`).
    pub since: SimTime,
    /// When its timer fires (`tw_timer`).
    expires: SimTime,
    /// `tw_last_oow_ack_time`: rate limit of its ACKs.
    last_oow_ack: Option<SimTime>,
}

/// What `tcp_timewait_state_process` decided for a segment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TwVerdict {
    /// `TCP_TW_SYN`: a new connection. If a listener takes it, the
    /// TIME_WAIT socket dies and the server's ISN is `tw_snd_nxt + 65537`.
    Syn {
        /// The ISN the new request must use.
        isn: u32,
    },
    /// `TCP_TW_ACK`: answer with this ACK (`tcp_v4_timewait_ack`).
    Ack(Packet),
    /// `TCP_TW_SUCCESS` after `inet_twsk_deschedule_put`: an RST killed it
    /// (TIME_WAIT assassination, `tcp_rfc1337` = 0).
    Killed,
    /// `TCP_TW_SUCCESS`: consumed without an answer.
    Consumed,
}

/// The TIME_WAIT sockets of one network namespace and their timers.
#[derive(Default)]
pub struct TimeWaitTable {
    socks: SlotMap<TwKey, TimeWaitSock>,
    /// Expiries in arming order. Every socket waits the same
    /// `TCP_TIMEWAIT_LEN` from a later `now`, so the order is also expiry
    /// order; an entry whose socket was re-armed or killed is skipped.
    expiry: VecDeque<(SimTime, TwKey)>,
    /// The instant the driver was last asked to call [`Self::expire`].
    armed: Option<SimTime>,
    peak: usize,
    taken_over: u64,
}

impl TimeWaitTable {
    /// Number of sockets in TIME_WAIT now (`tw_refcount` of the death row).
    pub fn len(&self) -> usize {
        self.socks.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }

    /// The most sockets that were in TIME_WAIT at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Sockets whose 4-tuple a new connection took over: a new SYN on the
    /// server side, `tcp_tw_reuse` on a client's.
    pub fn taken_over(&self) -> u64 {
        self.taken_over
    }

    /// A socket, if it is still in TIME_WAIT.
    pub fn get(&self, k: TwKey) -> Option<&TimeWaitSock> {
        self.socks.get(k)
    }

    /// `tcp_time_wait(sk, TCP_TIME_WAIT, 0)`: the connection enters
    /// TIME_WAIT, unless `tcp_max_tw_buckets` sockets already are
    /// (`inet_twsk_alloc` fails: `TCPTimeWaitOverflow`, and the socket is
    /// simply destroyed). Returns the new socket, and the instant at which
    /// the driver must call [`Self::expire`] if it has no call pending.
    #[allow(clippy::too_many_arguments)]
    pub fn enter(
        &mut self,
        now: SimTime,
        tuple: FourTuple,
        snd_nxt: u32,
        rcv_nxt: u32,
        ts_recent: Option<u32>,
        timers: &TimerModel,
        sysctls: &Sysctls,
        counters: &mut Counters,
    ) -> (Option<TwKey>, Option<SimTime>) {
        if self.socks.len() as u64 >= u64::from(sysctls.tcp_max_tw_buckets) {
            counters.TcpExtTCPTimeWaitOverflow += 1;
            return (None, None);
        }
        let expires = timers.fire_at(now, TCP_TIMEWAIT_LEN);
        let k = self.socks.insert(TimeWaitSock {
            tuple,
            snd_nxt,
            rcv_nxt,
            ts_ok: ts_recent.is_some(),
            ts_recent: ts_recent.unwrap_or(0),
            since: now,
            expires,
            last_oow_ack: None,
        });
        self.peak = self.peak.max(self.socks.len());
        (Some(k), self.push_expiry(expires, k))
    }

    fn push_expiry(&mut self, at: SimTime, k: TwKey) -> Option<SimTime> {
        self.expiry.push_back((at, k));
        if self.armed.is_none() {
            self.armed = Some(at);
            return Some(at);
        }
        None
    }

    /// `inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)`.
    fn reschedule(&mut self, now: SimTime, k: TwKey, timers: &TimerModel) -> Option<SimTime> {
        let at = timers.fire_at(now, TCP_TIMEWAIT_LEN);
        self.socks[k].expires = at;
        self.push_expiry(at, k)
    }

    /// A new SYN took the 4-tuple of socket `k` (`inet_twsk_deschedule_put`
    /// on `TCP_TW_SYN`). Its timer entry is skipped later.
    pub fn take_over(&mut self, k: TwKey) -> Option<TimeWaitSock> {
        let s = self.socks.remove(k);
        self.taken_over += u64::from(s.is_some());
        s
    }

    /// `tw_timer_handler` for every socket due at `now` (counted as
    /// `TcpExtTW`); `gone` is told each freed 4-tuple. Returns the instant
    /// of the next call the driver must make, if any.
    pub fn expire(
        &mut self,
        now: SimTime,
        counters: &mut Counters,
        mut gone: impl FnMut(&FourTuple),
    ) -> Option<SimTime> {
        self.armed = None;
        while let Some(&(at, k)) = self.expiry.front() {
            if at > now {
                self.armed = Some(at);
                return Some(at);
            }
            self.expiry.pop_front();
            if self.socks.get(k).is_some_and(|s| s.expires == at) {
                let s = self.socks.remove(k).expect("live timewait socket");
                counters.TcpExtTW += 1;
                gone(&s.tuple);
            }
        }
        None
    }

    /// `tcp_twsk_unique` for a client's `connect()`: may a new connection
    /// reuse the 4-tuple of TIME_WAIT socket `k`? Only with `tcp_tw_reuse`
    /// = 1 (2, the default, is for loopback only), timestamps, and once the
    /// socket is older than `tcp_tw_reuse_delay`; then it is killed and
    /// counted as `TWRecycled`.
    pub fn try_reuse(
        &mut self,
        now: SimTime,
        k: TwKey,
        sysctls: &Sysctls,
        counters: &mut Counters,
    ) -> bool {
        let Some(s) = self.socks.get(k) else {
            return true;
        };
        let delay = SimDuration::from_millis(u64::from(sysctls.tcp_tw_reuse_delay));
        let reusable = sysctls.tcp_tw_reuse == 1 && s.ts_ok && now.saturating_sub(s.since) >= delay;
        if reusable {
            self.socks.remove(k);
            self.taken_over += 1;
            counters.TcpExtTWRecycled += 1;
        }
        reusable
    }

    /// `tcp_timewait_state_process` for a segment on TIME_WAIT socket `k`
    /// (substate TIME_WAIT; `tcp_rfc1337` = 0).
    pub fn state_process(
        &mut self,
        now: SimTime,
        k: TwKey,
        pkt: &Packet,
        timers: &TimerModel,
        counters: &mut Counters,
    ) -> (TwVerdict, Option<SimTime>) {
        let s = self.socks[k];
        let flags = pkt.flags;
        let saw_ts = pkt.tsval != 0;
        let paws_reject = s.ts_ok
            && saw_ts
            && s.ts_recent.wrapping_sub(pkt.tsval) as i32 > TCP_PAWS_WINDOW as i32;
        let rst = flags.contains(TcpFlags::RST);
        let end_seq = pkt.seq.wrapping_add(pkt.payload_len)
            + u32::from(flags.contains(TcpFlags::SYN))
            + u32::from(flags.contains(TcpFlags::FIN));
        if !paws_reject && pkt.seq == s.rcv_nxt && (pkt.seq == end_seq || rst) {
            // In window: only an RST or a bare ACK.
            if rst {
                self.socks.remove(k);
                return (TwVerdict::Killed, None);
            }
            let arm = self.reschedule(now, k, timers);
            if s.ts_ok && saw_ts {
                self.socks[k].ts_recent = pkt.tsval;
            }
            return (TwVerdict::Consumed, arm);
        }
        let syn = flags.contains(TcpFlags::SYN) && !rst && !flags.contains(TcpFlags::ACK);
        if syn
            && !paws_reject
            && (seq_after(pkt.seq, s.rcv_nxt)
                || (saw_ts && (s.ts_recent.wrapping_sub(pkt.tsval) as i32) < 0))
        {
            let isn = match s.snd_nxt.wrapping_add(65_535 + 2) {
                0 => 1,
                isn => isn,
            };
            return (TwVerdict::Syn { isn }, None);
        }
        if paws_reject {
            counters.TcpExtPAWSTimewait += 1;
        }
        if rst {
            return (TwVerdict::Consumed, None);
        }
        // "If it is ACKless SYN it may be both old duplicate and new good
        // SYN with random sequence number <rcv_nxt. Do not reschedule in
        // the last case."
        let arm = if paws_reject || flags.contains(TcpFlags::ACK) {
            self.reschedule(now, k, timers)
        } else {
            None
        };
        (self.oow_ack(now, k, counters), arm)
    }

    /// `tcp_timewait_check_oow_rate_limit`, then `tcp_v4_timewait_ack`.
    fn oow_ack(&mut self, now: SimTime, k: TwKey, counters: &mut Counters) -> TwVerdict {
        let s = &mut self.socks[k];
        if tcp_oow_rate_limited(&mut s.last_oow_ack, now) {
            counters.TcpExtTCPACKSkippedTimeWait += 1;
            return TwVerdict::Consumed;
        }
        TwVerdict::Ack(self.ack(now, k))
    }

    /// `tcp_v4_timewait_ack`: an ACK of everything, with the timestamp echo.
    pub fn ack(&self, now: SimTime, k: TwKey) -> Packet {
        let s = &self.socks[k];
        let (tsval, tsecr) = if s.ts_ok {
            (ts_now(now), s.ts_recent)
        } else {
            (0, 0)
        };
        Packet {
            src: s.tuple.local,
            dst: s.tuple.remote,
            flags: TcpFlags::ACK,
            seq: s.snd_nxt,
            ack: s.rcv_nxt,
            payload_len: 0,
            fast_open: false,
            window: 65_535,
            tsval,
            tsecr,
            tag: 0,
        }
    }
}

/// `after(a, b)` in sequence space.
fn seq_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}
