//! The kernel SNMP/netstat counters of §8, named as `nstat` prints them.

use serde::{Deserialize, Serialize};

/// Kernel counters of one network namespace (§8), or of one side's sockets
/// in it (a server stack's, a host's clients'). Field names are the `nstat`
/// names so that output can be put next to `nstat` run in that namespace.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// `TcpExtTCPMigrateReqSuccess`: successful migration hops.
    pub TcpExtTCPMigrateReqSuccess: u64,
    /// `TcpExtTCPMigrateReqFailure`.
    pub TcpExtTCPMigrateReqFailure: u64,
    /// `TcpExtListenOverflows`.
    pub TcpExtListenOverflows: u64,
    /// `TcpExtListenDrops`.
    pub TcpExtListenDrops: u64,
    /// `TcpExtTCPReqQFullDrop`.
    pub TcpExtTCPReqQFullDrop: u64,
    /// `TcpExtTCPReqQFullDoCookies`.
    pub TcpExtTCPReqQFullDoCookies: u64,
    /// `TcpExtSyncookiesSent`.
    pub TcpExtSyncookiesSent: u64,
    /// `TcpExtSyncookiesRecv`.
    pub TcpExtSyncookiesRecv: u64,
    /// `TcpExtSyncookiesFailed`.
    pub TcpExtSyncookiesFailed: u64,
    /// `TcpExtEmbryonicRsts`.
    pub TcpExtEmbryonicRsts: u64,
    /// `TcpExtTCPTimeouts`: each SYN-ACK timer expiry (`tcp_syn_ack_timeout`)
    /// and each retransmission-timer expiry of a full socket
    /// (`tcp_retransmit_timer`: SYN, data).
    pub TcpExtTCPTimeouts: u64,
    /// `TcpExtTCPSynRetrans`: SYN-ACK and SYN retransmissions.
    pub TcpExtTCPSynRetrans: u64,
    /// `TcpOutRsts`: RSTs sent.
    pub TcpOutRsts: u64,
    /// `TcpExtTCPFastOpenPassive`: Fast Open children created.
    pub TcpExtTCPFastOpenPassive: u64,
    /// `TcpPassiveOpens`: children created (request completion, cookie, Fast Open).
    pub TcpPassiveOpens: u64,
    /// `TcpActiveOpens`: connect() calls (SYN-SENT entered).
    pub TcpActiveOpens: u64,
    /// `TcpRetransSegs`: retransmitted segments (SYN, SYN-ACK, data, probes).
    pub TcpRetransSegs: u64,
    /// `TcpExtTCPLossProbes`: tail loss probes sent (`tcp_send_loss_probe`).
    pub TcpExtTCPLossProbes: u64,
    /// `TcpExtTCPChallengeACK`: challenge ACKs sent (RFC 5961,
    /// `tcp_send_challenge_ack`).
    pub TcpExtTCPChallengeACK: u64,
    /// `TcpExtTCPSYNChallenge`: SYNs in a synchronized state that drew a
    /// challenge ACK (`tcp_validate_incoming` step 4).
    pub TcpExtTCPSYNChallenge: u64,
    /// `TcpExtTCPACKSkippedChallenge`: challenge ACKs suppressed by the
    /// per-socket rate limit (`tcp_invalid_ratelimit`).
    pub TcpExtTCPACKSkippedChallenge: u64,
    /// `TcpExtTCPAbortOnData`: data arrived for a socket its application had
    /// closed; answered with an RST.
    pub TcpExtTCPAbortOnData: u64,
    /// `TcpExtTCPAbortOnClose`: the application closed a socket with unread
    /// data; an RST was sent instead of a FIN (§5.10).
    pub TcpExtTCPAbortOnClose: u64,
    /// `TcpExtTCPFastOpenListenOverflow`: Fast Open SYNs past the
    /// listener's `TCP_FASTOPEN` qlen, handled as normal SYNs.
    pub TcpExtTCPFastOpenListenOverflow: u64,
    /// `TcpExtTCPDeferAcceptDrop`: bare final ACKs dropped by
    /// `TCP_DEFER_ACCEPT` (§5.3).
    pub TcpExtTCPDeferAcceptDrop: u64,
    /// `TcpExtTW`: TIME_WAIT sockets that lived their whole time
    /// (`tw_timer_handler`).
    pub TcpExtTW: u64,
    /// `TcpExtTCPTimeWaitOverflow`: connections that could not enter
    /// TIME_WAIT because `tcp_max_tw_buckets` sockets were in it.
    pub TcpExtTCPTimeWaitOverflow: u64,
    /// `TcpExtPAWSTimewait`: segments a TIME_WAIT socket rejected by PAWS.
    pub TcpExtPAWSTimewait: u64,
    /// `TcpExtTWRecycled`: client TIME_WAIT 4-tuples reused by `connect()`
    /// (`tcp_tw_reuse`).
    pub TcpExtTWRecycled: u64,
    /// `TcpExtTCPACKSkippedTimeWait`: TIME_WAIT ACKs skipped by the
    /// `tcp_invalid_ratelimit` rate limit.
    pub TcpExtTCPACKSkippedTimeWait: u64,
}

impl Counters {
    /// `(nstat name, value)` pairs in a stable order.
    pub fn entries(&self) -> [(&'static str, u64); 30] {
        [
            (
                "TcpExtTCPMigrateReqSuccess",
                self.TcpExtTCPMigrateReqSuccess,
            ),
            (
                "TcpExtTCPMigrateReqFailure",
                self.TcpExtTCPMigrateReqFailure,
            ),
            ("TcpExtListenOverflows", self.TcpExtListenOverflows),
            ("TcpExtListenDrops", self.TcpExtListenDrops),
            ("TcpExtTCPReqQFullDrop", self.TcpExtTCPReqQFullDrop),
            (
                "TcpExtTCPReqQFullDoCookies",
                self.TcpExtTCPReqQFullDoCookies,
            ),
            ("TcpExtSyncookiesSent", self.TcpExtSyncookiesSent),
            ("TcpExtSyncookiesRecv", self.TcpExtSyncookiesRecv),
            ("TcpExtSyncookiesFailed", self.TcpExtSyncookiesFailed),
            ("TcpExtEmbryonicRsts", self.TcpExtEmbryonicRsts),
            ("TcpExtTCPTimeouts", self.TcpExtTCPTimeouts),
            ("TcpExtTCPSynRetrans", self.TcpExtTCPSynRetrans),
            ("TcpOutRsts", self.TcpOutRsts),
            ("TcpExtTCPFastOpenPassive", self.TcpExtTCPFastOpenPassive),
            ("TcpPassiveOpens", self.TcpPassiveOpens),
            ("TcpActiveOpens", self.TcpActiveOpens),
            ("TcpRetransSegs", self.TcpRetransSegs),
            ("TcpExtTCPLossProbes", self.TcpExtTCPLossProbes),
            ("TcpExtTCPChallengeACK", self.TcpExtTCPChallengeACK),
            ("TcpExtTCPSYNChallenge", self.TcpExtTCPSYNChallenge),
            (
                "TcpExtTCPACKSkippedChallenge",
                self.TcpExtTCPACKSkippedChallenge,
            ),
            ("TcpExtTCPAbortOnData", self.TcpExtTCPAbortOnData),
            ("TcpExtTCPAbortOnClose", self.TcpExtTCPAbortOnClose),
            (
                "TcpExtTCPFastOpenListenOverflow",
                self.TcpExtTCPFastOpenListenOverflow,
            ),
            ("TcpExtTCPDeferAcceptDrop", self.TcpExtTCPDeferAcceptDrop),
            ("TcpExtTW", self.TcpExtTW),
            ("TcpExtTCPTimeWaitOverflow", self.TcpExtTCPTimeWaitOverflow),
            ("TcpExtPAWSTimewait", self.TcpExtPAWSTimewait),
            ("TcpExtTWRecycled", self.TcpExtTWRecycled),
            (
                "TcpExtTCPACKSkippedTimeWait",
                self.TcpExtTCPACKSkippedTimeWait,
            ),
        ]
    }

    /// Adds every counter of `other` (a namespace's total from its server
    /// stack and its clients).
    pub fn add(&mut self, other: &Counters) {
        let mut i = 0;
        let theirs = other.entries();
        self.for_each_mut(|v| {
            *v += theirs[i].1;
            i += 1;
        });
    }

    fn for_each_mut(&mut self, mut f: impl FnMut(&mut u64)) {
        let Counters {
            TcpExtTCPMigrateReqSuccess,
            TcpExtTCPMigrateReqFailure,
            TcpExtListenOverflows,
            TcpExtListenDrops,
            TcpExtTCPReqQFullDrop,
            TcpExtTCPReqQFullDoCookies,
            TcpExtSyncookiesSent,
            TcpExtSyncookiesRecv,
            TcpExtSyncookiesFailed,
            TcpExtEmbryonicRsts,
            TcpExtTCPTimeouts,
            TcpExtTCPSynRetrans,
            TcpOutRsts,
            TcpExtTCPFastOpenPassive,
            TcpPassiveOpens,
            TcpActiveOpens,
            TcpRetransSegs,
            TcpExtTCPLossProbes,
            TcpExtTCPChallengeACK,
            TcpExtTCPSYNChallenge,
            TcpExtTCPACKSkippedChallenge,
            TcpExtTCPAbortOnData,
            TcpExtTCPAbortOnClose,
            TcpExtTCPFastOpenListenOverflow,
            TcpExtTCPDeferAcceptDrop,
            TcpExtTW,
            TcpExtTCPTimeWaitOverflow,
            TcpExtPAWSTimewait,
            TcpExtTWRecycled,
            TcpExtTCPACKSkippedTimeWait,
        } = self;
        // Same order as `entries`.
        for v in [
            TcpExtTCPMigrateReqSuccess,
            TcpExtTCPMigrateReqFailure,
            TcpExtListenOverflows,
            TcpExtListenDrops,
            TcpExtTCPReqQFullDrop,
            TcpExtTCPReqQFullDoCookies,
            TcpExtSyncookiesSent,
            TcpExtSyncookiesRecv,
            TcpExtSyncookiesFailed,
            TcpExtEmbryonicRsts,
            TcpExtTCPTimeouts,
            TcpExtTCPSynRetrans,
            TcpOutRsts,
            TcpExtTCPFastOpenPassive,
            TcpPassiveOpens,
            TcpActiveOpens,
            TcpRetransSegs,
            TcpExtTCPLossProbes,
            TcpExtTCPChallengeACK,
            TcpExtTCPSYNChallenge,
            TcpExtTCPACKSkippedChallenge,
            TcpExtTCPAbortOnData,
            TcpExtTCPAbortOnClose,
            TcpExtTCPFastOpenListenOverflow,
            TcpExtTCPDeferAcceptDrop,
            TcpExtTW,
            TcpExtTCPTimeWaitOverflow,
            TcpExtPAWSTimewait,
            TcpExtTWRecycled,
            TcpExtTCPACKSkippedTimeWait,
        ] {
            f(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sums_every_counter_in_entry_order() {
        let mut a = Counters::default();
        let mut b = Counters::default();
        a.TcpOutRsts = 2;
        b.TcpOutRsts = 3;
        b.TcpActiveOpens = 7;
        b.TcpExtTCPAbortOnData = 1;
        a.add(&b);
        assert_eq!((a.TcpOutRsts, a.TcpActiveOpens), (5, 7));
        assert_eq!(a.TcpExtTCPAbortOnData, 1);
        let mut c = Counters::default();
        c.add(&a);
        assert_eq!(c, a);
        // Every entry maps to its own field.
        let mut d = Counters::default();
        let mut n = 0;
        d.for_each_mut(|v| {
            n += 1;
            *v = n;
        });
        let e = d.entries();
        assert!(e.iter().enumerate().all(|(i, (_, v))| *v == i as u64 + 1));
        assert_eq!(d.TcpExtTCPSynRetrans, 12);
    }
}
