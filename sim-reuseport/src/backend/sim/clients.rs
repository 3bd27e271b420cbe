//! Client populations: their arrival processes, the sockets they open
//! (`sim_tcp::ClientSocket`, §2.6), the 4-tuples in use, and the ledger
//! that attributes a reset connection to the cause of the RST that reset it.

use super::Stack;
use crate::scenario::plan::{ArrivalPlan, ClientIx, ClientPlan, HostIx};
use rustc_hash::FxHashMap;
use sim_core::{
    exponential_ns, uniform_below, FourTuple, Packet, RngStreams, SimDuration, SimRng, SimTime,
    TupleMap,
};
use sim_tcp::{
    time_wait_reply, ClientConfig, ClientOutcome, ClientOutput, ClientSocket, RstCause, Sysctls,
};
use std::net::{IpAddr, SocketAddr};

slotmap::new_key_type! {
    /// A client connection of the run.
    pub(super) struct ClientKey;
}

/// Where the clients' effects go.
pub(super) trait ClientsOut {
    /// Host `src` sends `pkt` now.
    fn transmit(&mut self, src: HostIx, pkt: Packet);
    /// Connection `k`'s TCP timer is due at `at`.
    fn set_timer(&mut self, at: SimTime, k: ClientKey);
    /// Population `g`'s next arrival is at `at`.
    fn next_arrival(&mut self, at: SimTime, g: ClientIx);
}

/// How a client connection ended.
pub(super) struct Outcome {
    /// The outcome.
    pub(super) kind: ClientOutcome,
    /// The cause of the RST that reset or refused it, if it was recorded.
    pub(super) cause: Option<RstCause>,
    /// Its local address.
    pub(super) local: SocketAddr,
    /// When it called `connect()`.
    pub(super) started_at: SimTime,
    /// When its handshake completed.
    pub(super) established_at: Option<SimTime>,
}

/// The cause of the first RST a server sent to each client 4-tuple, until
/// the client's connection on that tuple ends.
#[derive(Default)]
pub(super) struct RstLedger(FxHashMap<FourTuple, RstCause>);

impl RstLedger {
    /// A server sent an RST of `cause` to `client` (its local address, as
    /// the client sees the tuple). The first cause is kept: when several
    /// RSTs are sent for one connection (e.g. §7 B for the final ACK, then
    /// §7 D for the data right behind it), the first to arrive resets it.
    #[inline]
    pub(super) fn record(&mut self, client: FourTuple, cause: RstCause) {
        self.0.entry(client).or_insert(cause);
    }

    /// Removes the cause recorded for `tuple`, without hashing the tuple
    /// when nothing is recorded (the common case: most runs reset nothing).
    #[inline]
    fn take(&mut self, tuple: &FourTuple) -> Option<RstCause> {
        if self.0.is_empty() {
            None
        } else {
            self.0.remove(tuple)
        }
    }
}

/// One client population.
struct Gen {
    host: HostIx,
    server_host: HostIx,
    server_addr: SocketAddr,
    arrival: ArrivalPlan,
    start: SimTime,
    stop: SimTime,
    rng: SimRng,
    cfg: ClientConfig,
    sources: Vec<IpAddr>,
    next_source: usize,
    next_port: Vec<u16>,
    issued: u64,
}

struct Conn {
    sock: ClientSocket,
    host: HostIx,
}

/// The client populations and their open connections.
pub(super) struct Clients {
    gens: Vec<Gen>,
    /// Dense: the live sockets stay contiguous after a reload's peak, where
    /// a plain slot map would keep reusing slots scattered over the peak.
    conns: slotmap::DenseSlotMap<ClientKey, Conn>,
    by_tuple: TupleMap<ClientKey>,
    ledger: RstLedger,
}

/// A socket's outputs, keyed by its connection.
struct Keyed<'o, O> {
    out: &'o mut O,
    key: ClientKey,
    host: HostIx,
    outcome: Option<ClientOutcome>,
}

impl<O: ClientsOut> ClientOutput for Keyed<'_, O> {
    #[inline]
    fn transmit(&mut self, pkt: Packet) {
        self.out.transmit(self.host, pkt);
    }
    #[inline]
    fn set_timer(&mut self, at: SimTime) {
        self.out.set_timer(at, self.key);
    }
    fn outcome(&mut self, outcome: ClientOutcome) {
        self.outcome = Some(outcome);
    }
}

impl Clients {
    /// The plan's populations; population `i` draws from `rng`'s
    /// `("arrivals", i)` stream.
    pub(super) fn new(plan: &[ClientPlan], rng: &RngStreams) -> Self {
        let gens = plan
            .iter()
            .enumerate()
            .map(|(i, c)| Gen {
                host: c.host,
                server_host: c.server_host,
                server_addr: c.server_addr,
                arrival: c.arrival,
                start: c.start,
                stop: c.stop,
                rng: rng.stream("arrivals", i as u64),
                cfg: ClientConfig {
                    request_bytes: c.request_bytes,
                    fast_open: c.fast_open,
                    has_cookie: c.has_cookie,
                },
                next_port: vec![32768; c.sources.len()],
                sources: c.sources.clone(),
                next_source: 0,
                issued: 0,
            })
            .collect();
        Clients {
            gens,
            conns: slotmap::DenseSlotMap::with_key(),
            by_tuple: TupleMap::default(),
            ledger: RstLedger::default(),
        }
    }

    /// Each population's first arrival, if it has any.
    pub(super) fn first_arrivals(&self) -> impl Iterator<Item = (ClientIx, SimTime)> + '_ {
        self.gens.iter().enumerate().filter_map(|(i, g)| {
            (g.start < g.stop || matches!(g.arrival, ArrivalPlan::Burst { .. }))
                .then_some((ClientIx(i as u16), g.start))
        })
    }

    /// The ledger of RST causes, for the servers' outputs.
    pub(super) fn ledger_mut(&mut self) -> &mut RstLedger {
        &mut self.ledger
    }

    /// Open connections.
    pub(super) fn open(&self) -> usize {
        self.conns.len()
    }

    /// Population `g`'s host and its server's host.
    pub(super) fn hosts_of(&self, g: ClientIx) -> (HostIx, HostIx) {
        let gen = &self.gens[g.index()];
        (gen.host, gen.server_host)
    }

    /// Shrinks tables left sparse by a peak.
    pub(super) fn compact(&mut self) {
        self.by_tuple.shrink_after_peak();
        sim_core::shrink_after_peak(&mut self.ledger.0);
    }

    /// Population `g`'s arrival at `now`: schedules the next one, then
    /// connects. `reserved` are the server ports of the population's host
    /// (never used as ephemeral ports), `server` the stack of its server's
    /// host. Returns false if no 4-tuple was free.
    pub(super) fn arrival(
        &mut self,
        now: SimTime,
        g: ClientIx,
        reserved: &[u16],
        server: Option<&Stack>,
        sysctls: &[Sysctls],
        out: &mut impl ClientsOut,
    ) -> bool {
        let gen = &mut self.gens[g.index()];
        // Next arrival first, so the draws of this population do not depend on the connection.
        if let Some(t) = next_arrival(gen, now) {
            if matches!(gen.arrival, ArrivalPlan::Burst { .. }) || t < gen.stop {
                out.next_arrival(t, g);
            }
        }
        self.connect(now, g, reserved, server, sysctls, out)
    }

    fn connect(
        &mut self,
        now: SimTime,
        g: ClientIx,
        reserved: &[u16],
        server: Option<&Stack>,
        sysctls: &[Sysctls],
        out: &mut impl ClientsOut,
    ) -> bool {
        let gen = &mut self.gens[g.index()];
        gen.issued += 1;
        let Some(tuple) = free_tuple(gen, reserved, server, &self.by_tuple) else {
            return false;
        };
        self.ledger.take(&tuple);
        let isn = uniform_below(&mut gen.rng, 1 << 32) as u32;
        let (cfg, host) = (&gen.cfg, gen.host);
        let key = self.conns.insert_with_key(|key| {
            let mut io = Keyed {
                out,
                key,
                host,
                outcome: None,
            };
            let sock = ClientSocket::connect(
                now,
                tuple.local,
                tuple.remote,
                isn,
                cfg,
                &sysctls[host.index()],
                &mut io,
            );
            Conn { sock, host }
        });
        self.by_tuple.insert(tuple, key);
        true
    }

    /// A segment arrives at a client port of `host`. Returns the outcome of
    /// the connection it ended, if any.
    pub(super) fn on_segment(
        &mut self,
        now: SimTime,
        host: HostIx,
        pkt: &Packet,
        sysctls: &[Sysctls],
        out: &mut impl ClientsOut,
    ) -> Option<Outcome> {
        let tuple = FourTuple {
            local: pkt.dst,
            remote: pkt.src,
        };
        if let Some(&k) = self.by_tuple.get(&tuple) {
            let conn = &mut self.conns[k];
            let mut io = Keyed {
                out,
                key: k,
                host: conn.host,
                outcome: None,
            };
            conn.sock
                .on_segment(now, pkt, &sysctls[conn.host.index()], &mut io);
            let o = io.outcome?;
            let cause = self.ledger.take(&tuple);
            let cause = match o {
                ClientOutcome::Reset | ClientOutcome::Refused => cause,
                _ => None,
            };
            return Some(self.finish(k, o, cause));
        }
        if pkt.flags.contains(sim_core::TcpFlags::RST) {
            // A later RST for a connection that is already gone.
            self.ledger.take(&tuple);
        }
        if let Some(reply) = time_wait_reply(pkt) {
            out.transmit(host, reply);
        }
        None
    }

    /// Connection `k`'s timer is due. Returns its outcome if it ended.
    pub(super) fn on_timer(
        &mut self,
        now: SimTime,
        k: ClientKey,
        sysctls: &[Sysctls],
        out: &mut impl ClientsOut,
    ) -> Option<Outcome> {
        let conn = self.conns.get_mut(k)?;
        let mut io = Keyed {
            out,
            key: k,
            host: conn.host,
            outcome: None,
        };
        conn.sock
            .on_timer(now, &sysctls[conn.host.index()], &mut io);
        let o = io.outcome?;
        Some(self.finish(k, o, None))
    }

    fn finish(&mut self, k: ClientKey, kind: ClientOutcome, cause: Option<RstCause>) -> Outcome {
        let conn = self.conns.remove(k).expect("live client");
        let tuple = conn.sock.tuple();
        self.by_tuple.remove(&tuple);
        // Whatever the outcome, a cause recorded for this tuple must not be
        // blamed on a later connection that reuses it.
        self.ledger.take(&tuple);
        Outcome {
            kind,
            cause,
            local: tuple.local,
            started_at: conn.sock.started_at(),
            established_at: conn.sock.established_at(),
        }
    }
}

/// When population `gen`'s next connection after the one at `now` is due.
fn next_arrival(gen: &mut Gen, now: SimTime) -> Option<SimTime> {
    match &gen.arrival {
        ArrivalPlan::Constant { rate } => {
            Some(now + SimDuration::from_nanos((1_000_000_000 / rate).max(1)))
        }
        ArrivalPlan::Poisson { rate } => Some(
            now + SimDuration::from_nanos(
                exponential_ns(&mut gen.rng, (1_000_000_000 / rate).max(1)).max(1),
            ),
        ),
        ArrivalPlan::Burst { count, spacing } => (gen.issued + 1 < *count).then(|| now + *spacing),
        ArrivalPlan::Ramp { from_rate, to_rate } => {
            let span = gen.stop.saturating_sub(gen.start).as_nanos().max(1);
            let pos = now.saturating_sub(gen.start).as_nanos();
            let rate = if to_rate >= from_rate {
                from_rate + ((to_rate - from_rate) as u128 * pos as u128 / span as u128) as u64
            } else {
                from_rate - ((from_rate - to_rate) as u128 * pos as u128 / span as u128) as u64
            };
            Some(now + SimDuration::from_nanos(1_000_000_000 / rate.max(1)))
        }
    }
}

/// The next free 4-tuple of `gen`: ephemeral ports 32768..=60999 per
/// source address in turn, skipping `reserved` ports and 4-tuples in use.
fn free_tuple(
    gen: &mut Gen,
    reserved: &[u16],
    server: Option<&Stack>,
    in_use: &TupleMap<ClientKey>,
) -> Option<FourTuple> {
    for _ in 0..gen.sources.len() * 4 {
        let si = gen.next_source;
        gen.next_source = (gen.next_source + 1) % gen.sources.len();
        let port = gen.next_port[si];
        gen.next_port[si] = if port >= 60999 { 32768 } else { port + 1 };
        let t = FourTuple {
            local: SocketAddr::new(gen.sources[si], port),
            remote: gen.server_addr,
        };
        let reserved = reserved.binary_search(&port).is_ok();
        // Modelling choice: skip a 4-tuple the server still holds a
        // request or child for. The model has no window/PAWS check
        // (§5.4 step 3), so a reused tuple would meet its old request as
        // an in-window SYN and be reset, which a real kernel would not do.
        let server_holds = server.is_some_and(|s| s.holds(&t.reversed()));
        if !reserved && !server_holds && !in_use.contains_key(&t) {
            return Some(t);
        }
    }
    None
}
