//! Named invariants checked on every run of a sweep (and by `run` and
//! `compare`): from the report, from the scenario's timeline, and from
//! panics raised by assertions inside the model.
//!
//! A failing assertion inside the model panics with a message that starts
//! with `invariant <name>:`; [`classify_panic`] maps such a message (and the
//! event queue's "time went backwards" assertions) back to the check's name.

use crate::policy::PolicyKind;
use crate::report::Report;
use crate::scenario::{Action, Scenario};
use serde::{Deserialize, Serialize};
use sim_core::SimDuration;

/// The run completed without a panic.
pub const NO_PANIC: &str = "no_panic";
/// Simulated time never went backwards (asserted by `sim_core::EventQueue`).
pub const TIME_MONOTONIC: &str = "time_monotonic";
/// Every attempt ended in exactly one outcome, or is in flight at the end.
pub const OUTCOMES_ACCOUNTED: &str = "outcomes_accounted";
/// Counters agree with outcomes and with the per-cause tallies.
pub const COUNTERS_AGREE: &str = "counters_agree";
/// SYN and accept queues stay within their limits (outside migration).
pub const QUEUE_LIMITS: &str = "queue_limits";
/// With migration forced off and no migration-capable policy, nothing migrates.
pub const MIGRATION_OFF_IS_OFF: &str = "migration_off_is_off";
/// With migration on and a live accepting listener left, no connection is
/// lost to a listener close unless a policy dropped it or the target's
/// queue overflowed.
pub const NO_CLOSE_LOSS_WITH_LIVE_LISTENER: &str = "no_close_loss_with_live_listener";
/// TIME_WAIT sockets stay within `tcp_max_tw_buckets` and come only from
/// connections whose close went through (§5.12).
pub const TIME_WAIT_BOUNDED: &str = "time_wait_bounded";
/// A sample of seeds re-run (in another thread count) gives identical results.
pub const DETERMINISM: &str = "determinism";

/// Every check, with what it verifies, in report order.
pub const CHECKS: [(&str, &str); 9] = [
    (NO_PANIC, "the run completes without a panic"),
    (
        TIME_MONOTONIC,
        "simulated time never goes backwards (event-queue assertions)",
    ),
    (
        OUTCOMES_ACCOUNTED,
        "attempted = completed + refused + reset + timed_out + abandoned + eof + no_port + in_flight",
    ),
    (
        COUNTERS_AGREE,
        "nstat counters agree with outcomes, per-cause RST/drop tallies and migration counts",
    ),
    (
        QUEUE_LIMITS,
        "SYN and accept queues <= backlog+1 except through migration (§5.2, §5.3, §5.7 step 4) \
         or a SYN taking over a TIME_WAIT socket (§5.12)",
    ),
    (
        MIGRATION_OFF_IS_OFF,
        "migration forced off and no select_or_migrate policy: no migration at all \
         (failures only for the sysctl, §4.3)",
    ),
    (
        NO_CLOSE_LOSS_WITH_LIVE_LISTENER,
        "migration on and a live accepting listener left: no loss to a listener close \
         beyond policy drops and target overflows (§6.2)",
    ),
    (
        TIME_WAIT_BOUNDED,
        "TIME_WAIT: at_end <= peak <= tcp_max_tw_buckets per host side, and all peaks together \
         <= completed + eof (only a finished exchange closes into TIME_WAIT, §5.12)",
    ),
    (
        DETERMINISM,
        "seeds re-run in another thread count give identical digests and results",
    ),
];

/// Flag (reported, not a failure): migration on ended with more resets
/// than migration off for the same seed.
pub const FLAG_MORE_RESETS_WITH_MIGRATION: &str = "more_resets_with_migration";

/// A failed check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Check name (one of [`CHECKS`]).
    pub check: String,
    /// What was wrong, with the numbers.
    pub message: String,
}

fn v(check: &str, message: String) -> Violation {
    Violation {
        check: check.to_string(),
        message,
    }
}

/// Maps a panic message to the check it violates.
pub fn classify_panic(msg: &str) -> &'static str {
    if let Some(rest) = msg.strip_prefix("invariant ") {
        let name = rest.split(':').next().unwrap_or("");
        if let Some((n, _)) = CHECKS.iter().find(|(n, _)| *n == name) {
            return n;
        }
    }
    if msg.contains("time went backwards") || msg.contains("scheduled in the past") {
        return TIME_MONOTONIC;
    }
    NO_PANIC
}

/// Migration failures that the no-loss rule excuses: a policy decision, or
/// the target's queue (§5.4 step 6).
fn excused_failures(r: &Report) -> u64 {
    r.migrations
        .failures
        .iter()
        .filter(|(k, _)| {
            let reason = k.rsplit('/').next().unwrap_or("");
            matches!(
                reason,
                "policy_drop" | "target_not_listening" | "target_accept_queue_full"
            )
        })
        .map(|(_, n)| n)
        .sum()
}

/// Whether "a live accepting listener is left" holds for every listener
/// close of the timeline: for each close (close, shutdown or kill) of a
/// worker, another worker of the same server (and `v6only` setting) has
/// already called `listen()` by then, never closes, shuts down, is killed or
/// takes part in an fd handover, and is accepting at the end (it may stop
/// accepting for a while if it resumes). Vacuously true when nothing closes. Same-instant actions count in the plan's order
/// (workers' `listen_at` first, then the timeline in file order).
pub fn live_listener_throughout(scn: &Scenario) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        Listen,
        Close,
        Handover,
        Stop,
        Resume,
    }
    let widx = |name: &str| scn.workers.iter().position(|w| w.name == name);
    let mut ops: Vec<(SimDuration, Op, usize)> = Vec::new();
    for (i, w) in scn.workers.iter().enumerate() {
        if let Some(t) = w.listen_at {
            ops.push((t.0, Op::Listen, i));
        }
    }
    for a in &scn.timeline {
        for p in a.expand() {
            let (op, names): (Op, Vec<&String>) = match &p {
                Action::Listen { worker, .. } => (Op::Listen, vec![worker]),
                Action::Close { worker, .. }
                | Action::Shutdown { worker, .. }
                | Action::Kill { worker, .. } => (Op::Close, vec![worker]),
                Action::StopAccepting { worker, .. } => (Op::Stop, vec![worker]),
                Action::ResumeAccepting { worker, .. } => (Op::Resume, vec![worker]),
                Action::Handover { from, to, .. } => (Op::Handover, vec![from, to]),
                _ => continue,
            };
            for n in names {
                if let Some(i) = widx(n) {
                    ops.push((p.at(), op, i));
                }
            }
        }
    }
    ops.sort_by_key(|(t, _, _)| *t);
    let n = scn.workers.len();
    let mut disqualified = vec![false; n];
    let mut stopped = vec![false; n];
    for &(_, op, i) in &ops {
        match op {
            Op::Close | Op::Handover => disqualified[i] = true,
            Op::Stop => stopped[i] = true,
            Op::Resume => stopped[i] = false,
            Op::Listen => {}
        }
    }
    for (d, s) in disqualified.iter_mut().zip(&stopped) {
        *d |= *s;
    }
    let mut listening = vec![false; n];
    for &(_, op, i) in &ops {
        match op {
            Op::Listen => listening[i] = true,
            Op::Close => {
                let w = &scn.workers[i];
                let covered = (0..n).any(|q| {
                    q != i
                        && listening[q]
                        && !disqualified[q]
                        && scn.workers[q].server == w.server
                        && scn.workers[q].v6only == w.v6only
                });
                if !covered {
                    return false;
                }
            }
            Op::Handover | Op::Stop | Op::Resume => {}
        }
    }
    true
}

/// Whether the scenario attaches a migration-capable policy (which migrates
/// whatever `tcp_migrate_req` says, §4.3).
pub fn has_migrating_policy(scn: &Scenario) -> bool {
    scn.policies
        .iter()
        .any(|p| p.kind == PolicyKind::SelectOrMigrate)
}

/// The checks of one completed run. `scn` is the scenario as run (after
/// `vary`), `migrate` the `--migrate` override of the run.
pub fn check_run(scn: &Scenario, r: &Report, migrate: Option<bool>) -> Vec<Violation> {
    [
        outcomes_accounted(r),
        counters_agree(r),
        queue_limits(scn, r),
        migration_off_is_off(scn, r, migrate),
        no_close_loss_with_live_listener(scn, r, migrate),
        time_wait_bounded(scn, r),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The largest `tcp_max_tw_buckets` host `host` ever has (its sysctl, or
/// a timeline `set_sysctl`; a lowered limit frees nothing).
fn max_tw_buckets(scn: &Scenario, host: &str) -> u64 {
    const NAME: &str = "tcp_max_tw_buckets";
    let default = u64::from(sim_tcp::Sysctls::default().tcp_max_tw_buckets);
    let initial = scn
        .hosts
        .iter()
        .find(|h| h.name == host)
        .and_then(|h| h.sysctls.get(NAME).copied())
        .unwrap_or(default);
    let later = scn
        .timeline
        .iter()
        .flat_map(|a| a.expand())
        .filter_map(|a| match a {
            Action::SetSysctl {
                host: h,
                name,
                value,
                ..
            } if h == host && name == NAME => Some(value),
            _ => None,
        });
    later.fold(initial, u64::max)
}

/// [`TIME_WAIT_BOUNDED`].
fn time_wait_bounded(scn: &Scenario, r: &Report) -> Option<Violation> {
    let mut bad = Vec::new();
    for t in &r.time_wait {
        let limit = max_tw_buckets(scn, &t.host);
        if t.at_end > t.peak || t.peak > limit {
            bad.push(format!(
                "{} ({}): at_end {} peak {} tcp_max_tw_buckets {limit}",
                t.host, t.side, t.at_end, t.peak
            ));
        }
    }
    let peaks: u64 = r.time_wait.iter().map(|t| t.peak).sum();
    let closed = r.connections.completed + r.connections.eof;
    if peaks > closed {
        bad.push(format!(
            "TIME_WAIT peaks sum to {peaks}, more than the {closed} connections completed or at EOF"
        ));
    }
    (!bad.is_empty()).then(|| v(TIME_WAIT_BOUNDED, bad.join("; ")))
}

/// [`OUTCOMES_ACCOUNTED`].
fn outcomes_accounted(r: &Report) -> Option<Violation> {
    let c = &r.connections;
    let ended = c.outcomes();
    (ended != c.attempted).then(|| {
        v(
            OUTCOMES_ACCOUNTED,
            format!(
                "attempted {} but completed {} + refused {} + reset {} + timed_out {} + abandoned {} + eof {} + no_port {} + in_flight {} = {}",
                c.attempted, c.completed, c.refused, c.reset, c.timed_out, c.abandoned, c.eof, c.no_port, c.in_flight, ended
            ),
        )
    })
}

/// [`COUNTERS_AGREE`].
fn counters_agree(r: &Report) -> Option<Violation> {
    let c = &r.connections;
    let m = &r.migrations;
    let mut bad = Vec::new();
    let sent: u64 = r.resets_by_cause.iter().map(|x| x.rsts_sent).sum();
    if sent != r.counter("TcpOutRsts") {
        bad.push(format!(
            "RSTs by cause sum to {sent}, TcpOutRsts is {}",
            r.counter("TcpOutRsts")
        ));
    }
    let reset_by: u64 = r.resets_by_cause.iter().map(|x| x.connections_reset).sum();
    if reset_by != c.reset {
        bad.push(format!(
            "connections reset by cause sum to {reset_by}, outcomes say {} reset",
            c.reset
        ));
    }
    let refused_by: u64 = r
        .resets_by_cause
        .iter()
        .map(|x| x.connections_refused)
        .sum();
    if refused_by != c.refused {
        bad.push(format!(
            "connections refused by cause sum to {refused_by}, outcomes say {} refused",
            c.refused
        ));
    }
    let hops = m.accept_queue + m.synack_timer + m.final_ack;
    if hops != r.counter("TcpExtTCPMigrateReqSuccess") {
        bad.push(format!(
            "migration hops {hops} (accept_queue {} + synack_timer {} + final_ack {}) but TCPMigrateReqSuccess {}",
            m.accept_queue,
            m.synack_timer,
            m.final_ack,
            r.counter("TcpExtTCPMigrateReqSuccess")
        ));
    }
    let failures: u64 = m.failures.values().sum();
    if failures != m.failed || m.failed != r.counter("TcpExtTCPMigrateReqFailure") {
        bad.push(format!(
            "migration failures: by reason {failures}, total {}, TCPMigrateReqFailure {}",
            m.failed,
            r.counter("TcpExtTCPMigrateReqFailure")
        ));
    }
    if m.connections_migrated > hops {
        bad.push(format!(
            "{} connections migrated with only {hops} migration hops",
            m.connections_migrated
        ));
    }
    // §5.10: only a close with unread data sends `application_abort`.
    if r.rsts_sent("application_abort") != r.counter("TcpExtTCPAbortOnClose") {
        bad.push(format!(
            "application_abort RSTs {} but TCPAbortOnClose {}",
            r.rsts_sent("application_abort"),
            r.counter("TcpExtTCPAbortOnClose")
        ));
    }
    let overflows = r.drops("syn_accept_queue_full")
        + r.drops("final_ack_accept_queue_full")
        + r.drops("cookie_ack_accept_queue_full")
        + r.rsts_sent("accept_queue_overflow")
        + r.rsts_sent("migrated_accept_queue_overflow");
    if overflows != r.counter("TcpExtListenOverflows") {
        bad.push(format!(
            "accept-queue overflow drops and RSTs sum to {overflows}, ListenOverflows is {}",
            r.counter("TcpExtListenOverflows")
        ));
    }
    if r.drops("syn_queue_full") != r.counter("TcpExtTCPReqQFullDrop") {
        bad.push(format!(
            "syn_queue_full drops {} but TCPReqQFullDrop {}",
            r.drops("syn_queue_full"),
            r.counter("TcpExtTCPReqQFullDrop")
        ));
    }
    (!bad.is_empty()).then(|| v(COUNTERS_AGREE, bad.join("; ")))
}

/// The largest backlog worker `name`'s own listener ever has: its
/// `listen()` backlog, or a `relisten` (§5.1) by it or by a worker that
/// inherited its listener (through any chain of handovers). A lowered
/// backlog evicts nothing, so the peak is bounded by the largest one.
fn max_backlog(scn: &Scenario, name: &str) -> u32 {
    let mut holders = vec![name.to_string()];
    let mut grew = true;
    while grew {
        grew = false;
        for a in &scn.timeline {
            for p in a.expand() {
                if let Action::Handover { from, to, .. } = p {
                    if holders.contains(&from) && !holders.contains(&to) {
                        holders.push(to);
                        grew = true;
                    }
                }
            }
        }
    }
    let own = scn
        .workers
        .iter()
        .find(|w| w.name == name)
        .map_or(0, |w| w.backlog);
    scn.timeline
        .iter()
        .flat_map(|a| a.expand())
        .filter_map(|p| match p {
            Action::Relisten {
                worker, backlog, ..
            } if holders.contains(&worker) => Some(backlog),
            _ => None,
        })
        .fold(own, u32::max)
}

/// [`QUEUE_LIMITS`], from the peaks: only a migration may exceed backlog+1
/// (the largest backlog the listener had, [`max_backlog`]).
fn queue_limits(scn: &Scenario, r: &Report) -> Option<Violation> {
    let m = &r.migrations;
    // A request cloned onto a target by `reqsk_timer_handler` is counted in
    // the target's SYN queue with no fullness check (§5.3), whether the
    // clone then lives (a synack_timer hop) or expires at once (counted as
    // a synack_timer/request_expired failure, not a hop).
    let timer_clones = m.synack_timer
        + m.failures
            .get("synack_timer/request_expired")
            .copied()
            .unwrap_or(0);
    // A SYN that takes over a server TIME_WAIT socket skips the SYN-queue
    // check (§5.12, §5.2 step 1).
    let tw_syns: u64 = r
        .time_wait
        .iter()
        .filter(|t| t.side == "server")
        .map(|t| t.taken_over)
        .sum();
    let mut over = Vec::new();
    for l in &r.listeners {
        let Some(w) = scn.workers.iter().find(|w| w.name == l.worker) else {
            continue;
        };
        let limit = max_backlog(scn, &w.name).saturating_add(1);
        if m.accept_queue == 0 && l.peak_accept_queue > limit {
            over.push(format!(
                "{}: accept queue peaked at {} > backlog+1 = {limit} with no migration at close",
                l.worker, l.peak_accept_queue
            ));
        }
        if timer_clones == 0 && tw_syns == 0 && l.peak_syn_queue > limit {
            over.push(format!(
                "{}: SYN queue peaked at {} > backlog+1 = {limit} with no timer migration",
                l.worker, l.peak_syn_queue
            ));
        }
    }
    (!over.is_empty()).then(|| v(QUEUE_LIMITS, over.join("; ")))
}

/// [`MIGRATION_OFF_IS_OFF`]: off means off, unless a policy migrates by itself.
fn migration_off_is_off(scn: &Scenario, r: &Report, migrate: Option<bool>) -> Option<Violation> {
    let m = &r.migrations;
    let hops = r.migration_hops();
    // A failure for the sysctl itself is what "off" means (§4.3: no
    // migrate-capable policy and tcp_migrate_req 0 is a counted FAIL). It
    // needs a group that outlived the close, which a policy attached
    // through a shut-down listener makes (reuseport_attach_prog allocates
    // a fresh group for an unhashed socket).
    let failed: u64 = m
        .failures
        .iter()
        .filter(|(k, _)| !k.ends_with("/sysctl_off"))
        .map(|(_, n)| n)
        .sum();
    (migrate == Some(false) && !has_migrating_policy(scn) && (hops > 0 || failed > 0)).then(|| {
        v(
            MIGRATION_OFF_IS_OFF,
            format!(
                "tcp_migrate_req forced to 0 and no select_or_migrate policy, yet {hops} \
                 migration hops and {failed} failures other than sysctl_off"
            ),
        )
    })
}

/// [`NO_CLOSE_LOSS_WITH_LIVE_LISTENER`]: no loss to a listener close while
/// a live accepting listener is left.
fn no_close_loss_with_live_listener(
    scn: &Scenario,
    r: &Report,
    migrate: Option<bool>,
) -> Option<Violation> {
    let m = &r.migrations;
    if migrate != Some(true) || !live_listener_throughout(scn) {
        return None;
    }
    let child = r.rsts_sent("listener_close_child");
    let req = r.rsts_sent("closed_listener_request");
    let timer = r.drops("request_timer_no_target");
    let lost = child + req + timer;
    let excused = excused_failures(r);
    (lost > excused).then(|| {
        v(
            NO_CLOSE_LOSS_WITH_LIVE_LISTENER,
            format!(
                "migration on with a live accepting listener, yet {lost} connection(s) lost to \
                 a listener close (RST listener_close_child {child} [§7 A], RST \
                 closed_listener_request {req} [§7 B], drop request_timer_no_target {timer} \
                 [§7 C]) against {excused} excused migration failures (policy drop, target \
                 not listening, target queue full); failures by reason: {}",
                if m.failures.is_empty() {
                    "none".to_string()
                } else {
                    m.failures
                        .iter()
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        )
    })
}

/// The metamorphic flag: migration on reset more connections than off.
pub fn more_resets_with_migration(off: &Report, on: &Report) -> bool {
    on.connections.reset > off.connections.reset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_str;

    fn scn(workers: &str, timeline: &str) -> Scenario {
        parse_str(&format!(
            r#"{{"version": 1, "name": "t", "duration": "10s",
              "hosts": [{{"name": "s", "addresses": ["10.0.0.1"]}}],
              "servers": [{{"name": "web", "host": "s", "address": "10.0.0.1", "port": 80}}],
              "workers": {workers}, "clients": [], "timeline": {timeline}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn live_listener_from_the_timeline() {
        let w = r#"[{"name": "a", "server": "web"}, {"name": "b", "server": "web", "listen_at": null}]"#;
        // New first: b listens, then a closes.
        let t = r#"[{"at": "1s", "do": "reload_new_first", "old": ["a"], "new": ["b"], "drain": "1s"}]"#;
        assert!(live_listener_throughout(&scn(w, t)));
        // Old first: a closes before b listens.
        let t =
            r#"[{"at": "1s", "do": "restart_old_first", "old": ["a"], "new": ["b"], "gap": "1s"}]"#;
        assert!(!live_listener_throughout(&scn(w, t)));
        // b listens but stops accepting for good.
        let t = r#"[{"at": "1s", "do": "listen", "worker": "b"}, {"at": "1s", "do": "stop_accepting", "worker": "b"},
                    {"at": "2s", "do": "close", "worker": "a"}]"#;
        assert!(!live_listener_throughout(&scn(w, t)));
        // ... or resumes later (the kernel selftests' pattern).
        let t = r#"[{"at": "1s", "do": "listen", "worker": "b"}, {"at": "1s", "do": "stop_accepting", "worker": "b"},
                    {"at": "2s", "do": "close", "worker": "a"}, {"at": "3s", "do": "resume_accepting", "worker": "b"}]"#;
        assert!(live_listener_throughout(&scn(w, t)));
        // Nothing closes.
        assert!(live_listener_throughout(&scn(w, "[]")));
        // Same instant: the timeline order decides (immediate_stop listens first).
        let t = r#"[{"at": "1s", "do": "immediate_stop", "old": ["a"], "new": ["b"]}]"#;
        assert!(live_listener_throughout(&scn(w, t)));
    }

    #[test]
    fn panics_are_classified() {
        assert_eq!(
            classify_panic("invariant queue_limits: listener 3 ..."),
            QUEUE_LIMITS
        );
        assert_eq!(
            classify_panic("event queue time went backwards: 1s < 2s"),
            TIME_MONOTONIC
        );
        assert_eq!(
            classify_panic("event scheduled in the past: at 1s, now 2s"),
            TIME_MONOTONIC
        );
        assert_eq!(classify_panic("index out of bounds"), NO_PANIC);
        assert_eq!(classify_panic("invariant nonsense: x"), NO_PANIC);
    }
}
