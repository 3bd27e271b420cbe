//! The size of a run before it runs: connections from the client
//! populations, events and output sizes from measured ratios, so that the
//! command line can warn before a run that takes long or writes gigabytes
//! (README, Large runs; docs/trace-format.md, Sizes).

use crate::scenario::{Arrival, Scenario};

/// Events per connection, measured: nginx-reload.json runs 30,310 events
/// for 2,561 connections (11.8); lossy links and retries add more.
pub const EVENTS_PER_CONNECTION: u64 = 12;
/// Trace bytes per connection, measured (docs/trace-format.md: 1.0-1.1 KB).
pub const TRACE_BYTES_PER_CONNECTION: u64 = 1_100;
/// Capture bytes per connection, measured (docs/trace-format.md: 1.8-1.9 KB
/// of pcapng).
pub const PCAP_BYTES_PER_CONNECTION: u64 = 1_900;
/// Connections above which a run is large enough to warn about (a few
/// seconds of CPU in release, a gigabyte of trace).
pub const LARGE_CONNECTIONS: u64 = 1_000_000;

/// What a run of a scenario is expected to cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// Client connections attempted.
    pub connections: u64,
    /// Events processed (about [`EVENTS_PER_CONNECTION`] each).
    pub events: u64,
}

/// The expected connections and events of `scn` (after its `vary` draws):
/// the arrivals of each population between its `start` and its `stop` (or
/// the end of the run). Saturating: a huge scenario gives a huge estimate.
pub fn estimate(scn: &Scenario) -> Estimate {
    let end = scn.duration.0.as_nanos();
    let mut connections = 0u64;
    for c in &scn.clients {
        let start = c.start.0.as_nanos().min(end);
        let stop = c.stop.map_or(end, |s| s.0.as_nanos().min(end)).max(start);
        let span_ns = u128::from(stop - start);
        let per_s = |rate: u64| (u128::from(rate) * span_ns / 1_000_000_000) as u64;
        connections = connections.saturating_add(match c.arrival {
            Arrival::Constant { rate } | Arrival::Poisson { rate } => per_s(rate),
            Arrival::Burst { count, .. } => count,
            Arrival::Ramp { from_rate, to_rate } => per_s(from_rate.saturating_add(to_rate) / 2),
        });
    }
    Estimate {
        connections,
        events: connections.saturating_mul(EVENTS_PER_CONNECTION),
    }
}

/// A warning for a large run, or `None`: the estimate, and the sizes of
/// the trace and capture if they are asked for.
pub fn warning(e: Estimate, trace: bool, pcap: bool) -> Option<String> {
    if e.connections < LARGE_CONNECTIONS {
        return None;
    }
    let mut m = format!(
        "note: a large run: about {} connections and {} events",
        e.connections, e.events
    );
    let gb = |per: u64| e.connections.saturating_mul(per) as f64 / 1e9;
    if trace {
        m += &format!(
            "; the trace will take about {:.1} GB",
            gb(TRACE_BYTES_PER_CONNECTION)
        );
    }
    if pcap {
        m += &format!(
            "; the capture about {:.1} GB",
            gb(PCAP_BYTES_PER_CONNECTION)
        );
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_str;

    fn scn(clients: &str, duration: &str) -> Scenario {
        parse_str(&format!(
            r#"{{"version": 1, "name": "t", "duration": "{duration}",
              "hosts": [{{"name": "s", "addresses": ["10.0.0.1"]}}],
              "servers": [{{"name": "web", "host": "s", "address": "10.0.0.1", "port": 80}}],
              "workers": [{{"name": "a", "server": "web"}}], "clients": {clients}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn connections_from_each_arrival_process() {
        let c = |arrival: &str, extra: &str| {
            format!(
                r#"[{{"name": "c", "host": "s", "server": "web", "arrival": {arrival}{extra}}}]"#
            )
        };
        let e = estimate(&scn(&c(r#"{"kind": "constant", "rate": 500}"#, ""), "6s"));
        assert_eq!(e.connections, 3000);
        assert_eq!(e.events, 3000 * EVENTS_PER_CONNECTION);
        let e = estimate(&scn(
            &c(
                r#"{"kind": "poisson", "rate": 500}"#,
                r#", "start": "1s", "stop": "5s""#,
            ),
            "6s",
        ));
        assert_eq!(e.connections, 2000);
        let e = estimate(&scn(&c(r#"{"kind": "burst", "count": 77}"#, ""), "6s"));
        assert_eq!(e.connections, 77);
        let e = estimate(&scn(
            &c(r#"{"kind": "ramp", "from_rate": 0, "to_rate": 1000}"#, ""),
            "10s",
        ));
        assert_eq!(e.connections, 5000);
        assert_eq!(warning(e, true, true), None);
        let big = estimate(&scn(
            &c(r#"{"kind": "constant", "rate": 100000}"#, ""),
            "100s",
        ));
        let w = warning(big, true, false).unwrap();
        assert!(w.contains("10000000 connections"), "{w}");
        assert!(w.contains("trace will take about 11.0 GB"), "{w}");
        assert!(!w.contains("capture"), "{w}");
    }
}
