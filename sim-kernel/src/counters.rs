//! SNMP and extended TCP counters of a namespace, under the names `nstat`
//! prints: `TcpExt<Field>` from `/proc/net/netstat`, `Tcp<Field>` from
//! `/proc/net/snmp` (and every other section the same way: `IpExt...`,
//! `Udp...`).
//!
//! `/proc/net` is `/proc/self/net`, the namespace of the process's main
//! thread; the files are read through `/proc/thread-self/net` by a thread
//! inside the namespace.

use std::collections::BTreeMap;

use crate::error::{KernelError, Result};

/// Counter values by `nstat` name.
pub type Counters = BTreeMap<String, i64>;

/// Parses the two-line-per-section format of `/proc/net/netstat` and
/// `/proc/net/snmp` (`Prefix: names...` then `Prefix: values...`).
pub fn parse_proc_counters(text: &str, into: &mut Counters) {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((p1, names)), Some((p2, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if p1 != p2 {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<i64>() {
                into.insert(format!("{p1}{n}"), v);
            }
        }
    }
}

/// Reads the calling thread's namespace counters.
pub fn read_counters() -> Result<Counters> {
    let mut c = Counters::new();
    for f in [
        "/proc/thread-self/net/netstat",
        "/proc/thread-self/net/snmp",
    ] {
        let text =
            std::fs::read_to_string(f).map_err(|e| KernelError::sys(format!("reading {f}"), e))?;
        parse_proc_counters(&text, &mut c);
    }
    Ok(c)
}

/// `after - before` for every counter that changed (gauges such as
/// `TcpCurrEstab` may be negative).
pub fn delta(before: &Counters, after: &Counters) -> Counters {
    after
        .iter()
        .filter_map(|(k, &a)| {
            let d = a - before.get(k).copied().unwrap_or(0);
            (d != 0).then(|| (k.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nstat_names() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows TCPMigrateReqSuccess\n\
                       TcpExt: 0 7 25\n\
                       IpExt: InNoRoutes\nIpExt: 3\n";
        let snmp = "Tcp: RtoAlgorithm MaxConn OutRsts\nTcp: 1 -1 4\n";
        let mut c = Counters::new();
        parse_proc_counters(netstat, &mut c);
        parse_proc_counters(snmp, &mut c);
        assert_eq!(c["TcpExtListenOverflows"], 7);
        assert_eq!(c["TcpExtTCPMigrateReqSuccess"], 25);
        assert_eq!(c["IpExtInNoRoutes"], 3);
        assert_eq!(c["TcpOutRsts"], 4);
        assert_eq!(c["TcpMaxConn"], -1);
        let mut after = c.clone();
        after.insert("TcpOutRsts".into(), 10);
        let d = delta(&c, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d["TcpOutRsts"], 6);
    }
}
