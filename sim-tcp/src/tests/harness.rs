//! Test harness: recording outputs, a time-ordered timer driver that honours
//! the lazy [`sim_core::Timer`] contract, a minimal single-group
//! [`ReuseportHooks`] mock, and packet builders.

use crate::{
    reciprocal_scale, ChildKey, ClientConfig, ClientEnv, ClientOutcome, ClientOutput,
    ClientRstCause, ClientSocket, Counters, FlowHasher, Listener, ListenerId, ListenerOptions,
    MigrateFailure, MigrateOutcome, MigratingSock, ReuseportHooks, RstCause, Selection,
    ServerEvent, ServerOutput, ServerStack, ServerTimer, Sysctls, TcpMetrics, TimeWaitTable, TwKey,
    TCP_SYNCOOKIE_VALID,
};
use sim_core::{FourTuple, Packet, SimTime, TcpFlags, TimerModel};
use std::collections::VecDeque;
use std::net::SocketAddr;

// ---------------------------------------------------------------- time

/// `n` milliseconds after the start.
pub(super) const fn ms(n: u64) -> SimTime {
    SimTime(n * 1_000_000)
}

/// `n` seconds after the start.
pub(super) const fn secs(n: u64) -> SimTime {
    SimTime(n * 1_000_000_000)
}

// ---------------------------------------------------------------- flags

pub(super) const SYN: TcpFlags = TcpFlags::SYN;
pub(super) const ACK: TcpFlags = TcpFlags::ACK;
pub(super) const RST: TcpFlags = TcpFlags::RST;
pub(super) const FIN: TcpFlags = TcpFlags::FIN;
pub(super) const PSH: TcpFlags = TcpFlags::PSH;
pub(super) const SYNACK: TcpFlags = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0);
pub(super) const RSTACK: TcpFlags = TcpFlags(TcpFlags::RST.0 | TcpFlags::ACK.0);

// ---------------------------------------------------------------- addresses and packets

/// The server's listening address (IPv4).
pub(super) fn server_addr() -> SocketAddr {
    "10.0.0.1:80".parse().unwrap()
}

/// A client address with the given port.
pub(super) fn client_addr(port: u16) -> SocketAddr {
    SocketAddr::new("10.0.1.1".parse().unwrap(), port)
}

/// The client's ISN for a port (fixed, so scripts can compute sequence numbers).
pub(super) fn cisn(port: u16) -> u32 {
    u32::from(port) * 1000
}

/// A client → server segment of the IPv4 flow of `port`.
pub(super) fn seg(port: u16, flags: TcpFlags, seq: u32, ack: u32, len: u32) -> Packet {
    seg_between(client_addr(port), server_addr(), flags, seq, ack, len)
}

pub(super) fn seg_between(
    src: SocketAddr,
    dst: SocketAddr,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    len: u32,
) -> Packet {
    Packet {
        src,
        dst,
        flags,
        seq,
        ack,
        payload_len: len,
        fast_open: false,
        window: 65_535,
        tsval: 0,
        tsecr: 0,
        tag: 0,
    }
}

/// The client's SYN (original ISN).
pub(super) fn syn(port: u16) -> Packet {
    seg(port, SYN, cisn(port), 0, 0)
}

/// The final ACK of the handshake, given the server's ISN.
pub(super) fn final_ack(port: u16, server_isn: u32) -> Packet {
    seg(
        port,
        ACK,
        cisn(port).wrapping_add(1),
        server_isn.wrapping_add(1),
        0,
    )
}

// ---------------------------------------------------------------- mock hooks

/// A single reuseport group: a live section with swap-remove, a closed
/// section, and optional scripted outcomes. Records every call.
#[derive(Default)]
pub(super) struct MockHooks {
    pub live: Vec<ListenerId>,
    pub closed: Vec<ListenerId>,
    /// Treat every closing listener as migration-capable (a `SelectOrMigrate`
    /// policy), whatever `tcp_migrate_req` says.
    pub policy_capable: bool,
    /// If set, every selection returns this.
    pub select_override: Option<Selection>,
    /// Outcomes returned by `migrate_target`, first to last, before the
    /// hash fallback.
    pub scripted: VecDeque<MigrateOutcome>,
    pub overflow_at: Option<SimTime>,
    /// `(id, resurrect)` of every `on_listen`.
    pub listens: Vec<(ListenerId, bool)>,
    pub destroyed: Vec<ListenerId>,
    /// `(closed listener, migrating socket, migrate_req)` of every `migrate_target`.
    pub migrations: Vec<(ListenerId, MigratingSock, bool)>,
}

impl MockHooks {
    fn by_hash(&self, hash: u32) -> ListenerId {
        self.live[reciprocal_scale(hash, self.live.len() as u32) as usize]
    }
}

impl ReuseportHooks for MockHooks {
    fn on_listen(&mut self, _: &[Listener], id: ListenerId, resurrect: bool) {
        self.closed.retain(|&x| x != id);
        self.live.push(id);
        self.listens.push((id, resurrect));
    }

    fn on_stop_listen(&mut self, _: &[Listener], id: ListenerId, migrate_req: bool) {
        if let Some(pos) = self.live.iter().position(|&x| x == id) {
            self.live.swap_remove(pos);
        }
        if migrate_req || self.policy_capable {
            self.closed.push(id);
        }
    }

    fn on_destroy(&mut self, id: ListenerId) {
        self.closed.retain(|&x| x != id);
        self.destroyed.push(id);
    }

    fn select(&mut self, _: &[Listener], _: &FourTuple, hash: u32, _: bool) -> Selection {
        if let Some(s) = self.select_override {
            return s;
        }
        if self.live.is_empty() {
            return Selection::NoListener;
        }
        Selection::Listener(self.by_hash(hash))
    }

    fn migrate_target(
        &mut self,
        _: &[Listener],
        closed: ListenerId,
        migrating: MigratingSock,
        migrate_req: bool,
    ) -> MigrateOutcome {
        self.migrations.push((closed, migrating, migrate_req));
        if let Some(o) = self.scripted.pop_front() {
            return o;
        }
        if !self.closed.contains(&closed) {
            return MigrateOutcome::Detached;
        }
        if self.live.is_empty() {
            return MigrateOutcome::Fail(MigrateFailure::NoLiveMember);
        }
        if migrate_req || self.policy_capable {
            MigrateOutcome::Target(self.by_hash(migrating.hash()))
        } else {
            MigrateOutcome::Fail(MigrateFailure::SysctlOff)
        }
    }

    fn note_synq_overflow(&mut self, _: ListenerId, now: SimTime) {
        self.overflow_at = Some(now);
    }

    fn synq_overflow_recent(&self, _: ListenerId, now: SimTime) -> bool {
        self.overflow_at
            .is_some_and(|t| now.saturating_sub(t) <= TCP_SYNCOOKIE_VALID)
    }
}

// ---------------------------------------------------------------- server recorder

/// One transmitted segment.
#[derive(Clone, Debug)]
pub(super) struct Sent {
    pub at: SimTime,
    pub pkt: Packet,
    pub rst: Option<RstCause>,
}

/// A recording [`ServerOutput`]: packets (with RST causes), pending timers,
/// events.
#[derive(Default)]
pub(super) struct ServerRec {
    pub now: SimTime,
    pub sent: Vec<Sent>,
    /// Pending timer entries `(at, seq, timer)`; `seq` keeps FIFO order.
    pub timers: Vec<(SimTime, u64, ServerTimer)>,
    seq: u64,
    pub events: Vec<(SimTime, ServerEvent)>,
}

impl ServerOutput for ServerRec {
    fn transmit(&mut self, pkt: Packet, rst: Option<RstCause>) {
        assert_eq!(
            pkt.flags.contains(RST),
            rst.is_some(),
            "an RST must carry a cause and only an RST: {pkt}"
        );
        self.sent.push(Sent {
            at: self.now,
            pkt,
            rst,
        });
    }

    fn set_timer(&mut self, at: SimTime, timer: ServerTimer) {
        assert!(at >= self.now, "timer set in the past: {at} < {}", self.now);
        self.timers.push((at, self.seq, timer));
        self.seq += 1;
    }

    fn notify(&mut self, ev: ServerEvent) {
        self.events.push((self.now, ev));
    }
}

impl ServerRec {
    /// Removes and returns the earliest timer entry due at or before `t`.
    pub fn pop_due(&mut self, t: SimTime) -> Option<(SimTime, ServerTimer)> {
        let (i, _) = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, e)| e.0 <= t)
            .min_by_key(|(_, e)| (e.0, e.1))?;
        let (at, _, timer) = self.timers.remove(i);
        Some((at, timer))
    }
}

// ---------------------------------------------------------------- server driver

/// The server stack with its recorder and mock group.
pub(super) struct Srv {
    pub stack: ServerStack<MockHooks>,
    pub out: ServerRec,
}

/// A transmitted segment as scripts compare it: `(time, flags, client port, rst cause)`.
pub(super) type Line = (SimTime, TcpFlags, u16, Option<RstCause>);

impl Srv {
    /// A stack whose timers fire at their exact nominal deadlines, so that
    /// scripts can state the rules' nominal times; see [`Srv::with_timers`].
    pub fn new(sysctls: Sysctls) -> Self {
        Srv::with_timers(sysctls, TimerModel::EXACT)
    }

    /// A stack with the given timer model (e.g. [`TimerModel::LINUX`]).
    pub fn with_timers(sysctls: Sysctls, timers: TimerModel) -> Self {
        let mut stack = ServerStack::new(sysctls, MockHooks::default(), FlowHasher::new(7));
        stack.timers = timers;
        Srv {
            stack,
            out: ServerRec::default(),
        }
    }

    /// bind() + listen() on the server address.
    pub fn listener(&mut self, backlog: u32) -> ListenerId {
        self.listener_opts(backlog, ListenerOptions::default())
    }

    pub fn listener_opts(&mut self, backlog: u32, opts: ListenerOptions) -> ListenerId {
        let id = self.stack.bind(server_addr(), opts);
        self.stack.listen(id, backlog).unwrap();
        id
    }

    /// Fires every timer due at or before `t`, in time order (FIFO among
    /// equal times), then sets the clock to `t`.
    pub fn advance(&mut self, t: SimTime) {
        assert!(t >= self.out.now, "time goes backwards");
        while let Some((at, timer)) = self.out.pop_due(t) {
            self.out.now = at;
            self.stack.on_timer(at, timer, &mut self.out);
        }
        self.out.now = t;
    }

    /// Fires all pending timers (bounded).
    pub fn run_timers(&mut self) {
        for _ in 0..10_000 {
            let Some(t) = self.out.timers.iter().map(|e| e.0).min() else {
                return;
            };
            self.advance(t);
        }
        panic!("timers never settle");
    }

    /// Delivers `pkt` at `t` (after the timers due by then).
    pub fn recv(&mut self, t: SimTime, pkt: Packet) {
        self.advance(t);
        self.stack.on_segment(t, &pkt, &mut self.out);
    }

    pub fn close(&mut self, t: SimTime, l: ListenerId) {
        self.advance(t);
        self.stack.close_listener(t, l, false, &mut self.out);
    }

    pub fn shutdown(&mut self, t: SimTime, l: ListenerId) {
        self.advance(t);
        self.stack.close_listener(t, l, true, &mut self.out);
    }

    /// What was sent since the last drain.
    pub fn drain(&mut self) -> Vec<Line> {
        self.out
            .sent
            .drain(..)
            .map(|s| (s.at, s.pkt.flags, s.pkt.dst.port(), s.rst))
            .collect()
    }

    /// Full segments sent since the last drain.
    pub fn drain_pkts(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.out.sent)
    }

    /// Events since the last call.
    pub fn events(&mut self) -> Vec<ServerEvent> {
        self.out.events.drain(..).map(|(_, e)| e).collect()
    }

    /// The ISN of the last SYN-ACK sent to `port`.
    pub fn server_isn(&self, port: u16) -> u32 {
        self.out
            .sent
            .iter()
            .rev()
            .find(|s| s.pkt.flags == SYNACK && s.pkt.dst.port() == port)
            .map(|s| s.pkt.seq)
            .expect("no SYN-ACK sent to this port")
    }

    /// SYN then final ACK at `t`: returns the server's ISN.
    pub fn handshake(&mut self, t: SimTime, port: u16) -> u32 {
        self.recv(t, syn(port));
        let isn = self.server_isn(port);
        self.recv(t, final_ack(port, isn));
        isn
    }

    /// The children queued on `l`, head first.
    pub fn queue(&self, l: ListenerId) -> Vec<ChildKey> {
        self.stack.listeners[l.index()]
            .accept_queue
            .iter()
            .copied()
            .collect()
    }

    pub fn l(&self, l: ListenerId) -> &Listener {
        &self.stack.listeners[l.index()]
    }

    /// `(syn_qlen, syn_young, accept queue length)` of `l`.
    pub fn qs(&self, l: ListenerId) -> (i32, i32, u32) {
        let l = self.l(l);
        (l.syn_qlen, l.syn_young, l.ack_backlog())
    }

    /// The client port of a child.
    pub fn child_port(&self, c: ChildKey) -> u16 {
        self.stack.child(c).expect("live child").tuple.remote.port()
    }
}

/// Sysctls with overrides applied by name.
pub(super) fn sysctls(overrides: &[(&str, u64)]) -> Sysctls {
    let mut s = Sysctls::default();
    for &(k, v) in overrides {
        s.set(k, v).unwrap();
    }
    s
}

// ---------------------------------------------------------------- client recorder

/// A recording [`ClientOutput`].
#[derive(Default)]
pub(super) struct ClientRec {
    pub now: SimTime,
    pub sent: Vec<(SimTime, Packet)>,
    /// The causes of the RSTs the client sent, in order.
    pub rsts: Vec<ClientRstCause>,
    pub timers: Vec<SimTime>,
    pub outcomes: Vec<(SimTime, ClientOutcome)>,
    /// TIME_WAIT entries: (when, the socket's key, the expiry call asked for).
    pub time_waits: Vec<(SimTime, Option<TwKey>, Option<SimTime>)>,
}

impl ClientOutput for ClientRec {
    fn transmit(&mut self, pkt: Packet, rst: Option<ClientRstCause>) {
        assert_eq!(
            pkt.flags.contains(RST),
            rst.is_some(),
            "an RST must carry a cause and only an RST: {pkt}"
        );
        self.sent.push((self.now, pkt));
        self.rsts.extend(rst);
    }
    fn set_timer(&mut self, at: SimTime) {
        assert!(at >= self.now);
        self.timers.push(at);
    }
    fn outcome(&mut self, outcome: ClientOutcome) {
        self.outcomes.push((self.now, outcome));
    }
    fn time_wait(&mut self, k: Option<TwKey>, arm: Option<SimTime>) {
        self.time_waits.push((self.now, k, arm));
    }
}

/// A client socket with its recorder.
pub(super) struct Cli {
    pub sock: ClientSocket,
    pub out: ClientRec,
    pub sysctls: Sysctls,
    pub timers: TimerModel,
    pub metrics: TcpMetrics,
    pub counters: Counters,
    pub timewait: TimeWaitTable,
}

impl Cli {
    /// connect() at `t` from `port` to the IPv4 server address, with timers
    /// at their exact nominal deadlines (see [`Cli::connect_with`]).
    pub fn connect(t: SimTime, port: u16, cfg: ClientConfig, sysctls: Sysctls) -> Self {
        Cli::connect_with(
            t,
            port,
            cfg,
            sysctls,
            TimerModel::EXACT,
            TcpMetrics::default(),
        )
    }

    /// connect() with a timer model and a metrics cache.
    pub fn connect_with(
        t: SimTime,
        port: u16,
        cfg: ClientConfig,
        sysctls: Sysctls,
        timers: TimerModel,
        mut metrics: TcpMetrics,
    ) -> Self {
        let mut out = ClientRec {
            now: t,
            ..Default::default()
        };
        let mut counters = Counters::default();
        let mut timewait = TimeWaitTable::default();
        let sock = ClientSocket::connect(
            t,
            client_addr(port),
            server_addr(),
            cisn(port),
            &cfg,
            &mut ClientEnv {
                sysctls: &sysctls,
                timers,
                metrics: &mut metrics,
                counters: &mut counters,
                timewait: &mut timewait,
            },
            &mut out,
        );
        Cli {
            sock,
            out,
            sysctls,
            timers,
            metrics,
            counters,
            timewait,
        }
    }

    /// Fires the timer entries due at or before `t`, earliest first.
    pub fn advance(&mut self, t: SimTime) {
        while let Some((i, &at)) = self
            .out
            .timers
            .iter()
            .enumerate()
            .filter(|(_, &a)| a <= t)
            .min_by_key(|(_, &a)| a)
        {
            self.out.timers.remove(i);
            self.out.now = at;
            let mut env = ClientEnv {
                sysctls: &self.sysctls,
                timers: self.timers,
                metrics: &mut self.metrics,
                counters: &mut self.counters,
                timewait: &mut self.timewait,
            };
            self.sock.on_timer(at, &mut env, &mut self.out);
        }
        self.out.now = t;
    }

    pub fn recv(&mut self, t: SimTime, pkt: Packet) {
        self.advance(t);
        let mut env = ClientEnv {
            sysctls: &self.sysctls,
            timers: self.timers,
            metrics: &mut self.metrics,
            counters: &mut self.counters,
            timewait: &mut self.timewait,
        };
        self.sock.on_segment(t, &pkt, &mut env, &mut self.out);
    }

    /// The times at which SYNs were sent (first and retransmitted), drained.
    pub fn syn_times(&mut self) -> Vec<SimTime> {
        self.drain()
            .into_iter()
            .filter(|&(_, f, _)| f == SYN)
            .map(|(t, _, _)| t)
            .collect()
    }

    /// `(time, flags, payload length)` of everything sent since the last drain.
    pub fn drain(&mut self) -> Vec<(SimTime, TcpFlags, u32)> {
        self.out
            .sent
            .drain(..)
            .map(|(t, p)| (t, p.flags, p.payload_len))
            .collect()
    }
}

/// A server → client segment of the IPv4 flow of `port`.
pub(super) fn to_client(port: u16, flags: TcpFlags, seq: u32, ack: u32, len: u32) -> Packet {
    seg_between(server_addr(), client_addr(port), flags, seq, ack, len)
}

/// A plain client configuration with a request of `request_bytes`.
pub(super) fn plain(request_bytes: u32) -> ClientConfig {
    ClientConfig {
        request_bytes,
        ..ClientConfig::default()
    }
}
