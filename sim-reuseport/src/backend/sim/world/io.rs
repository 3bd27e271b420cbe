//! The world's adapters: the output traits of the stack (`ServerOutput`),
//! the workers ([`WorkerOut`]) and the clients ([`ClientsOut`]),
//! implemented over disjoint borrows of the schedule, the network, the
//! taps, the stats and the RST ledger. They turn each part's timers into
//! [`Ev`]s on the right lane, and packets into arrivals.

use super::Ev;
use crate::backend::sim::clients::{ClientHosts, ClientKey, ClientsOut};
use crate::backend::sim::hosts::Hosts;
use crate::backend::sim::net::{host_id, Net, Sent};
use crate::backend::sim::sched::Sched;
use crate::backend::sim::stats::Stats;
use crate::backend::sim::tap::Tap;
use crate::backend::sim::workers::{Timer, WorkerOut};
use crate::backend::Fate;
use crate::scenario::plan::{ClientIx, HostIx, WorkerIx};
use sim_core::{FourTuple, Packet, SimTime};
use sim_tcp::{ClientEnv, ClientRstCause, RstCause, ServerEvent, ServerOutput, ServerTimer};

/// Sends packets through the network and schedules their arrival.
pub(super) struct Wire<'s, 'a> {
    pub(super) now: SimTime,
    pub(super) sched: &'s mut Sched<Ev>,
    pub(super) net: &'s mut Net,
    pub(super) tap: &'s mut Tap<'a>,
}

impl Wire<'_, '_> {
    /// Host `src` sends `pkt` now.
    #[inline]
    fn send(&mut self, src: HostIx, pkt: Packet) {
        match self.net.send(self.now, host_id(src), &pkt) {
            Sent::Arrive { at, src, dst, slot } => {
                self.tap.capture(self.now, &pkt, Fate::Delivered);
                self.tap.trace_packet(self.now, "send", &pkt, || None);
                self.sched.schedule_path(at, src, dst, Ev::Deliver(slot));
            }
            Sent::Dropped(why) => {
                self.tap.capture(self.now, &pkt, Fate::Lost(why));
                self.tap
                    .trace_packet(self.now, "net_drop", &pkt, || Some(why.to_string()));
            }
        }
    }
}

/// A server host's outputs during one call into its stack (or into a
/// worker that calls its stack).
pub(super) struct HostIo<'s, 'a> {
    pub(super) wire: Wire<'s, 'a>,
    pub(super) host: HostIx,
    pub(super) stats: &'s mut Stats,
    /// The stack's events, handled by the world after the call.
    pub(super) events: &'s mut Vec<ServerEvent>,
}

impl ServerOutput for HostIo<'_, '_> {
    #[inline]
    fn transmit(&mut self, pkt: Packet, rst: Option<RstCause>) {
        if let Some(cause) = rst {
            // The RST carries its cause (`Packet::tag`, set by the stack), so
            // the connection it resets, if any, is attributed to it.
            self.stats.rst_sent(cause);
            self.wire.tap.trace_packet(self.wire.now, "rst", &pkt, || {
                Some(format!(
                    "{} (§7 {}, {})",
                    cause.name(),
                    cause.spec_id(),
                    cause.spec_rule()
                ))
            });
        }
        self.wire.send(self.host, pkt);
    }

    #[inline]
    fn set_timer(&mut self, at: SimTime, timer: ServerTimer) {
        let now = self.wire.now;
        self.wire
            .sched
            .schedule_tcp_timer(now, at, Ev::ServerTimer(self.host, timer));
    }

    #[inline]
    fn notify(&mut self, ev: ServerEvent) {
        self.events.push(ev);
    }
}

impl WorkerOut for HostIo<'_, '_> {
    #[inline]
    fn arm(&mut self, at: SimTime, t: Timer) {
        let ev = match t {
            Timer::AcceptTick(w) => Ev::AcceptTick(w),
            Timer::ServiceDone(h, c) => Ev::ServiceDone(h, c),
        };
        let now = self.wire.now;
        self.wire.sched.schedule_timer(now, at, ev);
    }

    fn arm_at(&mut self, at: SimTime, t: Timer) {
        let ev = match t {
            Timer::AcceptTick(w) => Ev::AcceptTick(w),
            Timer::ServiceDone(h, c) => Ev::ServiceDone(h, c),
        };
        self.wire.sched.schedule(at, ev);
    }

    fn wake(&mut self, at: SimTime, w: WorkerIx) {
        self.wire.sched.schedule(at, Ev::AcceptTick(w));
    }
}

/// The clients' outputs during one call into a client population or socket.
pub(super) struct ClientIo<'s, 'a> {
    pub(super) wire: Wire<'s, 'a>,
    pub(super) stats: &'s mut Stats,
}

impl ClientsOut for ClientIo<'_, '_> {
    #[inline]
    fn transmit(&mut self, src: HostIx, pkt: Packet, rst: Option<ClientRstCause>) {
        if let Some(cause) = rst {
            self.stats.client_rst(cause);
            self.wire.tap.trace_packet(self.wire.now, "rst", &pkt, || {
                Some(format!("{} (client host, {})", cause.name(), cause.rule()))
            });
        }
        self.wire.send(src, pkt);
    }

    #[inline]
    fn set_timer(&mut self, at: SimTime, k: ClientKey) {
        let now = self.wire.now;
        self.wire
            .sched
            .schedule_tcp_timer(now, at, Ev::ClientTimer(k));
    }

    #[inline]
    fn next_arrival(&mut self, at: SimTime, g: ClientIx) {
        let now = self.wire.now;
        self.wire.sched.schedule_timer(now, at, Ev::Arrival(g));
    }

    fn time_wait_due(&mut self, at: SimTime, h: HostIx) {
        let now = self.wire.now;
        self.wire
            .sched
            .schedule_timer(now, at, Ev::ClientTimeWait(h));
    }
}

impl ClientHosts for Hosts {
    #[inline]
    fn server_ports(&self, h: HostIx) -> &[u16] {
        Hosts::server_ports(self, h)
    }

    #[inline]
    fn server_holds(&self, sh: HostIx, tuple: &FourTuple) -> bool {
        self.stack(sh).is_some_and(|s| s.holds(tuple))
    }

    #[inline]
    fn client_env(&mut self, h: HostIx) -> ClientEnv<'_> {
        Hosts::client_env(self, h)
    }
}
