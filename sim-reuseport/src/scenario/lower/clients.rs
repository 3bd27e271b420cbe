//! Lowering of the client populations: the address they connect to and
//! from, the route to their server, their arrival process.

use super::network::Reach;
use super::{unique, Cx, Result, K, MAX_BURST, MAX_CLIENTS, MAX_RATE};
use crate::scenario::format::Arrival;
use crate::scenario::plan::*;
use crate::scenario::LowerError;
use sim_core::SimDuration;
use std::net::{IpAddr, SocketAddr};

impl Cx<'_> {
    pub(super) fn clients(
        &self,
        hosts: &[HostPlan],
        links: &[LinkPlan],
        servers: &[ServerPlan],
    ) -> Result<Vec<ClientPlan>> {
        let scn = self.scn;
        unique(
            scn.clients.iter().map(|c| c.name.as_str()),
            "client",
            "clients",
        )?;
        let reach = Reach::new(hosts.len(), links);
        let mut clients = Vec::new();
        for i in 0..scn.clients.len() {
            clients.push(self.client(i, hosts, &reach, servers)?);
        }
        if clients.len() > MAX_CLIENTS {
            return Err(LowerError::new(
                K::TooManyClients,
                "clients",
                format!("at most {MAX_CLIENTS} client populations"),
            ));
        }
        Ok(clients)
    }

    fn client(
        &self,
        i: usize,
        hosts: &[HostPlan],
        reach: &Reach,
        servers: &[ServerPlan],
    ) -> Result<ClientPlan> {
        let c = &self.scn.clients[i];
        let host = self.host(&c.host, &format!("clients[{i}].host"))?;
        let server = self.server(&c.server, &format!("clients[{i}].server"))?;
        let spec = &servers[server.index()];
        let server_host = spec.host;
        let server_ip = if spec.local.ip().is_unspecified() {
            *hosts[server_host.index()]
                .addresses
                .iter()
                .find(|a| a.is_ipv4() == spec.local.is_ipv4())
                .ok_or_else(|| {
                    LowerError::new(
                        K::NoServerAddress,
                        format!("servers[{}].address", server.0),
                        "the host has no address of this family for clients to connect to",
                    )
                })?
        } else {
            spec.local.ip()
        };
        let sources: Vec<IpAddr> = hosts[host.index()]
            .addresses
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == server_ip.is_ipv4())
            .collect();
        if sources.is_empty() {
            return Err(LowerError::new(
                K::NoSourceAddress,
                format!("clients[{i}].host"),
                format!("host `{}` has no address of the server's family", c.host),
            ));
        }
        if !reach.connected(host, server_host) {
            return Err(LowerError::new(
                K::NoRoute,
                format!("clients[{i}].host"),
                format!(
                    "no route from `{}` to `{}`: add a link",
                    c.host,
                    hosts[server_host.index()].name
                ),
            ));
        }
        let arrival = self.arrival(i, &c.arrival)?;
        if c.request_bytes == 0 {
            return Err(LowerError::new(
                K::RequestZero,
                format!("clients[{i}].request_bytes"),
                "must be at least 1",
            ));
        }
        for (field, t) in [
            ("connect_timeout", c.connect_timeout),
            ("request_timeout", c.request_timeout),
        ] {
            if let Some(t) = t {
                if t.0 == SimDuration::ZERO {
                    return Err(LowerError::new(
                        K::TimeoutZero,
                        format!("clients[{i}].{field}"),
                        "must be greater than 0 (omit it for no deadline)",
                    ));
                }
                self.bounded(t.0, format!("clients[{i}].{field}"))?;
            }
        }
        self.rates(i, &c.arrival)?;
        let start = self.within(c.start.0, format!("clients[{i}].start"))?;
        let stop = self.within(
            c.stop.map_or(self.duration, |s| s.0),
            format!("clients[{i}].stop"),
        )?;
        if stop < start {
            return Err(LowerError::new(
                K::StopBeforeStart,
                format!("clients[{i}].stop"),
                "stop is before start",
            ));
        }
        Ok(ClientPlan {
            name: c.name.clone(),
            host,
            server,
            server_host,
            server_addr: SocketAddr::new(server_ip, spec.local.port()),
            sources,
            arrival,
            start,
            stop,
            request_bytes: c.request_bytes,
            fast_open: c.fast_open,
            has_cookie: c.has_cookie,
            connect_timeout: c.connect_timeout.map(|d| d.0),
            request_timeout: c.request_timeout.map(|d| d.0),
        })
    }

    /// The arrival process, with a burst's spacing and size checked.
    fn arrival(&self, i: usize, a: &Arrival) -> Result<ArrivalPlan> {
        Ok(match a {
            Arrival::Constant { rate } => ArrivalPlan::Constant { rate: *rate },
            Arrival::Poisson { rate } => ArrivalPlan::Poisson { rate: *rate },
            Arrival::Burst { count, spacing } => {
                let spacing = self.bounded(spacing.0, format!("clients[{i}].arrival.spacing"))?;
                if *count > MAX_BURST {
                    return Err(LowerError::new(
                        K::BurstTooLarge,
                        format!("clients[{i}].arrival.count"),
                        format!("a burst is at most {MAX_BURST} connections"),
                    ));
                }
                ArrivalPlan::Burst {
                    count: *count,
                    spacing,
                }
            }
            Arrival::Ramp { from_rate, to_rate } => ArrivalPlan::Ramp {
                from_rate: *from_rate,
                to_rate: *to_rate,
            },
        })
    }

    /// Rates are positive and at most [`MAX_RATE`].
    fn rates(&self, i: usize, a: &Arrival) -> Result<()> {
        match a {
            Arrival::Constant { rate: 0 } | Arrival::Poisson { rate: 0 } => Err(LowerError::new(
                K::RateZero,
                format!("clients[{i}].arrival.rate"),
                "must be greater than 0",
            )),
            Arrival::Ramp { from_rate, to_rate } if *from_rate == 0 && *to_rate == 0 => {
                Err(LowerError::new(
                    K::RateZero,
                    format!("clients[{i}].arrival"),
                    "a ramp needs a non-zero rate",
                ))
            }
            Arrival::Ramp { from_rate, to_rate } if (*from_rate).max(*to_rate) > MAX_RATE => {
                Err(LowerError::new(
                    K::RateTooHigh,
                    format!("clients[{i}].arrival"),
                    format!("ramp rates are at most {MAX_RATE} per second"),
                ))
            }
            Arrival::Constant { rate } | Arrival::Poisson { rate } if *rate > MAX_RATE => {
                Err(LowerError::new(
                    K::RateTooHigh,
                    format!("clients[{i}].arrival.rate"),
                    format!("at most {MAX_RATE} per second"),
                ))
            }
            _ => Ok(()),
        }
    }
}
