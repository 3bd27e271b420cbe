//! Client populations: their arrival processes, the sockets they open
//! (`sim_tcp::ClientSocket`, §2.6) and the 4-tuples in use. A connection's
//! outcome is reported when it ends for the application; its socket may
//! live on (an orphan after a give-up, §2.6) until the kernel lets go of it.
//! The cause of an RST that resets a connection travels in the RST itself
//! (`Packet::tag`, set by the server stack).

use crate::scenario::plan::{ArrivalPlan, ClientIx, ClientPlan, HostIx};
use sim_core::{
    exponential_ns, uniform_below, FourTuple, Packet, RngStreams, SimDuration, SimRng, SimTime,
    TupleMap,
};
use sim_tcp::{
    closed_port_reply, ClientConfig, ClientEnv, ClientOutcome, ClientOutput, ClientRstCause,
    ClientSocket, RstCause, TwKey, TwVerdict,
};
use std::net::{IpAddr, SocketAddr};

slotmap::new_key_type! {
    /// A client connection of the run.
    pub(super) struct ClientKey;
}

/// What the clients need of their hosts: the ports a host's servers use
/// (never ephemeral ports), whether a server host still holds a 4-tuple,
/// and each host's namespace state for its client sockets.
pub(super) trait ClientHosts {
    /// Sorted server ports of host `h`.
    fn server_ports(&self, h: HostIx) -> &[u16];
    /// Whether server host `sh` holds a request or child for `tuple` (its view).
    fn server_holds(&self, sh: HostIx, tuple: &FourTuple) -> bool;
    /// Host `h`'s sysctls, timers, metrics cache, client counters and
    /// client TIME_WAIT sockets.
    fn client_env(&mut self, h: HostIx) -> ClientEnv<'_>;
}

/// Where the clients' effects go.
pub(super) trait ClientsOut {
    /// Host `src` sends `pkt` now; `rst` tags an RST the client host sends.
    fn transmit(&mut self, src: HostIx, pkt: Packet, rst: Option<ClientRstCause>);
    /// Connection `k`'s TCP timer is due at `at`.
    fn set_timer(&mut self, at: SimTime, k: ClientKey);
    /// Population `g`'s next arrival is at `at`.
    fn next_arrival(&mut self, at: SimTime, g: ClientIx);
    /// Host `h`'s client TIME_WAIT sockets are due at `at`.
    fn time_wait_due(&mut self, at: SimTime, h: HostIx);
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
    /// Its outcome was reported (it may linger as an orphan).
    reported: bool,
}

/// The client populations and their open connections.
pub(super) struct Clients {
    gens: Vec<Gen>,
    /// Dense: the live sockets stay contiguous after a reload's peak, where
    /// a plain slot map would keep reusing slots scattered over the peak.
    conns: slotmap::DenseSlotMap<ClientKey, Conn>,
    by_tuple: TupleMap<ClientKey>,
    /// Sockets whose outcome was reported but that are still open (orphans).
    orphans: usize,
    /// Client TIME_WAIT sockets by 4-tuple (in their host's table).
    time_wait: TupleMap<TwKey>,
}

/// A socket's outputs, keyed by its connection.
struct Keyed<'o, O> {
    out: &'o mut O,
    key: ClientKey,
    host: HostIx,
    outcome: Option<ClientOutcome>,
    /// The socket entered TIME_WAIT (its key, if the table had room).
    time_wait: Option<Option<TwKey>>,
}

impl<O: ClientsOut> ClientOutput for Keyed<'_, O> {
    #[inline]
    fn transmit(&mut self, pkt: Packet, rst: Option<ClientRstCause>) {
        self.out.transmit(self.host, pkt, rst);
    }
    #[inline]
    fn set_timer(&mut self, at: SimTime) {
        self.out.set_timer(at, self.key);
    }
    fn outcome(&mut self, outcome: ClientOutcome) {
        self.outcome = Some(outcome);
    }
    fn time_wait(&mut self, k: Option<TwKey>, arm: Option<SimTime>) {
        self.time_wait = Some(k);
        if let Some(at) = arm {
            self.out.time_wait_due(at, self.host);
        }
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
                    connect_timeout: c.connect_timeout,
                    request_timeout: c.request_timeout,
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
            orphans: 0,
            time_wait: TupleMap::default(),
        }
    }

    /// Each population's first arrival, if it has any.
    pub(super) fn first_arrivals(&self) -> impl Iterator<Item = (ClientIx, SimTime)> + '_ {
        self.gens.iter().enumerate().filter_map(|(i, g)| {
            (g.start < g.stop || matches!(g.arrival, ArrivalPlan::Burst { .. }))
                .then_some((ClientIx(i as u16), g.start))
        })
    }

    /// Connections without an outcome yet (in flight).
    pub(super) fn open(&self) -> usize {
        self.conns.len() - self.orphans
    }

    /// Shrinks tables left sparse by a peak.
    pub(super) fn compact(&mut self) {
        self.by_tuple.shrink_after_peak();
    }

    /// Population `g`'s arrival at `now`: schedules the next one, then
    /// connects. Returns false if no 4-tuple was free.
    pub(super) fn arrival(
        &mut self,
        now: SimTime,
        g: ClientIx,
        hosts: &mut impl ClientHosts,
        out: &mut impl ClientsOut,
    ) -> bool {
        let gen = &mut self.gens[g.index()];
        // Next arrival first, so the draws of this population do not depend on the connection.
        if let Some(t) = next_arrival(gen, now) {
            if matches!(gen.arrival, ArrivalPlan::Burst { .. }) || t < gen.stop {
                out.next_arrival(t, g);
            }
        }
        self.connect(now, g, hosts, out)
    }

    fn connect(
        &mut self,
        now: SimTime,
        g: ClientIx,
        hosts: &mut impl ClientHosts,
        out: &mut impl ClientsOut,
    ) -> bool {
        let gen = &mut self.gens[g.index()];
        gen.issued += 1;
        let Some(tuple) = free_tuple(now, gen, hosts, &self.by_tuple, &mut self.time_wait) else {
            return false;
        };
        let isn = uniform_below(&mut gen.rng, 1 << 32) as u32;
        let (cfg, host) = (&gen.cfg, gen.host);
        let key = self.conns.insert_with_key(|key| {
            let mut io = Keyed {
                out,
                key,
                host,
                outcome: None,
                time_wait: None,
            };
            let sock = ClientSocket::connect(
                now,
                tuple.local,
                tuple.remote,
                isn,
                cfg,
                &mut hosts.client_env(host),
                &mut io,
            );
            Conn {
                sock,
                host,
                reported: false,
            }
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
        hosts: &mut impl ClientHosts,
        out: &mut impl ClientsOut,
    ) -> Option<Outcome> {
        let tuple = FourTuple {
            local: pkt.dst,
            remote: pkt.src,
        };
        let Some(&k) = self.by_tuple.get(&tuple) else {
            if let Some(&tw) = self.time_wait.get(&tuple) {
                self.time_wait_segment(now, host, tw, pkt, hosts, out);
                return None;
            }
            // No socket: anything but an RST gets an RST.
            let counters = hosts.client_env(host).counters;
            if let Some((reply, cause)) = closed_port_reply(pkt, counters) {
                out.transmit(host, reply, cause);
            }
            return None;
        };
        let conn = &mut self.conns[k];
        let mut io = Keyed {
            out,
            key: k,
            host: conn.host,
            outcome: None,
            time_wait: None,
        };
        conn.sock
            .on_segment(now, pkt, &mut hosts.client_env(conn.host), &mut io);
        // An RST names its cause in its tag (set by the server stack).
        let cause = match io.outcome {
            Some(ClientOutcome::Reset | ClientOutcome::Refused) => RstCause::from_tag(pkt.tag),
            _ => None,
        };
        let tw = io.time_wait;
        self.settle(k, io.outcome, cause, tw)
    }

    /// A segment for a client TIME_WAIT socket (`tcp_timewait_state_process`).
    fn time_wait_segment(
        &mut self,
        now: SimTime,
        host: HostIx,
        tw: TwKey,
        pkt: &Packet,
        hosts: &mut impl ClientHosts,
        out: &mut impl ClientsOut,
    ) {
        let env = hosts.client_env(host);
        let (verdict, arm) = env
            .timewait
            .state_process(now, tw, pkt, &env.timers, env.counters);
        if let Some(at) = arm {
            out.time_wait_due(at, host);
        }
        match verdict {
            TwVerdict::Ack(ack) => out.transmit(host, ack, None),
            // A server never sends a bare SYN: treat it as consumed.
            TwVerdict::Syn { .. } | TwVerdict::Consumed => {}
            TwVerdict::Killed => {
                self.time_wait.remove(&pkt.tuple_at_receiver());
            }
        }
    }

    /// Host `h`'s client TIME_WAIT sockets due at `now` are freed.
    pub(super) fn expire_time_wait(
        &mut self,
        now: SimTime,
        h: HostIx,
        hosts: &mut super::hosts::Hosts,
        out: &mut impl ClientsOut,
    ) {
        let map = &mut self.time_wait;
        if let Some(at) = hosts.expire_client_tw(h, now, |t| {
            map.remove(t);
        }) {
            out.time_wait_due(at, h);
        }
    }

    /// Connection `k`'s timer is due. Returns its outcome if it ended.
    pub(super) fn on_timer(
        &mut self,
        now: SimTime,
        k: ClientKey,
        hosts: &mut impl ClientHosts,
        out: &mut impl ClientsOut,
    ) -> Option<Outcome> {
        let conn = self.conns.get_mut(k)?;
        let mut io = Keyed {
            out,
            key: k,
            host: conn.host,
            outcome: None,
            time_wait: None,
        };
        conn.sock
            .on_timer(now, &mut hosts.client_env(conn.host), &mut io);
        let tw = io.time_wait;
        self.settle(k, io.outcome, None, tw)
    }

    /// After a call into socket `k`: reports its outcome if it reached one,
    /// and forgets the socket once it is closed.
    fn settle(
        &mut self,
        k: ClientKey,
        outcome: Option<ClientOutcome>,
        cause: Option<RstCause>,
        time_wait: Option<Option<TwKey>>,
    ) -> Option<Outcome> {
        let conn = &mut self.conns[k];
        let report = outcome.map(|kind| {
            debug_assert!(!conn.reported, "one outcome per connection");
            conn.reported = true;
            Outcome {
                kind,
                cause,
                local: conn.sock.tuple().local,
                started_at: conn.sock.started_at(),
                established_at: conn.sock.established_at(),
            }
        });
        if conn.sock.is_closed() {
            let conn = self.conns.remove(k).expect("live client");
            debug_assert!(conn.reported, "a socket closes after its outcome");
            if report.is_none() && conn.reported {
                // An orphan reported earlier is gone now.
                self.orphans -= 1;
            }
            self.by_tuple.remove(&conn.sock.tuple());
            if let Some(Some(tw)) = time_wait {
                self.time_wait.insert(conn.sock.tuple(), tw);
            }
        } else if report.is_some() {
            self.orphans += 1;
        }
        report
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
/// source address in turn, skipping `reserved` ports, 4-tuples in use and
/// the host's TIME_WAIT 4-tuples unless `tcp_tw_reuse` lets `connect()`
/// take one over (`__inet_hash_connect` → `tcp_twsk_unique`).
fn free_tuple(
    now: SimTime,
    gen: &mut Gen,
    hosts: &mut impl ClientHosts,
    in_use: &TupleMap<ClientKey>,
    time_wait: &mut TupleMap<TwKey>,
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
        let reserved = hosts.server_ports(gen.host).binary_search(&port).is_ok();
        // Modelling choice: skip a 4-tuple the server still holds a
        // request or child for. The model has no window/PAWS check
        // (§5.4 step 3), so a reused tuple would meet its old request as
        // an in-window SYN and be reset, which a real kernel would not do.
        let server_holds = hosts.server_holds(gen.server_host, &t.reversed());
        if reserved || server_holds || in_use.contains_key(&t) {
            continue;
        }
        if let Some(&tw) = time_wait.get(&t) {
            let env = hosts.client_env(gen.host);
            if !env.timewait.try_reuse(now, tw, env.sysctls, env.counters) {
                continue;
            }
            time_wait.remove(&t);
        }
        return Some(t);
    }
    None
}
