//! Hosts, links, routes and faults: where a packet goes, when it arrives,
//! and whether it is dropped on the way.
//!
//! [`TopologyBuilder`] collects hosts and bidirectional links;
//! [`TopologyBuilder::build`] computes every route once (least total latency,
//! Dijkstra via petgraph) into one flat table, so [`Network::transmit`] is a
//! table lookup plus a short walk over the hops, with no allocation.
//!
//! # Per-hop model
//!
//! For each hop (one direction of one link), at time `t` when the packet
//! reaches the sending end (`t = now` for the first hop):
//!
//! 1. One loss value and one jitter value are drawn from the direction's own
//!    RNG streams (`"link-loss"` / `"link-jitter"`, index `2 * link +
//!    direction`), before any drop decision. Every packet reaching a link
//!    direction consumes exactly one of each, so faults and parameter changes
//!    shift no other packet's draws on that direction.
//! 2. If `t` is inside a [`Fault::LinkDown`] window: dropped, `LinkDown`.
//! 3. First hop only: if an active [`Fault::Filter`] matches: dropped,
//!    `Filter(id)`. Filters are evaluated when the packet leaves its source
//!    host, at `now`, in the order they were added.
//! 4. Serialization: with a bandwidth, the packet starts when the direction
//!    is free (`max(t, busy_until)`) and occupies it for `ceil(wire_len * 8 /
//!    bandwidth)`.
//! 5. Loss: dropped with the link's loss probability (after occupying the
//!    link: a lost packet still used the bandwidth).
//! 6. Arrival = end of serialization + latency + jitter, jitter uniform in
//!    `[0, jitter]`. Unless `allow_reorder`, arrival is raised to the last
//!    arrival on this direction, so a direction is FIFO.
//!
//! The [`LinkParams`] in force are those of the latest
//! [`Fault::SetLinkParams`] with `at <= t`. Routes are computed from the
//! initial latencies and do not change. A packet between two addresses of
//! the same host is delivered at `now` without crossing a link (filters
//! still apply).

use std::net::IpAddr;

use petgraph::graph::{NodeIndex, UnGraph};
use petgraph::visit::EdgeRef;

use crate::packet::Packet;
use crate::rng::{uniform_below, Probability, RngStreams, SimRng};
use crate::time::{SimDuration, SimTime};

/// Index of a host in the topology.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct HostId(pub u32);

/// Index of a (bidirectional) link in the topology.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LinkId(pub u32);

/// Caller-chosen identity of a packet filter, reported in drops and stats.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct FilterId(pub u32);

/// Properties of one link, identical in both directions.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkParams {
    /// Fixed propagation delay.
    pub latency: SimDuration,
    /// Bound of the extra delay, drawn uniformly from `[0, jitter]`.
    pub jitter: SimDuration,
    /// Probability that a packet is lost.
    pub loss: Probability,
    /// Bandwidth in bits per second; `None` for infinite (no serialization
    /// delay).
    pub bandwidth_bps: Option<u64>,
    /// Let jitter reorder packets within a direction. When false, a packet
    /// never arrives before one sent earlier in the same direction.
    pub allow_reorder: bool,
}

impl LinkParams {
    /// A lossless, jitter-free link of infinite bandwidth with the given
    /// latency.
    pub const fn with_latency(latency: SimDuration) -> Self {
        LinkParams {
            latency,
            jitter: SimDuration::ZERO,
            loss: Probability::NEVER,
            bandwidth_bps: None,
            allow_reorder: false,
        }
    }

    /// Checks the parameters; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.bandwidth_bps == Some(0) {
            return Err("bandwidth_bps must be positive (use None for unlimited)".to_owned());
        }
        Ok(())
    }
}

impl Default for LinkParams {
    fn default() -> Self {
        Self::with_latency(SimDuration::ZERO)
    }
}

/// Which way a packet crosses a link.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Direction {
    /// From the link's first endpoint `a` to `b`.
    AToB,
    /// From `b` to `a`.
    BToA,
}

impl Direction {
    #[inline]
    const fn index(self) -> usize {
        match self {
            Direction::AToB => 0,
            Direction::BToA => 1,
        }
    }
}

/// One step of a route.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Hop {
    /// The link crossed.
    pub link: LinkId,
    /// The direction it is crossed in.
    pub direction: Direction,
}

/// Which segments a [`PacketFilter`] matches, by TCP flags and payload.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FilterMatch {
    /// Every segment.
    Any,
    /// Only ACK set and no payload.
    PureAck,
    /// ACK set and SYN not set: pure ACKs and data alike, like the kernel
    /// selftest's XDP `drop_ack` program.
    AckNoSyn,
    /// SYN without ACK.
    Syn,
    /// SYN with ACK.
    SynAck,
    /// RST set.
    Rst,
    /// Non-empty payload.
    Data,
}

impl FilterMatch {
    /// True if `packet` is of this kind.
    #[inline]
    pub fn matches(self, packet: &Packet) -> bool {
        use crate::packet::TcpFlags;
        let f = packet.flags;
        match self {
            FilterMatch::Any => true,
            FilterMatch::PureAck => packet.is_pure_ack(),
            FilterMatch::AckNoSyn => f.contains(TcpFlags::ACK) && !f.contains(TcpFlags::SYN),
            FilterMatch::Syn => f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK),
            FilterMatch::SynAck => f.contains(TcpFlags::SYN | TcpFlags::ACK),
            FilterMatch::Rst => f.contains(TcpFlags::RST),
            FilterMatch::Data => packet.payload_len > 0,
        }
    }
}

/// A rule selecting packets to drop. `None` fields match anything.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PacketFilter {
    /// Sending host.
    pub src_host: Option<HostId>,
    /// Receiving host.
    pub dst_host: Option<HostId>,
    /// Destination TCP port.
    pub dst_port: Option<u16>,
    /// Source TCP port.
    pub src_port: Option<u16>,
    /// Segment kind.
    pub match_kind: FilterMatch,
}

impl PacketFilter {
    /// True if the rule selects `packet` travelling from `src` to `dst`.
    #[inline]
    pub fn matches(&self, src: HostId, dst: HostId, packet: &Packet) -> bool {
        self.src_host.map_or(true, |h| h == src)
            && self.dst_host.map_or(true, |h| h == dst)
            && self.dst_port.map_or(true, |p| p == packet.dst.port())
            && self.src_port.map_or(true, |p| p == packet.src.port())
            && self.match_kind.matches(packet)
    }
}

/// A scheduled network fault. Windows are half-open: `[from, until)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fault {
    /// The link drops everything, both directions, while down.
    LinkDown {
        /// The link.
        link: LinkId,
        /// Start of the window (inclusive).
        from: SimTime,
        /// End of the window (exclusive).
        until: SimTime,
    },
    /// New parameters for packets that reach the link at or after `at`.
    SetLinkParams {
        /// The link.
        link: LinkId,
        /// When the change takes effect.
        at: SimTime,
        /// The new parameters.
        params: LinkParams,
    },
    /// Drop packets matching `rule` that leave their source host within the
    /// window.
    Filter {
        /// Identity reported in drops and stats.
        id: FilterId,
        /// Which packets.
        rule: PacketFilter,
        /// Start of the window (inclusive).
        from: SimTime,
        /// End of the window (exclusive).
        until: SimTime,
    },
}

/// Why a packet was not delivered.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DropReason {
    /// Random loss on a link.
    Loss,
    /// A [`Fault::LinkDown`] window.
    LinkDown,
    /// A [`Fault::Filter`].
    Filter(FilterId),
    /// Unknown address, or no path between the hosts.
    NoRoute,
}

/// The fate of a transmitted packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Delivery {
    /// The packet reaches `dst_host` at `at`.
    Arrive {
        /// Arrival time at the destination host.
        at: SimTime,
        /// The sending host.
        src_host: HostId,
        /// The destination host.
        dst_host: HostId,
    },
    /// The packet is lost.
    Dropped {
        /// Why.
        reason: DropReason,
        /// Where (`None` for `NoRoute` and for filtered same-host packets).
        link: Option<LinkId>,
    },
}

/// Packet counts of one link direction.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirectionStats {
    /// Packets that reached this direction.
    pub sent: u64,
    /// Packets that crossed it.
    pub delivered: u64,
    /// Dropped by random loss.
    pub dropped_loss: u64,
    /// Dropped while the link was down.
    pub dropped_link_down: u64,
    /// Dropped by a filter (first hop only).
    pub dropped_filter: u64,
}

/// Packet counts of one link.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// The link.
    pub link: LinkId,
    /// Its first endpoint.
    pub a: HostId,
    /// Its second endpoint.
    pub b: HostId,
    /// Counts from `a` to `b`.
    pub a_to_b: DirectionStats,
    /// Counts from `b` to `a`.
    pub b_to_a: DirectionStats,
}

/// Drops caused by one [`Fault::Filter`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FilterStats {
    /// The filter.
    pub id: FilterId,
    /// Packets it dropped.
    pub dropped: u64,
}

/// Network-wide packet counts, in link order, then filter order (the order
/// they were added).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetworkStats {
    /// One entry per link, by [`LinkId`].
    pub links: Vec<LinkStats>,
    /// One entry per filter fault, in the order added.
    pub filters: Vec<FilterStats>,
    /// Packets with an unknown address or no path.
    pub no_route: u64,
    /// Packets between two addresses of one host.
    pub loopback: u64,
}

#[derive(Clone, Debug)]
struct HostSpec {
    name: String,
    addrs: Vec<IpAddr>,
}

#[derive(Clone, Debug)]
struct LinkSpec {
    a: HostId,
    b: HostId,
    params: LinkParams,
}

/// Collects hosts and links, then builds a [`Network`].
#[derive(Clone, Debug, Default)]
pub struct TopologyBuilder {
    hosts: Vec<HostSpec>,
    links: Vec<LinkSpec>,
}

impl TopologyBuilder {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host owning `addrs`.
    ///
    /// # Panics
    /// If the name or an address is already taken.
    pub fn add_host(&mut self, name: &str, addrs: &[IpAddr]) -> HostId {
        for (i, h) in self.hosts.iter().enumerate() {
            assert!(h.name != name, "duplicate host name {name:?}");
            for a in addrs {
                assert!(
                    !h.addrs.contains(a),
                    "address {a} of host {name:?} already belongs to host {:?} (#{i})",
                    h.name
                );
            }
        }
        let id = HostId(u32::try_from(self.hosts.len()).expect("too many hosts"));
        self.hosts.push(HostSpec {
            name: name.to_owned(),
            addrs: addrs.to_vec(),
        });
        id
    }

    /// Adds a bidirectional link between `a` and `b`. Each direction has its
    /// own queue, FIFO state and RNG streams.
    ///
    /// # Panics
    /// If a host is unknown, `a == b`, or the parameters are invalid.
    pub fn add_link(&mut self, a: HostId, b: HostId, params: LinkParams) -> LinkId {
        let n = self.hosts.len();
        assert!(
            (a.0 as usize) < n && (b.0 as usize) < n,
            "link between unknown hosts {a:?} and {b:?}"
        );
        assert!(a != b, "link from host {a:?} to itself");
        if let Err(e) = params.validate() {
            panic!("link {a:?}-{b:?}: {e}");
        }
        let id = LinkId(u32::try_from(self.links.len()).expect("too many links"));
        self.links.push(LinkSpec { a, b, params });
        id
    }

    /// Computes all routes and creates the per-direction state and RNG
    /// streams.
    pub fn build(self, rng: &RngStreams) -> Network {
        let n = self.hosts.len();
        let (route_ranges, route_hops) = compute_routes(n, &self.links);

        let mut addr_index: Vec<(IpAddr, HostId)> = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            addr_index.extend(h.addrs.iter().map(|&a| (a, HostId(i as u32))));
        }
        addr_index.sort_unstable();

        let links = self
            .links
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let dir = |d: u64| DirectionState {
                    rng_loss: rng.stream("link-loss", 2 * i as u64 + d),
                    rng_jitter: rng.stream("link-jitter", 2 * i as u64 + d),
                    busy_until: SimTime::ZERO,
                    last_arrival: SimTime::ZERO,
                    stats: DirectionStats::default(),
                };
                let mut l = LinkState {
                    a: spec.a,
                    b: spec.b,
                    base: spec.params,
                    changes: Vec::new(),
                    down: Vec::new(),
                    dirs: [dir(0), dir(1)],
                    plain: false,
                    plain_bandwidth: false,
                };
                l.classify();
                l
            })
            .collect();

        let v4: Vec<(u32, HostId)> = addr_index
            .iter()
            .filter_map(|&(a, h)| match a {
                IpAddr::V4(v4) => Some((v4.to_bits(), h)),
                IpAddr::V6(_) => None,
            })
            .collect();
        let v4_direct = V4Direct::build(&v4);
        Network {
            hosts: self.hosts,
            // One or the other: a direct table for a few addresses, or a hash.
            v4_index: if v4_direct.is_none() {
                v4.iter().copied().collect()
            } else {
                Default::default()
            },
            v4_direct,
            addr_index,
            links,
            route_ranges,
            route_hops,
            filters: Vec::new(),
            no_route: 0,
            loopback: 0,
        }
    }
}

/// Path cost for Dijkstra: latency first, then hop count (which breaks ties
/// towards shorter paths and makes predecessors strictly cheaper).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Cost {
    latency_ns: u64,
    hops: u32,
}

impl core::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            latency_ns: self.latency_ns.saturating_add(o.latency_ns),
            hops: self.hops + o.hops,
        }
    }
}

/// All-pairs least-latency routes as `(start, end)` ranges into one hop
/// array, indexed `src * n + dst`. Among equal-cost paths the one whose last
/// links have the smallest ids is chosen, deterministically.
fn compute_routes(n: usize, links: &[LinkSpec]) -> (Vec<(u32, u32)>, Vec<Hop>) {
    let mut graph: UnGraph<(), u32> = UnGraph::with_capacity(n, links.len());
    for _ in 0..n {
        graph.add_node(());
    }
    for (i, l) in links.iter().enumerate() {
        graph.add_edge(
            NodeIndex::new(l.a.0 as usize),
            NodeIndex::new(l.b.0 as usize),
            i as u32,
        );
    }
    let weight = |link: u32| Cost {
        latency_ns: links[link as usize].params.latency.0,
        hops: 1,
    };

    let mut ranges = vec![(0u32, 0u32); n * n];
    let mut hops: Vec<Hop> = Vec::new();
    let mut path: Vec<Hop> = Vec::new();
    let mut dist: Vec<Option<Cost>> = vec![None; n];
    let mut pred: Vec<Option<(u32, usize)>> = vec![None; n]; // (link, previous host)
    for src in 0..n {
        let scores =
            petgraph::algo::dijkstra(&graph, NodeIndex::new(src), None, |e| weight(*e.weight()));
        for (v, d) in dist.iter_mut().enumerate() {
            *d = scores.get(&NodeIndex::new(v)).copied();
        }
        // Predecessor of v: the smallest link id on some shortest path.
        for v in 0..n {
            pred[v] = None;
            let Some(dv) = dist[v] else { continue };
            if v == src {
                continue;
            }
            for e in graph.edges(NodeIndex::new(v)) {
                let u = if e.source().index() == v {
                    e.target().index()
                } else {
                    e.source().index()
                };
                let link = *e.weight();
                if dist[u].is_some_and(|du| du + weight(link) == dv)
                    && pred[v].map_or(true, |(l, _)| link < l)
                {
                    pred[v] = Some((link, u));
                }
            }
            debug_assert!(pred[v].is_some());
        }
        for dst in 0..n {
            if dst == src || dist[dst].is_none() {
                continue;
            }
            path.clear();
            let mut v = dst;
            while v != src {
                let (link, u) = pred[v].expect("reachable host without predecessor");
                let direction = if links[link as usize].a.0 as usize == u {
                    Direction::AToB
                } else {
                    Direction::BToA
                };
                path.push(Hop {
                    link: LinkId(link),
                    direction,
                });
                v = u;
            }
            let start = hops.len() as u32;
            hops.extend(path.iter().rev());
            ranges[src * n + dst] = (start, hops.len() as u32);
        }
    }
    (ranges, hops)
}

#[derive(Clone, Debug)]
struct DirectionState {
    rng_loss: SimRng,
    rng_jitter: SimRng,
    /// The direction transmits until then (bandwidth only).
    busy_until: SimTime,
    /// Latest arrival so far, for FIFO delivery.
    last_arrival: SimTime,
    stats: DirectionStats,
}

#[derive(Clone, Debug)]
struct LinkState {
    a: HostId,
    b: HostId,
    base: LinkParams,
    /// Parameter changes sorted by time (stable: later additions win ties).
    changes: Vec<(SimTime, LinkParams)>,
    /// Down windows `[from, until)`.
    down: Vec<(SimTime, SimTime)>,
    dirs: [DirectionState; 2],
    /// [`LinkState::is_plain`], kept for the per-packet path: no fault,
    /// loss, jitter or bandwidth limit, ever, so a packet takes exactly
    /// `base.latency` (recomputed by [`Network::add_fault`]).
    plain: bool,
    /// Plain but for a bandwidth limit (`base`'s): a packet takes its
    /// serialization, after the packets before it, then `base.latency`.
    plain_bandwidth: bool,
}

impl LinkState {
    fn is_plain(&self) -> bool {
        let p = &self.base;
        self.changes.is_empty()
            && self.down.is_empty()
            && p.loss == Probability::NEVER
            && p.jitter.0 == 0
            && p.bandwidth_bps.is_none()
    }

    fn is_plain_but_bandwidth(&self) -> bool {
        let p = &self.base;
        self.changes.is_empty()
            && self.down.is_empty()
            && p.loss == Probability::NEVER
            && p.jitter.0 == 0
            && p.bandwidth_bps.is_some()
    }

    /// Sets [`LinkState::plain`] and [`LinkState::plain_bandwidth`].
    fn classify(&mut self) {
        self.plain = self.is_plain();
        self.plain_bandwidth = self.is_plain_but_bandwidth();
    }

    #[inline]
    fn params_at(&self, t: SimTime) -> &LinkParams {
        if self.changes.is_empty() {
            return &self.base;
        }
        match self.changes.partition_point(|c| c.0 <= t) {
            0 => &self.base,
            i => &self.changes[i - 1].1,
        }
    }

    #[inline]
    fn is_down(&self, t: SimTime) -> bool {
        self.down
            .iter()
            .any(|&(from, until)| from <= t && t < until)
    }
}

#[derive(Clone, Debug)]
struct ActiveFilter {
    id: FilterId,
    rule: PacketFilter,
    from: SimTime,
    until: SimTime,
    dropped: u64,
}

/// The built network: routes, per-link state and faults.
#[derive(Clone, Debug)]
pub struct Network {
    hosts: Vec<HostSpec>,
    /// Sorted by address for binary search.
    addr_index: Vec<(IpAddr, HostId)>,
    v4_index: rustc_hash::FxHashMap<u32, HostId>,
    /// The IPv4 addresses when there are only a few (every packet looks its
    /// destination up).
    v4_direct: Option<V4Direct>,
    links: Vec<LinkState>,
    route_ranges: Vec<(u32, u32)>,
    route_hops: Vec<Hop>,
    filters: Vec<ActiveFilter>,
    no_route: u64,
    loopback: u64,
}

/// A collision-free direct-mapped table of a few IPv4 addresses: slot
/// `(addr * mul) >> 24`, one multiply and one compare per lookup. The
/// multiplier is the first of a fixed sequence that maps every address to
/// its own slot, so the table is the same on every machine.
#[derive(Clone, Debug)]
struct V4Direct {
    mul: u32,
    /// `(address, host)`; `host == u32::MAX` marks an empty slot.
    slots: Box<[(u32, u32); 256]>,
}

impl V4Direct {
    /// Up to this many addresses (a collision-free multiplier is found
    /// within a few tries); more go to a hash map.
    const MAX: usize = 16;

    fn build(addrs: &[(u32, HostId)]) -> Option<Self> {
        if addrs.len() > Self::MAX {
            return None;
        }
        let mut mul: u32 = 0x9e37_79b1;
        for _ in 0..1000 {
            let mut slots = Box::new([(0u32, u32::MAX); 256]);
            let fits = addrs.iter().all(|&(a, h)| {
                let slot = &mut slots[Self::slot(mul, a)];
                let free = slot.1 == u32::MAX;
                *slot = (a, h.0);
                free
            });
            if fits {
                return Some(V4Direct { mul, slots });
            }
            // The next odd multiplier of a fixed sequence (an LCG step).
            mul = mul.wrapping_mul(0x0019_660d).wrapping_add(0x3c6e_f35f) | 1;
        }
        None
    }

    #[inline(always)]
    fn slot(mul: u32, addr: u32) -> usize {
        (addr.wrapping_mul(mul) >> 24) as usize
    }

    #[inline]
    fn get(&self, addr: u32) -> Option<HostId> {
        let (a, h) = self.slots[Self::slot(self.mul, addr)];
        (a == addr && h != u32::MAX).then_some(HostId(h))
    }
}

impl Network {
    /// The host owning `ip`.
    #[inline]
    pub fn host_of_addr(&self, ip: IpAddr) -> Option<HostId> {
        match ip {
            // IPv4 (every packet does one or two): a direct table, or a hash.
            IpAddr::V4(v4) => match &self.v4_direct {
                Some(table) => table.get(v4.to_bits()),
                None => self.host_of_addr_slow(ip),
            },
            IpAddr::V6(_) => self.host_of_addr_slow(ip),
        }
    }

    /// [`Network::host_of_addr`] for IPv6, or IPv4 beyond the direct table.
    #[inline(never)]
    fn host_of_addr_slow(&self, ip: IpAddr) -> Option<HostId> {
        match ip {
            IpAddr::V4(v4) => self.v4_index.get(&v4.to_bits()).copied(),
            IpAddr::V6(_) => self
                .addr_index
                .binary_search_by(|(a, _)| a.cmp(&ip))
                .ok()
                .map(|i| self.addr_index[i].1),
        }
    }

    /// The host called `name`.
    pub fn host_by_name(&self, name: &str) -> Option<HostId> {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .map(|i| HostId(i as u32))
    }

    /// The name of `host`.
    pub fn host_name(&self, host: HostId) -> &str {
        &self.hosts[host.0 as usize].name
    }

    /// The addresses of `host`.
    pub fn host_addrs(&self, host: HostId) -> &[IpAddr] {
        &self.hosts[host.0 as usize].addrs
    }

    /// Number of hosts.
    pub fn num_hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Number of links.
    pub fn num_links(&self) -> usize {
        self.links.len()
    }

    /// The endpoints `(a, b)` of `link`.
    pub fn link_endpoints(&self, link: LinkId) -> (HostId, HostId) {
        let l = &self.links[link.0 as usize];
        (l.a, l.b)
    }

    /// The parameters of `link` in force at `t`.
    pub fn link_params_at(&self, link: LinkId, t: SimTime) -> LinkParams {
        *self.links[link.0 as usize].params_at(t)
    }

    /// The route from `src` to `dst`: empty if `src == dst` or if there is
    /// no path.
    pub fn route(&self, src: HostId, dst: HostId) -> &[Hop] {
        let (start, end) = self.route_ranges[src.0 as usize * self.hosts.len() + dst.0 as usize];
        &self.route_hops[start as usize..end as usize]
    }

    /// Adds a fault. Meant to be called before the run; a fault added later
    /// only affects packets transmitted afterwards.
    ///
    /// # Panics
    /// On an unknown link, a window with `from > until`, or invalid
    /// parameters.
    pub fn add_fault(&mut self, fault: Fault) {
        let check_link = |link: LinkId| {
            assert!(
                (link.0 as usize) < self.links.len(),
                "fault on unknown link {link:?}"
            );
        };
        match fault {
            Fault::LinkDown { link, from, until } => {
                check_link(link);
                assert!(
                    from <= until,
                    "link-down window ends ({until}) before it starts ({from})"
                );
                let l = &mut self.links[link.0 as usize];
                l.down.push((from, until));
                l.down.sort_unstable();
                l.classify();
            }
            Fault::SetLinkParams { link, at, params } => {
                check_link(link);
                if let Err(e) = params.validate() {
                    panic!("SetLinkParams on link {link:?}: {e}");
                }
                let l = &mut self.links[link.0 as usize];
                let i = l.changes.partition_point(|c| c.0 <= at);
                l.changes.insert(i, (at, params));
                l.classify();
            }
            Fault::Filter {
                id,
                rule,
                from,
                until,
            } => {
                assert!(
                    from <= until,
                    "filter window ends ({until}) before it starts ({from})"
                );
                self.filters.push(ActiveFilter {
                    id,
                    rule,
                    from,
                    until,
                    dropped: 0,
                });
            }
        }
    }

    /// Sends `packet` at `now` from the host owning `packet.src` to the host
    /// owning `packet.dst`, and reports when it arrives or why it is
    /// dropped. See the module docs for the per-hop model.
    pub fn transmit(&mut self, now: SimTime, packet: &Packet) -> Delivery {
        match self.host_of_addr(packet.src.ip()) {
            Some(src) => self.transmit_from(now, src, packet),
            None => {
                self.no_route += 1;
                Delivery::Dropped {
                    reason: DropReason::NoRoute,
                    link: None,
                }
            }
        }
    }

    /// [`Network::transmit`] for a caller that knows the sending host (it
    /// must own `packet.src`): saves an address lookup per packet.
    #[inline]
    pub fn transmit_from(&mut self, now: SimTime, src: HostId, packet: &Packet) -> Delivery {
        debug_assert_eq!(self.host_of_addr(packet.src.ip()), Some(src));
        let Some(dst) = self.host_of_addr(packet.dst.ip()) else {
            return self.transmit_slow(now, src, None, packet);
        };
        // The common case, one plain hop and no filter: what the general
        // path computes for it, without its checks.
        let (start, end) = self.route_ranges[src.0 as usize * self.hosts.len() + dst.0 as usize];
        if end == start + 1 && src != dst && self.filters.is_empty() {
            let hop = self.route_hops[start as usize];
            let link = &mut self.links[hop.link.0 as usize];
            if link.plain {
                let (latency, reorder) = (link.base.latency, link.base.allow_reorder);
                let dir = &mut link.dirs[hop.direction.index()];
                dir.stats.sent += 1;
                dir.stats.delivered += 1;
                let mut arrival = now + latency;
                if !reorder {
                    arrival = arrival.max(dir.last_arrival);
                }
                dir.last_arrival = dir.last_arrival.max(arrival);
                return Delivery::Arrive {
                    at: arrival,
                    src_host: src,
                    dst_host: dst,
                };
            }
            if link.plain_bandwidth {
                return self.transmit_bandwidth_hop(now, hop, src, dst, packet);
            }
        }
        self.transmit_slow(now, src, Some(dst), packet)
    }

    /// One hop over a link that is plain but for its bandwidth: what the
    /// general path computes for it, without its checks (the bandwidth
    /// model cannot be skipped: every packet waits for its serialization).
    #[inline(never)]
    fn transmit_bandwidth_hop(
        &mut self,
        now: SimTime,
        hop: Hop,
        src: HostId,
        dst: HostId,
        packet: &Packet,
    ) -> Delivery {
        let link = &mut self.links[hop.link.0 as usize];
        let (latency, reorder) = (link.base.latency, link.base.allow_reorder);
        let bps = link.base.bandwidth_bps.expect("a bandwidth-limited link");
        let dir = &mut link.dirs[hop.direction.index()];
        dir.stats.sent += 1;
        dir.stats.delivered += 1;
        let start = now.max(dir.busy_until);
        dir.busy_until = start + serialization_delay(packet.wire_len(), bps);
        let mut arrival = dir.busy_until + latency;
        if !reorder {
            arrival = arrival.max(dir.last_arrival);
        }
        dir.last_arrival = dir.last_arrival.max(arrival);
        Delivery::Arrive {
            at: arrival,
            src_host: src,
            dst_host: dst,
        }
    }

    /// [`Network::transmit_from`] in general: loopback, no route, several
    /// hops, faults, loss, jitter, bandwidth and filters.
    #[inline(never)]
    fn transmit_slow(
        &mut self,
        now: SimTime,
        src: HostId,
        dst: Option<HostId>,
        packet: &Packet,
    ) -> Delivery {
        let Some(dst) = dst else {
            self.no_route += 1;
            return Delivery::Dropped {
                reason: DropReason::NoRoute,
                link: None,
            };
        };
        let (start, end) = self.route_ranges[src.0 as usize * self.hosts.len() + dst.0 as usize];
        if src == dst {
            if let Some(id) = self.filter(now, src, dst, packet) {
                return Delivery::Dropped {
                    reason: DropReason::Filter(id),
                    link: None,
                };
            }
            self.loopback += 1;
            return Delivery::Arrive {
                at: now,
                src_host: src,
                dst_host: dst,
            };
        }
        if start == end {
            self.no_route += 1;
            return Delivery::Dropped {
                reason: DropReason::NoRoute,
                link: None,
            };
        }

        let mut t = now;
        for i in start as usize..end as usize {
            let hop = self.route_hops[i];
            let link_state = &mut self.links[hop.link.0 as usize];
            let params = *link_state.params_at(t);
            let is_down = !link_state.down.is_empty() && link_state.is_down(t);
            let dir = &mut link_state.dirs[hop.direction.index()];
            dir.stats.sent += 1;
            // A loss of 0 or a jitter of 0 draws nothing (the common case is
            // then free); otherwise each packet draws exactly once, before
            // any drop decision, so partitions and filters never shift later
            // draws. (A change of loss or jitter between 0 and non-zero does:
            // deterministic, but not common random numbers across scenarios
            // that differ only by such a window.)
            let lost = params.loss != Probability::NEVER && params.loss.sample(&mut dir.rng_loss);
            let jitter_ns = if params.jitter.0 == 0 {
                0
            } else {
                uniform_below(&mut dir.rng_jitter, params.jitter.0.saturating_add(1))
            };

            if is_down {
                dir.stats.dropped_link_down += 1;
                return Delivery::Dropped {
                    reason: DropReason::LinkDown,
                    link: Some(hop.link),
                };
            }
            if i == start as usize && !self.filters.is_empty() {
                if let Some(id) = self.filter(now, src, dst, packet) {
                    self.links[hop.link.0 as usize].dirs[hop.direction.index()]
                        .stats
                        .dropped_filter += 1;
                    return Delivery::Dropped {
                        reason: DropReason::Filter(id),
                        link: Some(hop.link),
                    };
                }
            }
            let dir = &mut self.links[hop.link.0 as usize].dirs[hop.direction.index()];
            let departure = match params.bandwidth_bps {
                None => t,
                Some(bps) => {
                    let start = t.max(dir.busy_until);
                    dir.busy_until = start + serialization_delay(packet.wire_len(), bps);
                    dir.busy_until
                }
            };
            if lost {
                dir.stats.dropped_loss += 1;
                return Delivery::Dropped {
                    reason: DropReason::Loss,
                    link: Some(hop.link),
                };
            }
            let mut arrival = departure + params.latency + SimDuration(jitter_ns);
            if !params.allow_reorder {
                arrival = arrival.max(dir.last_arrival);
            }
            dir.last_arrival = dir.last_arrival.max(arrival);
            dir.stats.delivered += 1;
            t = arrival;
        }
        Delivery::Arrive {
            at: t,
            src_host: src,
            dst_host: dst,
        }
    }

    /// The first active filter matching the packet, counting the drop.
    #[inline]
    fn filter(
        &mut self,
        now: SimTime,
        src: HostId,
        dst: HostId,
        packet: &Packet,
    ) -> Option<FilterId> {
        let f = self
            .filters
            .iter_mut()
            .find(|f| f.from <= now && now < f.until && f.rule.matches(src, dst, packet))?;
        f.dropped += 1;
        Some(f.id)
    }

    /// Packet counts per link direction and per filter, in a stable order.
    pub fn stats(&self) -> NetworkStats {
        NetworkStats {
            links: self
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| LinkStats {
                    link: LinkId(i as u32),
                    a: l.a,
                    b: l.b,
                    a_to_b: l.dirs[0].stats,
                    b_to_a: l.dirs[1].stats,
                })
                .collect(),
            filters: self
                .filters
                .iter()
                .map(|f| FilterStats {
                    id: f.id,
                    dropped: f.dropped,
                })
                .collect(),
            no_route: self.no_route,
            loopback: self.loopback,
        }
    }
}

/// Time to put `wire_len` bytes on a link of `bandwidth_bps`, rounded up to
/// the nanosecond.
#[inline]
pub fn serialization_delay(wire_len: u32, bandwidth_bps: u64) -> SimDuration {
    // `wire_len * 8e9` fits a u64 below 2^31 bytes: one native division
    // (the same quotient) instead of a 128-bit one.
    if wire_len < 1 << 31 {
        let bits = u64::from(wire_len) * 8 * 1_000_000_000;
        return SimDuration(bits.div_ceil(bandwidth_bps));
    }
    let bits = u128::from(wire_len) * 8 * 1_000_000_000;
    let ns = bits.div_ceil(u128::from(bandwidth_bps));
    SimDuration(u64::try_from(ns).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::TcpFlags;
    use std::net::{Ipv4Addr, SocketAddr};

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn pkt(src: u8, dst: u8, flags: TcpFlags, payload_len: u32) -> Packet {
        Packet {
            src: SocketAddr::new(ip(src), 40000),
            dst: SocketAddr::new(ip(dst), 80),
            flags,
            seq: 0,
            ack: 0,
            payload_len,
            fast_open: false,
            window: 65535,
            tsval: 0,
            tsecr: 0,
            tag: 0,
        }
    }

    fn ms(v: u64) -> SimDuration {
        SimDuration::from_millis(v)
    }

    /// Two hosts (10.0.0.1, 10.0.0.2) joined by one link.
    fn pair(params: LinkParams, seed: u64) -> (Network, LinkId) {
        let mut b = TopologyBuilder::new();
        let h1 = b.add_host("client", &[ip(1)]);
        let h2 = b.add_host("server", &[ip(2)]);
        let l = b.add_link(h1, h2, params);
        (b.build(&RngStreams::new(seed)), l)
    }

    fn arrival(d: Delivery) -> SimTime {
        match d {
            Delivery::Arrive { at, .. } => at,
            other => panic!("expected arrival, got {other:?}"),
        }
    }

    /// The plain-link fast path of `transmit_from` gives the same arrivals
    /// and counts as the general per-hop loop: the same link, made
    /// non-plain by a parameter change that never takes effect within the
    /// test, goes through the loop.
    #[test]
    fn plain_link_fast_path_matches_the_general_path() {
        // Without a bandwidth, one that never binds (10 Gbit/s: each packet
        // still waits for its serialization) and one that queues packets
        // (1 Mbit/s: a 140-byte packet takes 1.12 ms).
        for bandwidth in [None, Some(10_000_000_000), Some(1_000_000)] {
            let params = LinkParams {
                bandwidth_bps: bandwidth,
                ..LinkParams::with_latency(ms(5))
            };
            fast_path_matches(params);
        }
    }

    fn fast_path_matches(params: LinkParams) {
        let (mut fast, _) = pair(params, 3);
        let (mut slow, l) = pair(params, 3);
        slow.add_fault(Fault::SetLinkParams {
            link: l,
            at: SimTime::ZERO + SimDuration::from_secs(1_000),
            params,
        });
        assert!(
            (fast.links[0].plain || fast.links[0].plain_bandwidth)
                && !slow.links[0].plain
                && !slow.links[0].plain_bandwidth
        );
        let mut t = SimTime::ZERO;
        for i in 0..200u64 {
            // Irregular send times, both directions.
            t += SimDuration::from_nanos((i * 7_919) % 3_000_001);
            let p = if i % 3 == 0 {
                pkt(2, 1, TcpFlags::ACK, 100)
            } else {
                pkt(1, 2, TcpFlags::SYN, 0)
            };
            assert_eq!(fast.transmit(t, &p), slow.transmit(t, &p), "packet {i}");
        }
        assert_eq!(fast.stats(), slow.stats());
    }

    /// The fast path keeps the per-direction FIFO bound: on a line a-b-c,
    /// the b-c link carries one-hop (b->c, c->b, fast path) and two-hop
    /// (a->c, per-hop loop) packets, whose second hop raises the bound a
    /// later one-hop packet must respect; a latency drop mid-run switches
    /// the link to the loop, which needs the bound kept up to date. Both
    /// `allow_reorder` values, against the same network kept off the fast
    /// path by a parameter change that never takes effect.
    #[test]
    fn fast_path_keeps_the_fifo_bound_of_a_shared_link() {
        for reorder in [false, true] {
            let build = |slow: bool| {
                let mut b = TopologyBuilder::new();
                let a = b.add_host("a", &[ip(1)]);
                let hb = b.add_host("b", &[ip(2)]);
                let c = b.add_host("c", &[ip(3)]);
                let mut p = LinkParams::with_latency(ms(7));
                p.allow_reorder = reorder;
                let ab = b.add_link(a, hb, p);
                let bc = b.add_link(
                    hb,
                    c,
                    LinkParams {
                        latency: ms(3),
                        ..p
                    },
                );
                let mut net = b.build(&RngStreams::new(9));
                if slow {
                    for l in [ab, bc] {
                        let params = net.link_params_at(l, SimTime::ZERO);
                        net.add_fault(Fault::SetLinkParams {
                            link: l,
                            at: SimTime::ZERO + SimDuration::from_secs(1_000_000),
                            params,
                        });
                    }
                }
                (net, bc)
            };
            let (mut fast, bc) = build(false);
            let (mut slow, _) = build(true);
            let mut t = SimTime::ZERO;
            for i in 0..400u64 {
                t += SimDuration::from_nanos((i * 7_919) % 1_000_001);
                if i == 200 {
                    for n in [&mut fast, &mut slow] {
                        let mut p = LinkParams::with_latency(SimDuration::from_micros(10));
                        p.allow_reorder = reorder;
                        n.add_fault(Fault::SetLinkParams {
                            link: bc,
                            at: t,
                            params: p,
                        });
                    }
                }
                let p = match i % 3 {
                    0 => pkt(1, 3, TcpFlags::SYN, 0),
                    1 => pkt(2, 3, TcpFlags::SYN, 0),
                    _ => pkt(3, 2, TcpFlags::ACK, 10),
                };
                assert_eq!(
                    fast.transmit(t, &p),
                    slow.transmit(t, &p),
                    "reorder {reorder} packet {i}"
                );
            }
            assert_eq!(fast.stats(), slow.stats());
        }
    }

    /// Address lookup gives the same answers whether the IPv4 addresses
    /// are few (scanned) or many (hashed), and IPv6 ones are found too.
    #[test]
    fn host_of_addr_with_few_and_many_addresses() {
        for hosts in [3u8, 16, 17, 40] {
            let mut b = TopologyBuilder::new();
            let ids: Vec<HostId> = (1..=hosts)
                .map(|i| {
                    let v6 =
                        IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i.into()));
                    b.add_host(&format!("h{i}"), &[ip(i), v6])
                })
                .collect();
            let net = b.build(&RngStreams::new(1));
            assert_eq!(net.v4_direct.is_none(), usize::from(hosts) > V4Direct::MAX);
            for (i, &id) in (1..=hosts).zip(&ids) {
                assert_eq!(net.host_of_addr(ip(i)), Some(id));
                let v6 = IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i.into()));
                assert_eq!(net.host_of_addr(v6), Some(id));
            }
            assert_eq!(net.host_of_addr(ip(hosts + 1)), None);
            assert_eq!(
                net.host_of_addr(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))),
                None
            );
        }
    }

    /// The direct table finds a collision-free multiplier for address sets
    /// that differ only in high bits, only in low bits, or include 0.0.0.0
    /// and 255.255.255.255, and reports unknown addresses as unknown.
    #[test]
    fn direct_ipv4_table_handles_awkward_address_sets() {
        let sets: [Vec<u32>; 4] = [
            (0..16).map(|i| i << 28).collect(),
            (0..16).map(|i| 0x0a00_0000 | i).collect(),
            (0..16).map(|i| i * 0x0101_0101).collect(),
            vec![0, u32::MAX, 1, 0x8000_0000],
        ];
        for addrs in sets {
            let pairs: Vec<(u32, HostId)> = addrs
                .iter()
                .enumerate()
                .map(|(i, &a)| (a, HostId(i as u32)))
                .collect();
            let table = V4Direct::build(&pairs).expect("a multiplier fits");
            for &(a, h) in &pairs {
                assert_eq!(table.get(a), Some(h), "{a:#x}");
            }
            for probe in [2u32, 0x0a00_0100, 0x7fff_ffff, 0xdead_beef] {
                if !addrs.contains(&probe) {
                    assert_eq!(table.get(probe), None, "{probe:#x}");
                }
            }
        }
        assert!(V4Direct::build(&[(1, HostId(0)); V4Direct::MAX + 1]).is_none());
        // An address listed twice never fits a slot of its own: the network
        // falls back to the hash map.
        assert!(V4Direct::build(&[(5, HostId(0)), (5, HostId(0))]).is_none());
    }

    #[test]
    fn routing_picks_least_latency_path() {
        let mut b = TopologyBuilder::new();
        let a = b.add_host("a", &[ip(1)]);
        let hb = b.add_host("b", &[ip(2)]);
        let c = b.add_host("c", &[ip(3)]);
        let d = b.add_host("d", &[ip(4)]);
        let direct = b.add_link(a, d, LinkParams::with_latency(ms(50)));
        let ab = b.add_link(a, hb, LinkParams::with_latency(ms(5)));
        let bd = b.add_link(d, hb, LinkParams::with_latency(ms(5))); // reversed endpoints
        let _ac = b.add_link(a, c, LinkParams::with_latency(ms(1)));
        let _cd = b.add_link(c, d, LinkParams::with_latency(ms(100)));
        let mut net = b.build(&RngStreams::new(1));
        assert_eq!(
            net.route(a, d),
            &[
                Hop {
                    link: ab,
                    direction: Direction::AToB
                },
                Hop {
                    link: bd,
                    direction: Direction::BToA
                }
            ]
        );
        assert_eq!(
            net.route(d, a),
            &[
                Hop {
                    link: bd,
                    direction: Direction::AToB
                },
                Hop {
                    link: ab,
                    direction: Direction::BToA
                }
            ]
        );
        // c -> d: via a and b (1 + 5 + 5 = 11ms) beats the 100ms direct link.
        assert_eq!(net.route(c, d).len(), 3);
        assert!(net.route(a, a).is_empty());
        assert_eq!(
            arrival(net.transmit(SimTime(0), &pkt(1, 4, TcpFlags::SYN, 0))),
            SimTime(0) + ms(10)
        );
        let stats = net.stats();
        assert_eq!(stats.links[direct.0 as usize].a_to_b.sent, 0);
        assert_eq!(stats.links[ab.0 as usize].a_to_b.delivered, 1);
        assert_eq!(stats.links[bd.0 as usize].b_to_a.delivered, 1);
    }

    #[test]
    fn latency_exact_without_jitter_and_addresses() {
        let (mut net, _) = pair(LinkParams::with_latency(SimDuration::from_micros(250)), 1);
        let now = SimTime(1_000);
        assert_eq!(
            net.transmit(now, &pkt(1, 2, TcpFlags::SYN, 0)),
            Delivery::Arrive {
                at: SimTime(251_000),
                src_host: HostId(0),
                dst_host: HostId(1)
            }
        );
        assert_eq!(net.host_of_addr(ip(2)), Some(HostId(1)));
        assert_eq!(net.host_of_addr(ip(9)), None);
        assert_eq!(
            net.transmit(now, &pkt(1, 9, TcpFlags::SYN, 0)),
            Delivery::Dropped {
                reason: DropReason::NoRoute,
                link: None
            }
        );
        assert_eq!(
            arrival(net.transmit(now, &pkt(2, 2, TcpFlags::SYN, 0))),
            now,
            "same host"
        );
        assert_eq!(net.stats().no_route, 1);
        assert_eq!(net.stats().loopback, 1);
    }

    #[test]
    fn unconnected_hosts_have_no_route() {
        let mut b = TopologyBuilder::new();
        b.add_host("a", &[ip(1)]);
        b.add_host("b", &[ip(2)]);
        let mut net = b.build(&RngStreams::new(1));
        assert_eq!(
            net.transmit(SimTime(0), &pkt(1, 2, TcpFlags::SYN, 0)),
            Delivery::Dropped {
                reason: DropReason::NoRoute,
                link: None
            }
        );
    }

    #[test]
    fn jitter_never_reorders_a_direction_unless_allowed() {
        let params = LinkParams {
            jitter: ms(5),
            ..LinkParams::with_latency(ms(1))
        };
        let (mut net, _) = pair(params, 3);
        let mut last = SimTime::ZERO;
        let mut spread = Vec::new();
        for i in 0..10_000u64 {
            let now = SimTime(i * 1_000); // 1us apart, far below the jitter
            let at = arrival(net.transmit(now, &pkt(1, 2, TcpFlags::ACK, 100)));
            assert!(at >= last, "packet {i} reordered");
            assert!(at >= now + ms(1));
            last = at;
            spread.push(at - now);
        }
        assert!(spread.iter().any(|&d| d > ms(3)), "jitter had no effect");

        let (mut net, _) = pair(
            LinkParams {
                allow_reorder: true,
                ..params
            },
            3,
        );
        let mut reordered = 0;
        let mut last = SimTime::ZERO;
        for i in 0..10_000u64 {
            let at = arrival(net.transmit(SimTime(i * 1_000), &pkt(1, 2, TcpFlags::ACK, 100)));
            assert!(at <= SimTime(i * 1_000) + ms(6), "jitter above bound");
            reordered += usize::from(at < last);
            last = last.max(at);
        }
        assert!(reordered > 100, "{reordered}");
    }

    #[test]
    fn loss_within_binomial_tolerance_and_deterministic() {
        let params = LinkParams {
            loss: Probability::from_ppm(50_000).unwrap(),
            ..LinkParams::with_latency(ms(1))
        };
        let run = |seed| {
            let (mut net, l) = pair(params, seed);
            let outcomes: Vec<bool> = (0..100_000)
                .map(|i| {
                    matches!(
                        net.transmit(SimTime(i), &pkt(1, 2, TcpFlags::ACK, 0)),
                        Delivery::Arrive { .. }
                    )
                })
                .collect();
            let s = net.stats().links[l.0 as usize].a_to_b;
            (outcomes, s)
        };
        let (outcomes, s) = run(9);
        assert_eq!(s.sent, 100_000);
        assert_eq!(s.sent, s.delivered + s.dropped_loss);
        let mean = 100_000.0 * 0.05;
        let sigma = (100_000.0f64 * 0.05 * 0.95).sqrt();
        assert!((s.dropped_loss as f64 - mean).abs() < 5.0 * sigma, "{s:?}");
        assert_eq!(outcomes, run(9).0, "same seed, same losses");
        assert_ne!(outcomes, run(10).0, "different seed, different losses");
    }

    #[test]
    fn partition_window_drops_exactly_inside() {
        let (mut net, l) = pair(LinkParams::with_latency(ms(1)), 1);
        net.add_fault(Fault::LinkDown {
            link: l,
            from: SimTime(100),
            until: SimTime(200),
        });
        for t in 0..300u64 {
            let forward = net.transmit(SimTime(t), &pkt(1, 2, TcpFlags::ACK, 0));
            let backward = net.transmit(SimTime(t), &pkt(2, 1, TcpFlags::ACK, 0));
            let inside = (100..200).contains(&t);
            for d in [forward, backward] {
                if inside {
                    assert_eq!(
                        d,
                        Delivery::Dropped {
                            reason: DropReason::LinkDown,
                            link: Some(l)
                        },
                        "t={t}"
                    );
                } else {
                    assert!(matches!(d, Delivery::Arrive { .. }), "t={t}: {d:?}");
                }
            }
        }
        let s = net.stats().links[0];
        assert_eq!(s.a_to_b.dropped_link_down, 100);
        assert_eq!(s.b_to_a.dropped_link_down, 100);
    }

    #[test]
    fn partition_on_second_hop_uses_hop_time() {
        let mut b = TopologyBuilder::new();
        let h1 = b.add_host("a", &[ip(1)]);
        let h2 = b.add_host("b", &[ip(2)]);
        let h3 = b.add_host("c", &[ip(3)]);
        b.add_link(h1, h2, LinkParams::with_latency(ms(10)));
        let l2 = b.add_link(h2, h3, LinkParams::with_latency(ms(10)));
        let mut net = b.build(&RngStreams::new(1));
        net.add_fault(Fault::LinkDown {
            link: l2,
            from: SimTime(0) + ms(10),
            until: SimTime(0) + ms(20),
        });
        // Sent at 0: reaches the second link at 10ms, inside the window.
        assert_eq!(
            net.transmit(SimTime(0), &pkt(1, 3, TcpFlags::SYN, 0)),
            Delivery::Dropped {
                reason: DropReason::LinkDown,
                link: Some(l2)
            }
        );
        // Sent at 10ms: reaches it at 20ms, after the window.
        assert_eq!(
            arrival(net.transmit(SimTime(0) + ms(10), &pkt(1, 3, TcpFlags::SYN, 0))),
            SimTime(0) + ms(30)
        );
    }

    #[test]
    fn filter_drops_only_pure_acks_to_port() {
        let (mut net, l) = pair(LinkParams::with_latency(ms(1)), 1);
        let rule = PacketFilter {
            src_host: None,
            dst_host: Some(HostId(1)),
            dst_port: Some(80),
            src_port: None,
            match_kind: FilterMatch::PureAck,
        };
        net.add_fault(Fault::Filter {
            id: FilterId(7),
            rule,
            from: SimTime(0),
            until: SimTime(1_000),
        });
        let now = SimTime(10);
        let dropped = Delivery::Dropped {
            reason: DropReason::Filter(FilterId(7)),
            link: Some(l),
        };
        assert_eq!(net.transmit(now, &pkt(1, 2, TcpFlags::ACK, 0)), dropped);
        assert!(
            matches!(
                net.transmit(now, &pkt(1, 2, TcpFlags::ACK, 10)),
                Delivery::Arrive { .. }
            ),
            "data"
        );
        assert!(
            matches!(
                net.transmit(now, &pkt(1, 2, TcpFlags::SYN, 0)),
                Delivery::Arrive { .. }
            ),
            "SYN"
        );
        assert!(
            matches!(
                net.transmit(now, &pkt(1, 2, TcpFlags::ACK | TcpFlags::FIN, 0)),
                Delivery::Arrive { .. }
            ),
            "FIN"
        );
        assert!(
            matches!(
                net.transmit(now, &pkt(2, 1, TcpFlags::ACK, 0)),
                Delivery::Arrive { .. }
            ),
            "other way"
        );
        let mut other_port = pkt(1, 2, TcpFlags::ACK, 0);
        other_port.dst.set_port(81);
        assert!(
            matches!(net.transmit(now, &other_port), Delivery::Arrive { .. }),
            "other port"
        );
        assert!(
            matches!(
                net.transmit(SimTime(1_000), &pkt(1, 2, TcpFlags::ACK, 0)),
                Delivery::Arrive { .. }
            ),
            "after window"
        );
        let stats = net.stats();
        assert_eq!(
            stats.filters,
            vec![FilterStats {
                id: FilterId(7),
                dropped: 1
            }]
        );
        assert_eq!(stats.links[0].a_to_b.dropped_filter, 1);
    }

    #[test]
    fn filter_match_kinds() {
        let cases = [
            (
                TcpFlags::ACK,
                0,
                [true, true, true, false, false, false, false],
            ),
            (
                TcpFlags::ACK | TcpFlags::PSH,
                5,
                [true, false, true, false, false, false, true],
            ),
            (
                TcpFlags::SYN,
                0,
                [true, false, false, true, false, false, false],
            ),
            (
                TcpFlags::SYN | TcpFlags::ACK,
                0,
                [true, false, false, false, true, false, false],
            ),
            (
                TcpFlags::RST | TcpFlags::ACK,
                0,
                [true, false, true, false, false, true, false],
            ),
        ];
        let kinds = [
            FilterMatch::Any,
            FilterMatch::PureAck,
            FilterMatch::AckNoSyn,
            FilterMatch::Syn,
            FilterMatch::SynAck,
            FilterMatch::Rst,
            FilterMatch::Data,
        ];
        for (flags, len, expected) in cases {
            for (kind, want) in kinds.iter().zip(expected) {
                assert_eq!(
                    kind.matches(&pkt(1, 2, flags, len)),
                    want,
                    "{kind:?} on {flags} len {len}"
                );
            }
        }
    }

    #[test]
    fn set_link_params_takes_effect_at_its_time() {
        let (mut net, l) = pair(LinkParams::with_latency(ms(1)), 1);
        net.add_fault(Fault::SetLinkParams {
            link: l,
            at: SimTime(0) + ms(100),
            params: LinkParams::with_latency(ms(7)),
        });
        net.add_fault(Fault::SetLinkParams {
            link: l,
            at: SimTime(0) + ms(200),
            params: LinkParams {
                loss: Probability::ALWAYS,
                ..LinkParams::with_latency(ms(7))
            },
        });
        let t = |v| SimTime(0) + ms(v);
        assert_eq!(
            arrival(net.transmit(SimTime(99_999_999), &pkt(1, 2, TcpFlags::ACK, 0))),
            SimTime(100_999_999)
        );
        assert_eq!(
            arrival(net.transmit(t(100), &pkt(1, 2, TcpFlags::ACK, 0))),
            t(107)
        );
        assert_eq!(
            arrival(net.transmit(t(150), &pkt(2, 1, TcpFlags::ACK, 0))),
            t(157)
        );
        assert_eq!(
            net.transmit(t(200), &pkt(1, 2, TcpFlags::ACK, 0)),
            Delivery::Dropped {
                reason: DropReason::Loss,
                link: Some(l)
            }
        );
        assert_eq!(net.link_params_at(l, t(50)).latency, ms(1));
    }

    #[test]
    fn bandwidth_serialization_delay() {
        // The native-width path gives the 128-bit quotient up to its bound.
        for len in [0u32, 1, 40, 1500, (1 << 31) - 1, 1 << 31, u32::MAX] {
            for bps in [1u64, 7, 1_000_000, 10_000_000_000, u64::MAX] {
                let exact = (u128::from(len) * 8_000_000_000).div_ceil(u128::from(bps));
                let want = SimDuration(u64::try_from(exact).unwrap_or(u64::MAX));
                assert_eq!(serialization_delay(len, bps), want, "{len} bytes at {bps}");
            }
        }
        assert_eq!(serialization_delay(1500, 12_000_000), ms(1));
        assert_eq!(
            serialization_delay(1, 3_000_000_000),
            SimDuration(3),
            "rounded up"
        );
        let params = LinkParams {
            bandwidth_bps: Some(12_000_000),
            ..LinkParams::with_latency(ms(10))
        };
        let (mut net, _) = pair(params, 1);
        let full = pkt(1, 2, TcpFlags::ACK, 1460);
        assert_eq!(full.wire_len(), 1500);
        // Three back-to-back packets queue behind each other.
        assert_eq!(
            arrival(net.transmit(SimTime(0), &full)),
            SimTime(0) + ms(11)
        );
        assert_eq!(
            arrival(net.transmit(SimTime(0), &full)),
            SimTime(0) + ms(12)
        );
        assert_eq!(
            arrival(net.transmit(SimTime(0), &full)),
            SimTime(0) + ms(13)
        );
        // The other direction is independent.
        assert_eq!(
            arrival(net.transmit(SimTime(0), &pkt(2, 1, TcpFlags::ACK, 1460))),
            SimTime(0) + ms(11)
        );
        // After the queue drains, no waiting.
        assert_eq!(
            arrival(net.transmit(SimTime(0) + ms(50), &full)),
            SimTime(0) + ms(61)
        );
    }

    #[test]
    fn draws_do_not_depend_on_faults() {
        // A partition on the link must not shift the loss draws of packets
        // sent after it.
        let params = LinkParams {
            loss: Probability::from_ppm(300_000).unwrap(),
            ..LinkParams::with_latency(ms(1))
        };
        let outcomes = |partition: bool| {
            let (mut net, l) = pair(params, 5);
            if partition {
                net.add_fault(Fault::LinkDown {
                    link: l,
                    from: SimTime(0),
                    until: SimTime(50),
                });
            }
            (0..200u64)
                .map(|t| net.transmit(SimTime(t), &pkt(1, 2, TcpFlags::ACK, 0)))
                .collect::<Vec<_>>()
        };
        assert_eq!(outcomes(false)[50..], outcomes(true)[50..]);
    }

    #[test]
    #[should_panic(expected = "already belongs")]
    fn duplicate_address_panics() {
        let mut b = TopologyBuilder::new();
        b.add_host("a", &[ip(1)]);
        b.add_host("b", &[ip(1)]);
    }
}
