//! A client and a server stack driven together over a link with a fixed
//! one-way delay, with scripted segment loss and reconnects: every segment's
//! send time is logged.

use super::harness::*;
use crate::{
    closed_port_reply, ClientConfig, ClientEnv, ClientSocket, Counters, FlowHasher, ListenerId,
    ServerEvent, ServerStack, ServerTimer, Sysctls, TcpMetrics, TimeWaitTable,
};
use sim_core::{EventQueue, Packet, SimDuration, SimTime, TcpFlags, TimerModel};
use std::net::SocketAddr;

pub(super) enum Ev {
    ToServer(Packet),
    ToClient(Packet),
    Srv(ServerTimer),
    Cli,
}

/// `(send time, direction, flags, seq, ack, payload length)`.
pub(super) type LogLine = (SimTime, &'static str, TcpFlags, u32, u32, u32);

/// Decides whether a logged segment is lost on the link.
pub(super) type Loss = Box<dyn FnMut(&LogLine) -> bool>;

pub(super) struct Pair {
    pub q: EventQueue<Ev>,
    pub srv: ServerStack<MockHooks>,
    pub srec: ServerRec,
    pub cli: ClientSocket,
    pub crec: ClientRec,
    pub sysctls: Sysctls,
    pub timers: TimerModel,
    pub cmetrics: TcpMetrics,
    pub ccounters: Counters,
    pub ctimewait: TimeWaitTable,
    /// The auto-responder answers without closing (HTTP keep-alive).
    pub keep_alive: bool,
    pub delay: SimDuration,
    pub log: Vec<LogLine>,
    pub server_events: Vec<(SimTime, ServerEvent)>,
    /// Accept each queued child and answer its request with this many bytes.
    pub auto_respond: Option<u32>,
    /// Segments for which this returns true are logged, then lost.
    pub lose: Option<Loss>,
    /// Segments the client host answered for a closed port.
    pub closed_port_replies: usize,
}

impl Pair {
    /// A server with one listener on `server` and a client connecting at 0
    /// with a 100-byte request; timers at their exact nominal deadlines.
    pub fn new(
        sysctls: Sysctls,
        server: SocketAddr,
        client: SocketAddr,
        delay_ms: u64,
    ) -> (Self, ListenerId) {
        let delay = SimDuration::from_millis(delay_ms);
        Pair::build(
            sysctls,
            server,
            client,
            delay,
            plain(100),
            TimerModel::EXACT,
            None,
        )
    }

    /// [`Pair::new`] with a client configuration, a timer model for both
    /// hosts and a loss rule in place before the first SYN.
    pub fn build(
        sysctls: Sysctls,
        server: SocketAddr,
        client: SocketAddr,
        delay: SimDuration,
        cfg: ClientConfig,
        timers: TimerModel,
        lose: Option<Loss>,
    ) -> (Self, ListenerId) {
        let mut srv = ServerStack::new(sysctls.clone(), MockHooks::default(), FlowHasher::new(3));
        srv.timers = timers;
        let l = srv.bind(server, Default::default());
        srv.listen(l, 16).unwrap();
        let mut crec = ClientRec::default();
        let mut cmetrics = TcpMetrics::default();
        let mut ccounters = Counters::default();
        let mut ctimewait = TimeWaitTable::default();
        let cli = ClientSocket::connect(
            SimTime::ZERO,
            client,
            server,
            cisn(client.port()),
            &cfg,
            &mut ClientEnv {
                sysctls: &sysctls,
                timers,
                metrics: &mut cmetrics,
                counters: &mut ccounters,
                timewait: &mut ctimewait,
            },
            &mut crec,
        );
        let mut p = Pair {
            q: EventQueue::new(),
            srv,
            srec: ServerRec::default(),
            cli,
            crec,
            sysctls,
            timers,
            cmetrics,
            ccounters,
            ctimewait,
            delay,
            log: Vec::new(),
            server_events: Vec::new(),
            auto_respond: Some(1000),
            keep_alive: false,
            lose,
            closed_port_replies: 0,
        };
        p.flush();
        (p, l)
    }

    /// Runs to `at`, then a new connect() from `client` with ISN `isn`
    /// replaces the client socket (the old one's segments then reach the
    /// new socket if the 4-tuple is the same, else the closed port).
    pub fn connect_at(&mut self, at: SimTime, client: SocketAddr, isn: u32, cfg: ClientConfig) {
        self.run(at);
        self.crec.now = at;
        let server = self.cli.tuple().remote;
        self.cli = ClientSocket::connect(
            at,
            client,
            server,
            isn,
            &cfg,
            &mut ClientEnv {
                sysctls: &self.sysctls,
                timers: self.timers,
                metrics: &mut self.cmetrics,
                counters: &mut self.ccounters,
                timewait: &mut self.ctimewait,
            },
            &mut self.crec,
        );
        self.flush();
    }

    fn lost(&mut self, line: &LogLine) -> bool {
        self.lose.as_mut().is_some_and(|f| f(line))
    }

    /// Moves everything the endpoints produced into the queue and runs the
    /// server application (accept + respond).
    pub fn flush(&mut self) {
        loop {
            let now = self.q.now();
            let mut progress = false;
            for s in std::mem::take(&mut self.srec.sent) {
                let p = s.pkt;
                let line = (s.at, "S>C", p.flags, p.seq, p.ack, p.payload_len);
                self.log.push(line);
                if !self.lost(&line) {
                    self.q.schedule(s.at + self.delay, Ev::ToClient(p));
                }
            }
            for (at, _, t) in std::mem::take(&mut self.srec.timers) {
                self.q.schedule(at, Ev::Srv(t));
            }
            for (at, p) in std::mem::take(&mut self.crec.sent) {
                let line = (at, "C>S", p.flags, p.seq, p.ack, p.payload_len);
                self.log.push(line);
                if !self.lost(&line) {
                    self.q.schedule(at + self.delay, Ev::ToServer(p));
                }
            }
            for at in std::mem::take(&mut self.crec.timers) {
                self.q.schedule(at, Ev::Cli);
            }
            for (at, ev) in std::mem::take(&mut self.srec.events) {
                self.server_events.push((at, ev));
                let Some(len) = self.auto_respond else {
                    continue;
                };
                match ev {
                    ServerEvent::ChildQueued { listener, .. } => {
                        self.srv.accept(listener).unwrap();
                        progress = true;
                    }
                    ServerEvent::RequestReceived { child } => {
                        self.srec.now = now;
                        let keep_alive = self.keep_alive;
                        self.srv
                            .respond(now, child, len, keep_alive, &mut self.srec);
                        progress = true;
                    }
                    _ => {}
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// Runs events up to and including `until` (bounded).
    pub fn run(&mut self, until: SimTime) {
        for _ in 0..100_000 {
            match self.q.peek_time() {
                Some(t) if t <= until => {}
                _ => return,
            }
            let (now, ev) = self.q.pop().unwrap();
            self.srec.now = now;
            self.crec.now = now;
            let mut env = ClientEnv {
                sysctls: &self.sysctls,
                timers: self.timers,
                metrics: &mut self.cmetrics,
                counters: &mut self.ccounters,
                timewait: &mut self.ctimewait,
            };
            match ev {
                Ev::ToServer(p) => self.srv.on_segment(now, &p, &mut self.srec),
                Ev::Srv(t) => self.srv.on_timer(now, t, &mut self.srec),
                Ev::ToClient(p) if p.dst == self.cli.tuple().local && !self.cli.is_closed() => {
                    self.cli.on_segment(now, &p, &mut env, &mut self.crec)
                }
                Ev::ToClient(p) => {
                    if let Some((reply, _)) = closed_port_reply(&p, env.counters) {
                        self.closed_port_replies += 1;
                        self.crec.sent.push((now, reply));
                    }
                }
                Ev::Cli => self.cli.on_timer(now, &mut env, &mut self.crec),
            }
            self.flush();
        }
        panic!("the pair never settles");
    }

    /// Calls into the server at the current queue time, then flushes.
    pub fn server(&mut self, f: impl FnOnce(SimTime, &mut ServerStack<MockHooks>, &mut ServerRec)) {
        let now = self.q.now();
        self.srec.now = now;
        f(now, &mut self.srv, &mut self.srec);
        self.flush();
    }

    /// Send times of the logged segments in direction `dir` ("C>S" or
    /// "S>C") that satisfy `pred`.
    pub fn times(&self, dir: &str, pred: impl Fn(&LogLine) -> bool) -> Vec<SimTime> {
        self.log
            .iter()
            .filter(|l| l.1 == dir && pred(l))
            .map(|l| l.0)
            .collect()
    }
}
