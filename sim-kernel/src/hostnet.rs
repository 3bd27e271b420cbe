//! Builds one host's namespace: `lo` up, a TUN device with the host's
//! addresses and default routes through it (if the host has a link), the
//! scenario's sysctls.

use std::net::IpAddr;
use std::os::fd::OwnedFd;

use crate::error::{KernelError, Result};
use crate::netlink::{self, NetlinkSocket};
use crate::netns::Netns;
use crate::spec::HostSpec;
use crate::sysctl;
use crate::tun;

/// A configured host namespace. Field order is drop order: the TUN fd is
/// closed (removing the device) before the namespace name is removed.
#[derive(Debug)]
pub struct HostNet {
    /// The host's name in the spec.
    pub name: String,
    /// Its TUN fd, if it has a link.
    pub tun: Option<OwnedFd>,
    /// The namespace.
    pub ns: Netns,
}

fn is_loopback(a: IpAddr) -> bool {
    a.is_loopback()
}

/// Creates and configures the namespace of `host`. `with_tun`: the host has
/// at least one link.
pub fn build_host(host: &HostSpec, with_tun: bool) -> Result<HostNet> {
    let ns = Netns::create(&host.name)?;
    let name = host.name.clone();
    let tun = ns.run_in(|| {
        let ctx = |what: &str| format!("host `{name}`: {what}");
        let mut nl = NetlinkSocket::open(libc::NETLINK_ROUTE)
            .map_err(|e| KernelError::sys(ctx("opening rtnetlink"), e))?;
        let lo = netlink::if_index("lo").map_err(|e| KernelError::sys(ctx("finding lo"), e))?;
        netlink::link_up(&mut nl, lo).map_err(|e| KernelError::sys(ctx("bringing lo up"), e))?;
        let tun = if with_tun {
            let fd =
                tun::create().map_err(|e| KernelError::sys(ctx("creating the TUN device"), e))?;
            let idx = netlink::if_index(tun::TUN_NAME)
                .map_err(|e| KernelError::sys(ctx("finding the TUN device"), e))?;
            netlink::link_up(&mut nl, idx)
                .map_err(|e| KernelError::sys(ctx("bringing the TUN device up"), e))?;
            Some((fd, idx))
        } else {
            None
        };
        let dev = tun.as_ref().map_or(lo, |t| t.1);
        for &a in &host.addresses {
            if is_loopback(a) {
                continue;
            }
            let prefix = if a.is_ipv4() { 32 } else { 128 };
            netlink::add_address(&mut nl, dev, a, prefix)
                .map_err(|e| KernelError::sys(ctx(&format!("adding address {a}")), e))?;
        }
        if let Some((_, idx)) = tun.as_ref() {
            netlink::add_device_route(&mut nl, *idx, IpAddr::from([0u8; 4]), 0)
                .map_err(|e| KernelError::sys(ctx("adding the IPv4 default route"), e))?;
            netlink::add_device_route(&mut nl, *idx, IpAddr::from([0u16; 8]), 0)
                .map_err(|e| KernelError::sys(ctx("adding the IPv6 default route"), e))?;
        }
        for (k, &v) in &host.sysctls {
            sysctl::write_sysctl(k, v).map_err(|e| match e {
                KernelError::Sys { context, source } => KernelError::sys(ctx(&context), source),
                other => other,
            })?;
        }
        Ok(tun.map(|t| t.0))
    })?;
    Ok(HostNet {
        name: host.name.clone(),
        tun,
        ns,
    })
}
