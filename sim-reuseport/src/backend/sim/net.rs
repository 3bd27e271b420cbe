//! The network: the `sim-core` topology with its links and faults, the
//! packets in flight, and the network's counters for the report.

use crate::report::NetworkSummary;
use crate::scenario::plan::{HostIx, Plan};
use sim_core::{
    Delivery, DropReason, HostId, LinkId, Network, Packet, RngStreams, SimTime, TopologyBuilder,
};

/// The simulator's `HostId` of a plan's host.
#[inline]
pub(super) fn host_id(h: HostIx) -> HostId {
    HostId(u32::from(h.0))
}

/// The plan's host of a simulator `HostId`.
#[inline]
pub(super) fn host_ix(h: HostId) -> HostIx {
    HostIx(h.0 as u16)
}

/// What became of a packet handed to [`Net::send`].
pub(super) enum Sent {
    /// It reaches `dst` at `at`; [`Net::take`] gives it back by `slot`.
    Arrive {
        /// Arrival time.
        at: SimTime,
        /// The sending host.
        src: HostId,
        /// The receiving host.
        dst: HostId,
        /// Where the packet waits.
        slot: u32,
    },
    /// The network dropped it, for this reason (a trace word).
    Dropped(&'static str),
}

/// The network and the packets in flight.
pub(super) struct Net {
    network: Network,
    /// Packets in flight with their destination, so that queue entries stay small.
    packets: Vec<(Packet, HostId)>,
    /// Free slots of `packets`, reused last in first out: the slot freed
    /// last was just read and is still in cache.
    free: Vec<u32>,
    summary: NetworkSummary,
}

impl Net {
    /// The plan's hosts, links and faults (link loss and jitter draw from
    /// `rng`'s `"link-loss"` and `"link-jitter"` streams).
    pub(super) fn new(plan: &Plan, rng: &RngStreams) -> Self {
        let mut topo = TopologyBuilder::new();
        for h in &plan.hosts {
            topo.add_host(&h.name, &h.addresses);
        }
        for l in &plan.links {
            topo.add_link(host_id(l.a), host_id(l.b), l.params);
        }
        let mut network = topo.build(rng);
        for (i, f) in plan.faults.iter().enumerate() {
            let fault = f.to_fault(i, |l, at| network.link_params_at(LinkId(l.0), at));
            network.add_fault(fault);
        }
        Net {
            network,
            packets: Vec::new(),
            free: Vec::new(),
            summary: NetworkSummary::default(),
        }
    }

    /// Sends `pkt` from `src` at `now`: it waits in a slot until it arrives,
    /// or it is dropped (and counted).
    #[inline]
    pub(super) fn send(&mut self, now: SimTime, src: HostId, pkt: &Packet) -> Sent {
        self.summary.sent += 1;
        match self.network.transmit_from(now, src, pkt) {
            Delivery::Arrive {
                at,
                src_host,
                dst_host,
            } => Sent::Arrive {
                at,
                src: src_host,
                dst: dst_host,
                slot: self.park(*pkt, dst_host),
            },
            Delivery::Dropped { reason, .. } => Sent::Dropped(match reason {
                DropReason::Loss => {
                    self.summary.lost += 1;
                    "loss"
                }
                DropReason::LinkDown => {
                    self.summary.link_down += 1;
                    "link_down"
                }
                DropReason::Filter(_) => {
                    self.summary.filtered += 1;
                    "filter"
                }
                DropReason::NoRoute => "no_route",
            }),
        }
    }

    /// The packet waiting in `slot`.
    #[inline]
    pub(super) fn packet(&self, slot: u32) -> &Packet {
        &self.packets[slot as usize].0
    }

    /// Takes the packet of `slot` as it arrives, with its host.
    #[inline]
    pub(super) fn take(&mut self, slot: u32) -> (Packet, HostId) {
        self.free.push(slot);
        self.packets[slot as usize]
    }

    /// Packets sent and dropped so far.
    pub(super) fn summary(&self) -> NetworkSummary {
        self.summary.clone()
    }

    fn park(&mut self, pkt: Packet, dst: HostId) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.packets[i as usize] = (pkt, dst);
                i
            }
            None => {
                self.packets.push((pkt, dst));
                (self.packets.len() - 1) as u32
            }
        }
    }
}
