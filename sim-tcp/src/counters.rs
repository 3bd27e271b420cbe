//! The kernel SNMP/netstat counters of §8, named as `nstat` prints them.

use serde::{Deserialize, Serialize};

/// Kernel counters of the server's network namespace (§8). Field names are the
/// `nstat` names so that output can be put next to `nstat` from a real server.
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
    /// `TcpExtTCPTimeouts` (each SYN-ACK timer expiry, `tcp_syn_ack_timeout`).
    pub TcpExtTCPTimeouts: u64,
    /// `TcpExtTCPSynRetrans` (SYN-ACK retransmissions).
    pub TcpExtTCPSynRetrans: u64,
    /// `TcpOutRsts`: RSTs sent by the server host.
    pub TcpOutRsts: u64,
    /// `TcpExtTCPFastOpenPassive`: Fast Open children created.
    pub TcpExtTCPFastOpenPassive: u64,
    /// `TcpPassiveOpens`: children created (request completion, cookie, Fast Open).
    pub TcpPassiveOpens: u64,
}

impl Counters {
    /// `(nstat name, value)` pairs in a stable order.
    pub fn entries(&self) -> [(&'static str, u64); 15] {
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
        ]
    }
}
