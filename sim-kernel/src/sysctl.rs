//! Sysctls of a namespace, written and read through `/proc/sys/net/...` by a
//! thread inside the namespace (network sysctls resolve to the opening
//! thread's namespace). Only `net.` names are accepted: everything else is
//! global to the host.

use crate::error::{KernelError, Result};

/// The `/proc/sys` path of a sysctl given by its short scenario name
/// (`tcp_migrate_req`, `somaxconn`) or a dotted name under `net.`
/// (`net.ipv4.tcp_fastopen`).
pub fn sysctl_path(name: &str) -> Result<String> {
    let rel = if let Some(rest) = name.strip_prefix("net.") {
        format!("net/{}", rest.replace('.', "/"))
    } else if name == "somaxconn" {
        "net/core/somaxconn".to_owned()
    } else if name.starts_with("tcp_") || name.starts_with("ip_") {
        format!("net/ipv4/{name}")
    } else {
        return Err(KernelError::InvalidSpec(format!(
            "sysctl `{name}`: not a per-namespace network sysctl (use a `tcp_*` name, `somaxconn`, or a dotted name under `net.`)"
        )));
    };
    if rel.contains("..") || rel.contains("//") || rel.is_empty() {
        return Err(KernelError::InvalidSpec(format!(
            "sysctl `{name}`: bad name"
        )));
    }
    Ok(format!("/proc/sys/{rel}"))
}

/// Writes a sysctl. Call from a thread inside the target namespace.
pub fn write_sysctl(name: &str, value: i64) -> Result<()> {
    let path = sysctl_path(name)?;
    std::fs::write(&path, format!("{value}\n"))
        .map_err(|e| KernelError::sys(format!("writing sysctl {name} = {value} ({path})"), e))
}

/// Reads an integer sysctl. Call from a thread inside the namespace.
pub fn read_sysctl(name: &str) -> Result<i64> {
    let path = sysctl_path(name)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| KernelError::sys(format!("reading sysctl {name} ({path})"), e))?;
    text.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| KernelError::InvalidSpec(format!("sysctl {name}: not an integer: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            sysctl_path("tcp_migrate_req").unwrap(),
            "/proc/sys/net/ipv4/tcp_migrate_req"
        );
        assert_eq!(
            sysctl_path("somaxconn").unwrap(),
            "/proc/sys/net/core/somaxconn"
        );
        assert_eq!(
            sysctl_path("net.ipv6.conf.all.disable_ipv6").unwrap(),
            "/proc/sys/net/ipv6/conf/all/disable_ipv6"
        );
        assert!(sysctl_path("kernel.panic").is_err());
        assert!(sysctl_path("vm_swappiness").is_err());
        assert!(sysctl_path("net...x").is_err());
    }
}
