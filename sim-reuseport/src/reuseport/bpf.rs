//! Real `SK_REUSEPORT` programs (§2.7) run by `sim-bpf` where the kernel
//! runs them: listener selection (§4.2, `reuseport_select_sock`) and, for
//! `BPF_SK_REUSEPORT_SELECT_OR_MIGRATE`, migration (§4.3,
//! `reuseport_migrate_sock`). This module is the host side: socket facts
//! for `struct bpf_sock`, the virtual clock, the run's random stream, the
//! trace, the packet the program sees, and user-space map writes.

use crate::policy::PolicyDecision;
use serde::Serialize;
use sim_bpf::ctx::tcp_state;
use sim_bpf::{
    BpfObject, CookieJar, Env, Errno, MapId, ProgId, ReuseportCtx, SockHandle, SockInfo, Sockets,
    TcpOptions, TcpSegment, Verdict,
};
use sim_core::{FourTuple, SimRng, SimTime};
use sim_tcp::{Listener, ListenerId, ListenerState, MigratingSock};

/// The socket "fd" of listener `l` user space passes to socket maps (never
/// 0, so 0 stands for "no socket": `EBADF`).
pub fn sock_handle(l: ListenerId) -> SockHandle {
    SockHandle(u64::from(l.0) + 1)
}

/// The listener behind a handle, if it is one.
fn listener_of(h: SockHandle, n: usize) -> Option<ListenerId> {
    let i = h.0.checked_sub(1)?;
    (i < n as u64).then_some(ListenerId(i as u32))
}

/// Handles of migrating sockets: above every fd (`> i32::MAX`, so user
/// space cannot name them), one per flow hash so a request keeps its
/// cookie across migrations.
const MIGRATING_BASE: u64 = 1 << 40;

/// What the host lends a program: cookies, time, randomness, the trace.
#[derive(Clone, Debug)]
struct BpfHost {
    cookies: CookieJar,
    now_ns: u64,
    rng: SimRng,
    /// `bpf_trace_printk` lines not yet written to the trace.
    trace: Vec<String>,
}

/// One call's view of the sockets.
struct CallEnv<'a> {
    host: &'a mut BpfHost,
    listeners: &'a [Listener],
    groups: &'a dyn Fn(ListenerId) -> Option<u32>,
    migrating: Option<(SockHandle, SockInfo)>,
}

impl Sockets for CallEnv<'_> {
    fn sock(&self, h: SockHandle) -> Option<SockInfo> {
        if let Some((mh, info)) = self.migrating {
            if mh == h {
                return Some(info);
            }
        }
        let l = listener_of(h, self.listeners.len())?;
        let lst = &self.listeners[l.index()];
        let state = match lst.state {
            ListenerState::Listen => tcp_state::LISTEN,
            ListenerState::Bound | ListenerState::Shutdown | ListenerState::Closed => {
                tcp_state::CLOSE
            }
        };
        Some(SockInfo::tcp_listener(lst.local, state, (self.groups)(l)))
    }

    fn socket_cookie(&mut self, h: SockHandle) -> u64 {
        self.host.cookies.cookie(h)
    }
}

impl Env for CallEnv<'_> {
    fn ktime_ns(&mut self) -> u64 {
        self.host.now_ns
    }

    fn prandom_u32(&mut self) -> u32 {
        sim_core::uniform_below(&mut self.host.rng, 1 << 32) as u32
    }

    fn trace_printk(&mut self, program: &str, line: &str) {
        self.host.trace.push(format!("{program}: {line}"));
    }
}

/// Where the program is called from, with what the context needs.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Call<'t> {
    /// Listener selection for a segment of `tuple` (server's view).
    Select {
        /// The flow.
        tuple: &'t FourTuple,
    },
    /// Migration of `migrating`, owned by the closed listener.
    Migrate {
        /// The socket being migrated.
        migrating: MigratingSock,
    },
}

/// The group a call runs for.
#[derive(Copy, Clone, Debug)]
pub(crate) struct GroupCtx {
    /// `reuse->reuseport_id`.
    pub reuseport_id: u32,
    /// `reuse->bind_inany`.
    pub bind_inany: bool,
}

/// Counters and end-of-run state of one program, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BpfReport {
    /// The object file, as the scenario names it.
    pub object: String,
    /// The program's function name.
    pub program: String,
    /// Calls.
    pub calls: u64,
    /// Instructions executed in all calls.
    pub insns: u64,
    /// Most instructions in one call.
    pub insns_max: u64,
    /// Divisions or modulos by zero (given the kernel's result: `x/0 = 0`).
    pub div_by_zero: u64,
    /// User-space map writes that failed, with the errno (`time map op: E...`).
    pub map_errors: Vec<String>,
    /// Every map at the end of the run, as `bpftool map dump` shows it.
    pub maps: serde_json::Value,
    /// The same, as text.
    pub maps_text: String,
}

/// A loaded program with its maps (one per `bpf` policy, per run).
#[derive(Clone, Debug)]
pub struct BpfPolicy {
    object: String,
    obj: BpfObject,
    prog: ProgId,
    host: BpfHost,
    /// Reused frame buffer for the packet a program sees.
    buf: Vec<u8>,
    map_errors: Vec<String>,
}

impl BpfPolicy {
    /// A fresh copy of the loaded object; `rng` is the run's stream for
    /// `bpf_get_prandom_u32`.
    pub fn new(object: &str, obj: &BpfObject, prog: ProgId, rng: SimRng) -> Self {
        BpfPolicy {
            object: object.to_string(),
            obj: obj.clone(),
            prog,
            host: BpfHost {
                cookies: CookieJar::default(),
                now_ns: 0,
                rng,
                trace: Vec::new(),
            },
            buf: Vec::with_capacity(128),
            map_errors: Vec::new(),
        }
    }

    /// The program's function name.
    pub fn program(&self) -> &str {
        self.obj.programs()[self.prog.0].name()
    }

    /// Runs the program for one call, as `bpf_run_sk_reuseport`. `sk` is
    /// the listener the lookup met first (selection) or the closed one
    /// (migration). A runtime fault is returned as its message (program,
    /// instruction, reason).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &mut self,
        now: SimTime,
        listeners: &[Listener],
        groups: &dyn Fn(ListenerId) -> Option<u32>,
        sk: ListenerId,
        group: GroupCtx,
        hash: u32,
        call: Call<'_>,
    ) -> Result<PolicyDecision, String> {
        self.host.now_ns = now.as_nanos();
        let (skb_seg, migrating) = match call {
            Call::Select { tuple } => (
                Some(TcpSegment {
                    src: tuple.remote,
                    dst: tuple.local,
                    seq: 0,
                    ack: 0,
                    flags: sim_bpf::frame::tcp_flags::SYN,
                    window: 65_535,
                    options: TcpOptions::Syn {
                        mss: 65_495,
                        wscale: 7,
                        tsval: 0,
                    },
                    payload_len: 0,
                }),
                None,
            ),
            Call::Migrate { migrating } => {
                // The flow as the server sees it: local = the listener side.
                let FourTuple {
                    local: here,
                    remote: peer,
                } = migrating.tuple();
                let h = SockHandle(MIGRATING_BASE | u64::from(migrating.hash()));
                let (info, seg) = match migrating {
                    MigratingSock::Request { len: 0, .. } => {
                        (SockInfo::tcp_request(here, peer), None)
                    }
                    MigratingSock::Request { len, .. } => (
                        SockInfo::tcp_request(here, peer),
                        Some(TcpSegment {
                            src: peer,
                            dst: here,
                            seq: 0,
                            ack: 0,
                            flags: sim_bpf::frame::tcp_flags::ACK,
                            window: 65_535,
                            options: TcpOptions::Timestamps { tsval: 0, tsecr: 0 },
                            payload_len: (len as usize).saturating_sub(32),
                        }),
                    ),
                    MigratingSock::Established { .. } => (
                        SockInfo::tcp_child(here, peer, tcp_state::ESTABLISHED),
                        None,
                    ),
                    MigratingSock::SynRecv { .. } => {
                        (SockInfo::tcp_child(here, peer, tcp_state::SYN_RECV), None)
                    }
                };
                (seg, Some((h, info)))
            }
        };
        let skb = skb_seg.and_then(|s| s.write(&mut self.buf));
        let ctx = ReuseportCtx {
            sk: sock_handle(sk),
            migrating_sk: migrating.map(|(h, _)| h),
            hash,
            reuseport_id: group.reuseport_id,
            bind_inany: group.bind_inany,
            skb,
        };
        let mut env = CallEnv {
            host: &mut self.host,
            listeners,
            groups,
            migrating,
        };
        let out = self
            .obj
            .run(self.prog, &mut env, &ctx)
            .map_err(|e| e.to_string())?;
        Ok(match out.verdict {
            Verdict::Select(h) => match listener_of(h, listeners.len()) {
                Some(l) => PolicyDecision::Pick(l),
                None => PolicyDecision::Pass,
            },
            Verdict::Pass => PolicyDecision::Pass,
            Verdict::Drop => PolicyDecision::Drop,
        })
    }

    /// `bpf_sk_reuseport_detach` / `sock_map_unhash`: listener `l` stopped.
    pub(crate) fn remove_socket(&mut self, l: ListenerId) {
        self.obj.maps_mut().remove_socket(sock_handle(l));
    }

    /// Lines `bpf_trace_printk` wrote since the last call.
    pub(crate) fn take_trace(&mut self) -> Vec<String> {
        std::mem::take(&mut self.host.trace)
    }

    /// Whether trace lines are waiting.
    pub(crate) fn has_trace(&self) -> bool {
        !self.host.trace.is_empty()
    }

    /// A user-space map operation on this object: `BPF_MAP_UPDATE_ELEM`
    /// (`value` given) or `BPF_MAP_DELETE_ELEM`. A failure is kept for the
    /// report (as the deploying process would log the errno) and returned.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn map_write(
        &mut self,
        now: SimTime,
        listeners: &[Listener],
        groups: &dyn Fn(ListenerId) -> Option<u32>,
        map: MapId,
        key: &[u8],
        value: Option<&[u8]>,
        flags: u64,
    ) -> Result<(), Errno> {
        let env = CallEnv {
            host: &mut self.host,
            listeners,
            groups,
            migrating: None,
        };
        let maps = self.obj.maps_mut();
        let r = match value {
            Some(v) => maps.update(map, key, v, flags, &env),
            None => maps.delete_user(map, key),
        };
        if let Err(e) = r {
            let name = maps.get(map).map_or("?", |m| m.def().name.as_str());
            let op = if value.is_some() { "update" } else { "delete" };
            self.map_errors
                .push(format!("{now} map_{op} {name}: {}", e.name()));
        }
        r
    }

    /// The cookie of listener `l` (`SO_COOKIE`), assigned at first use.
    pub(crate) fn cookie(&mut self, l: ListenerId) -> u64 {
        self.host.cookies.cookie(sock_handle(l))
    }

    /// Counters and a dump of every map.
    pub(crate) fn report(
        &mut self,
        listeners: &[Listener],
        groups: &dyn Fn(ListenerId) -> Option<u32>,
    ) -> BpfReport {
        let stats = self.obj.stats(self.prog).clone();
        let program = self.program().to_string();
        let mut env = CallEnv {
            host: &mut self.host,
            listeners,
            groups,
            migrating: None,
        };
        let maps = self.obj.maps();
        BpfReport {
            object: self.object.clone(),
            program,
            calls: stats.calls,
            insns: stats.insns,
            insns_max: stats.insns_max,
            div_by_zero: stats.div_by_zero,
            map_errors: self.map_errors.clone(),
            maps: maps.dump_json(&mut env),
            maps_text: maps.dump_text(&mut env),
        }
    }
}
