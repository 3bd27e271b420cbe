//! Per-network-namespace sysctls (§2.1), under their kernel names.

use serde::{Deserialize, Serialize};
use sim_core::SimDuration;

/// `tcp_fastopen` bit: client side enabled (`TFO_CLIENT_ENABLE`).
pub const TFO_CLIENT_ENABLE: u32 = 0x1;
/// `tcp_fastopen` bit: server side enabled (`TFO_SERVER_ENABLE`).
pub const TFO_SERVER_ENABLE: u32 = 0x2;
/// `tcp_fastopen` bit: the client sends data in the SYN without a cookie (`TFO_CLIENT_NO_COOKIE`).
pub const TFO_CLIENT_NO_COOKIE: u32 = 0x4;
/// `tcp_fastopen` bit: the server accepts SYN data without a cookie (`TFO_SERVER_COOKIE_NOT_REQD`).
pub const TFO_SERVER_COOKIE_NOT_REQD: u32 = 0x200;

/// The sysctls of one network namespace that the model reads, with the
/// kernel's defaults (§2.1, §3). Each is read at its point of use, so a change
/// takes effect at the next use (§5.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sysctls {
    /// `net.ipv4.tcp_migrate_req`: migrate by hash when no migrate-capable policy is attached.
    pub tcp_migrate_req: u8,
    /// `net.ipv4.tcp_synack_retries`.
    pub tcp_synack_retries: u8,
    /// `net.ipv4.tcp_syn_retries` (client side).
    pub tcp_syn_retries: u8,
    /// `net.ipv4.tcp_syncookies`: 0 never, 1 when the SYN queue is full, 2 always.
    pub tcp_syncookies: u8,
    /// `net.ipv4.tcp_max_syn_backlog` (used only with syncookies off, §5.2 step 3).
    pub tcp_max_syn_backlog: u32,
    /// `net.ipv4.tcp_abort_on_overflow`.
    pub tcp_abort_on_overflow: u8,
    /// `net.core.somaxconn`.
    pub somaxconn: u32,
    /// `net.ipv4.tcp_fastopen` bitmask (1 = client enabled).
    pub tcp_fastopen: u32,
    /// `net.ipv4.tcp_rto_max_ms`.
    pub tcp_rto_max_ms: u32,
    /// `net.ipv4.tcp_retries2`: bounds how long an established connection
    /// retransmits before it times out (through `tcp_model_timeout` with a
    /// 200 ms base, as the kernel does; about 924 s with the default 15).
    pub tcp_retries2: u8,
    /// `net.ipv4.tcp_syn_linear_timeouts` (client side, §2.1, §2.6): the
    /// first N+1 SYN retransmission intervals stay at the initial RTO (1 s);
    /// the retry budget becomes `tcp_syn_retries` + N.
    pub tcp_syn_linear_timeouts: u8,
    /// `net.ipv4.tcp_timestamps` (§2.1): 0 off; 1 and 2 on (2 without the
    /// per-connection random offset, which the model does not draw anyway).
    /// With timestamps, the echo gives an RTT sample even for a retransmitted
    /// SYN, SYN-ACK or data segment.
    pub tcp_timestamps: u8,
    /// `net.ipv4.tcp_no_metrics_save` (§2.1): 1 = do not save a closing
    /// connection's RTT in the TCP metrics cache.
    pub tcp_no_metrics_save: u8,
    /// `net.ipv4.tcp_early_retrans` (§2.1): 3 and 4 enable the tail loss
    /// probe (TLP) before the data RTO; 0..=2 disable it.
    pub tcp_early_retrans: u8,
    /// `net.ipv4.tcp_fin_timeout` in seconds: how long an orphaned socket
    /// (closed by its application in FIN-WAIT) lingers.
    pub tcp_fin_timeout: u32,
    /// `tcp_max_tw_buckets`: most TIME_WAIT sockets of the namespace; past
    /// it a closing connection skips TIME_WAIT (`TCPTimeWaitOverflow`).
    /// Default: half the established hash, 131072 measured in a fresh
    /// namespace of the reference machine.
    pub tcp_max_tw_buckets: u32,
    /// `tcp_tw_reuse`: 0 off, 1 a client may reuse a TIME_WAIT 4-tuple
    /// (with timestamps, after `tcp_tw_reuse_delay`), 2 (default) loopback
    /// only, which no simulated address is.
    pub tcp_tw_reuse: u8,
    /// `tcp_tw_reuse_delay` in milliseconds (default 1000).
    pub tcp_tw_reuse_delay: u32,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            tcp_migrate_req: 0,
            tcp_synack_retries: 5,
            tcp_syn_retries: 6,
            tcp_syncookies: 1,
            tcp_max_syn_backlog: 2048,
            tcp_abort_on_overflow: 0,
            somaxconn: 4096,
            tcp_fastopen: TFO_CLIENT_ENABLE,
            tcp_rto_max_ms: 120_000,
            tcp_retries2: 15,
            tcp_syn_linear_timeouts: 4,
            tcp_timestamps: 1,
            tcp_no_metrics_save: 0,
            tcp_early_retrans: 3,
            tcp_fin_timeout: 60,
            tcp_max_tw_buckets: 131_072,
            tcp_tw_reuse: 2,
            tcp_tw_reuse_delay: 1000,
        }
    }
}

impl Sysctls {
    /// The cap on full sockets' RTOs (`tcp_rto_max(sk)`): `tcp_rto_max_ms`.
    /// Request sockets and Fast Open children cap at `TCP_RTO_MAX` instead
    /// (§2.1, §3).
    pub fn rto_max(&self) -> SimDuration {
        SimDuration::from_millis(u64::from(self.tcp_rto_max_ms))
    }

    /// Whether this host sends and accepts the timestamp option.
    pub fn timestamps(&self) -> bool {
        self.tcp_timestamps != 0
    }

    /// Whether the tail loss probe is enabled (`tcp_early_retrans` 3 or 4).
    pub fn loss_probes(&self) -> bool {
        matches!(self.tcp_early_retrans, 3 | 4)
    }

    /// Sets one sysctl by its kernel name (as used in scenario files).
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), String> {
        fn small<T: TryFrom<u64>>(name: &str, v: u64, max: u64) -> Result<T, String> {
            if v > max {
                return Err(format!("{name} must be at most {max}, got {v}"));
            }
            T::try_from(v).map_err(|_| format!("{name}: value {v} out of range"))
        }
        match name {
            "tcp_migrate_req" => self.tcp_migrate_req = small(name, value, 1)?,
            "tcp_synack_retries" => self.tcp_synack_retries = small(name, value, 255)?,
            "tcp_syn_retries" => self.tcp_syn_retries = small(name, value, 127)?,
            "tcp_syncookies" => self.tcp_syncookies = small(name, value, 2)?,
            "tcp_max_syn_backlog" => {
                self.tcp_max_syn_backlog = small(name, value, u64::from(u32::MAX))?
            }
            "tcp_abort_on_overflow" => self.tcp_abort_on_overflow = small(name, value, 1)?,
            "somaxconn" => self.somaxconn = small(name, value, u64::from(u32::MAX))?,
            "tcp_fastopen" => self.tcp_fastopen = small(name, value, 0xfff)?,
            "tcp_rto_max_ms" => {
                if !(1000..=120_000).contains(&value) {
                    return Err(format!(
                        "tcp_rto_max_ms must be within 1000..=120000, got {value}"
                    ));
                }
                self.tcp_rto_max_ms = value as u32
            }
            "tcp_retries2" => self.tcp_retries2 = small(name, value, 255)?,
            "tcp_syn_linear_timeouts" => {
                // proc_dointvec_minmax with extra2 = MAX_TCP_SYNCNT (127).
                self.tcp_syn_linear_timeouts = small(name, value, 127)?
            }
            "tcp_timestamps" => self.tcp_timestamps = small(name, value, 2)?,
            "tcp_no_metrics_save" => self.tcp_no_metrics_save = small(name, value, 1)?,
            "tcp_early_retrans" => self.tcp_early_retrans = small(name, value, 4)?,
            "tcp_fin_timeout" => self.tcp_fin_timeout = small(name, value, 86_400)?,
            "tcp_max_tw_buckets" => self.tcp_max_tw_buckets = small(name, value, i32::MAX as u64)?,
            "tcp_tw_reuse" => self.tcp_tw_reuse = small(name, value, 2)?,
            "tcp_tw_reuse_delay" => {
                if !(1..=2_000_000).contains(&value) {
                    return Err(format!(
                        "tcp_tw_reuse_delay must be within 1..=2000000 (ms), got {value}"
                    ));
                }
                self.tcp_tw_reuse_delay = value as u32
            }
            other => {
                return Err(format!(
                    "unknown sysctl `{other}` (known: {})",
                    Self::NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// Reads one sysctl by its kernel name.
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "tcp_migrate_req" => self.tcp_migrate_req.into(),
            "tcp_synack_retries" => self.tcp_synack_retries.into(),
            "tcp_syn_retries" => self.tcp_syn_retries.into(),
            "tcp_syncookies" => self.tcp_syncookies.into(),
            "tcp_max_syn_backlog" => self.tcp_max_syn_backlog.into(),
            "tcp_abort_on_overflow" => self.tcp_abort_on_overflow.into(),
            "somaxconn" => self.somaxconn.into(),
            "tcp_fastopen" => self.tcp_fastopen.into(),
            "tcp_rto_max_ms" => self.tcp_rto_max_ms.into(),
            "tcp_retries2" => self.tcp_retries2.into(),
            "tcp_syn_linear_timeouts" => self.tcp_syn_linear_timeouts.into(),
            "tcp_timestamps" => self.tcp_timestamps.into(),
            "tcp_no_metrics_save" => self.tcp_no_metrics_save.into(),
            "tcp_early_retrans" => self.tcp_early_retrans.into(),
            "tcp_fin_timeout" => self.tcp_fin_timeout.into(),
            "tcp_max_tw_buckets" => self.tcp_max_tw_buckets.into(),
            "tcp_tw_reuse" => self.tcp_tw_reuse.into(),
            "tcp_tw_reuse_delay" => self.tcp_tw_reuse_delay.into(),
            _ => return None,
        })
    }

    /// The names accepted by [`Sysctls::set`].
    pub const NAMES: &'static [&'static str] = &[
        "tcp_migrate_req",
        "tcp_synack_retries",
        "tcp_syn_retries",
        "tcp_syncookies",
        "tcp_max_syn_backlog",
        "tcp_abort_on_overflow",
        "somaxconn",
        "tcp_fastopen",
        "tcp_rto_max_ms",
        "tcp_retries2",
        "tcp_syn_linear_timeouts",
        "tcp_timestamps",
        "tcp_no_metrics_save",
        "tcp_early_retrans",
        "tcp_fin_timeout",
        "tcp_max_tw_buckets",
        "tcp_tw_reuse",
        "tcp_tw_reuse_delay",
    ];
}
