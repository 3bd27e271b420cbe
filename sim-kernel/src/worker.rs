//! Server workers: one thread per worker, accepting from a real
//! `SO_REUSEPORT` listener according to the worker's accept model, reading
//! each request, holding it for the service time, writing the response and
//! closing.
//!
//! Listening sockets are created (and bound) at setup inside the server's
//! namespace and kept in [`Listeners`], one slot per worker (its *own*
//! socket), behind one mutex. Timeline actions on listeners (listen,
//! shutdown, close, handover, attach) are carried out by the timeline
//! thread directly under that mutex, so actions at the same instant happen
//! in their order, at their time, whatever the workers are doing. A worker
//! only reads which listener it currently holds and whether it accepts,
//! and is woken through its eventfd when that changes. Workers wait in
//! epoll, which holds no reference on the files it watches: a `close()` by
//! the timeline thread takes effect at once (with `poll()` the file would
//! stay open until the wait returned).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::clock::{self, Mono};
use crate::result::WorkerStats;
use crate::spec::{AcceptModel, ServerSpec, WorkerSpec};
use crate::sys::{self, cvt, Epoll};

/// What a socket slot holds, for the final report.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SockState {
    /// Bound, never listened.
    Bound,
    /// Listening.
    Listen,
    /// Shut down (still bound).
    Shutdown,
    /// Closed.
    Closed,
}

impl SockState {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            SockState::Bound => "bound",
            SockState::Listen => "listen",
            SockState::Shutdown => "shutdown",
            SockState::Closed => "closed",
        }
    }
}

/// A worker's control state, written by the timeline thread.
#[derive(Clone, Debug)]
pub struct WorkerCtl {
    /// The listener it accepts from and closes: the index of the worker
    /// that created it (itself until a handover).
    pub current: Option<usize>,
    /// Calls accept().
    pub accepting: bool,
    /// Bumped whenever `current`'s socket changes (listen, shutdown, close,
    /// handover), so the worker re-registers it.
    pub generation: u64,
    /// Killed: close every accepted connection and stop.
    pub killed: bool,
    /// The worker has closed its connections after a kill.
    pub kill_done: bool,
}

/// Every listening socket and worker control state of a run.
#[derive(Debug)]
pub struct Listeners {
    /// Each worker's own socket (`None` once closed).
    pub socks: Vec<Option<OwnedFd>>,
    /// Their states.
    pub states: Vec<SockState>,
    /// Per worker.
    pub ctl: Vec<WorkerCtl>,
}

/// The mutex-protected [`Listeners`] and the condition variable used to
/// wait for a killed worker.
pub type Shared = Arc<(Mutex<Listeners>, Condvar)>;

/// Creates a worker's listening socket in the calling thread's namespace:
/// `SO_REUSEPORT`, `IPV6_V6ONLY`, `TCP_SYNCNT`, `TCP_FASTOPEN`, non-blocking,
/// bound to the server's address.
pub fn create_listener(w: &WorkerSpec, s: &ServerSpec) -> std::io::Result<OwnedFd> {
    let family = if s.addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall.
    let fd = sys::owned(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    let raw = fd.as_raw_fd();
    sys::setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    if s.addr.is_ipv6() && w.v6only {
        sys::setsockopt_int(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    if w.syn_retries > 0 {
        sys::setsockopt_int(
            raw,
            libc::IPPROTO_TCP,
            libc::TCP_SYNCNT,
            i32::from(w.syn_retries),
        )?;
    }
    if w.fast_open_qlen > 0 {
        let q = i32::try_from(w.fast_open_qlen).unwrap_or(i32::MAX);
        sys::setsockopt_int(raw, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, q)?;
    }
    if w.defer_accept_secs > 0 {
        let secs = i32::try_from(w.defer_accept_secs).unwrap_or(i32::MAX);
        sys::setsockopt_int(raw, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)?;
    }
    let (sa, len) = sys::sockaddr(s.addr);
    // SAFETY: valid address of the given length.
    cvt(unsafe { libc::bind(raw, (&sa as *const libc::sockaddr_storage).cast(), len) })?;
    Ok(fd)
}

#[derive(Debug)]
enum ConnState {
    Reading { got: usize },
    Serving { due: Mono },
    Writing { sent: usize },
}

#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    /// Its epoll token (slot index).
    slot: u64,
    state: ConnState,
}

const TOKEN_WAKE: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;
const TOKEN_LISTENER: u64 = u64::MAX - 2;

/// Everything a worker thread needs.
pub struct WorkerSetup {
    /// Worker index.
    pub index: usize,
    /// Its spec.
    pub spec: WorkerSpec,
    /// Shared listeners.
    pub shared: Shared,
    /// Its wake-up eventfd (owned by the caller, who joins first).
    pub wake: RawFd,
    /// Stop flag of the run.
    pub stop: Arc<AtomicBool>,
    /// Scenario time 0, published when the run starts.
    pub start: Arc<clock::StartCell>,
    /// Run under `SCHED_FIFO`.
    pub realtime: bool,
}

/// The body of a worker thread; returns its statistics.
pub fn run_worker(w: WorkerSetup) -> WorkerStats {
    clock::thread_setup(w.realtime, clock::prio::ENDPOINT);
    if w.start.wait().is_none() {
        return WorkerStats::default();
    }
    let mut stats = WorkerStats {
        name: w.spec.name.clone(),
        ..Default::default()
    };
    let ep = Epoll::new().expect("epoll");
    let timer = sys::timerfd().expect("timerfd");
    ep.add(w.wake, libc::EPOLLIN as u32, TOKEN_WAKE)
        .expect("epoll add");
    ep.add(timer.as_raw_fd(), libc::EPOLLIN as u32, TOKEN_TIMER)
        .expect("epoll add");
    let mut conns: Vec<Option<Conn>> = Vec::new();
    // (creator slot, fd, generation) of the registered listener.
    let mut registered: Option<(usize, RawFd, u64)> = None;
    let mut unusable_gen: Option<u64> = None;
    let mut next_accept_at = Mono(0);
    let mut events = Vec::with_capacity(64);
    let response = vec![b'r'; w.spec.response_bytes as usize];
    let mut buf = vec![0u8; 16 * 1024];
    let (lock, cvar) = &*w.shared;
    loop {
        if w.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = clock::now();
        // Snapshot the control state and (re-)register the listener.
        let mut want: Option<(usize, RawFd, u64)> = None;
        {
            let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
            let ctl = l.ctl[w.index].clone();
            if ctl.killed && !ctl.kill_done {
                stats.closed_at_kill += conns.iter().filter(|c| c.is_some()).count() as u64;
                conns.clear();
                l.ctl[w.index].kill_done = true;
                cvar.notify_all();
            }
            if let Some(c) = ctl.current {
                if let Some(fd) = l.socks[c].as_ref() {
                    let allowed = ctl.accepting
                        && !ctl.killed
                        && now >= next_accept_at
                        && unusable_gen != Some(ctl.generation);
                    if allowed {
                        want = Some((c, fd.as_raw_fd(), ctl.generation));
                    }
                }
            }
            if registered != want {
                if let Some((c, fd, _)) = registered {
                    // Only if that socket is still open: a closed one left
                    // epoll by itself, and its number may have been reused.
                    if l.socks[c].as_ref().map(|s| s.as_raw_fd()) == Some(fd) {
                        ep.delete(fd);
                    }
                }
                registered = None;
                if let Some((_, fd, _)) = want {
                    if ep.add(fd, libc::EPOLLIN as u32, TOKEN_LISTENER).is_ok() {
                        registered = want;
                    }
                }
            }
        }
        // Next timed wake-up: the earliest service completion, or the next
        // accept slot of a rate or batch model.
        let mut next: Option<Mono> = conns
            .iter()
            .flatten()
            .filter_map(|c| match c.state {
                ConnState::Serving { due } => Some(due),
                _ => None,
            })
            .min();
        if want.is_none() && next_accept_at > now {
            next = Some(next.map_or(next_accept_at, |n| n.min(next_accept_at)));
        }
        sys::timerfd_arm(timer.as_raw_fd(), next);
        if ep.wait(&mut events, -1).is_err() {
            break;
        }
        for ev in events.iter() {
            let (token, flags) = (ev.u64, ev.events);
            match token {
                TOKEN_WAKE => sys::eventfd_drain(w.wake),
                TOKEN_TIMER => sys::timerfd_ack(timer.as_raw_fd()),
                TOKEN_LISTENER => {
                    let Some((c, fd, gen)) = registered else {
                        continue;
                    };
                    let budget = match w.spec.accept {
                        AcceptModel::Immediate => u32::MAX,
                        AcceptModel::Rate { .. } => 1,
                        AcceptModel::Batch { max, .. } => max,
                    };
                    let l = lock.lock().unwrap_or_else(|p| p.into_inner());
                    // The socket may have been closed or handed over since.
                    let ctl = &l.ctl[w.index];
                    if ctl.current != Some(c)
                        || ctl.generation != gen
                        || !ctl.accepting
                        || l.socks[c].as_ref().map(|s| s.as_raw_fd()) != Some(fd)
                    {
                        continue;
                    }
                    let mut got = 0;
                    while got < budget {
                        // SAFETY: plain syscall on a listening socket we hold the lock for.
                        let r = unsafe {
                            libc::accept4(
                                fd,
                                std::ptr::null_mut(),
                                std::ptr::null_mut(),
                                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                            )
                        };
                        if r < 0 {
                            let e = std::io::Error::last_os_error();
                            if e.raw_os_error() == Some(libc::EINVAL) {
                                // Not listening (shut down): readable but
                                // nothing to accept until it listens again.
                                unusable_gen = Some(gen);
                            }
                            break;
                        }
                        got += 1;
                        stats.accepted += 1;
                        let conn = sys::owned(r).expect("fd");
                        let slot = conns.iter().position(|c| c.is_none()).unwrap_or_else(|| {
                            conns.push(None);
                            conns.len() - 1
                        });
                        let _ = ep.add(
                            conn.as_raw_fd(),
                            (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
                            slot as u64,
                        );
                        conns[slot] = Some(Conn {
                            fd: conn,
                            slot: slot as u64,
                            state: ConnState::Reading { got: 0 },
                        });
                    }
                    drop(l);
                    if got > 0 {
                        next_accept_at = match w.spec.accept {
                            AcceptModel::Immediate => Mono(0),
                            AcceptModel::Rate { per_second } => {
                                Mono(clock::now().0 + (1_000_000_000 / per_second).max(1))
                            }
                            AcceptModel::Batch { interval, .. } => {
                                Mono(clock::now().0 + interval.as_nanos())
                            }
                        };
                    }
                }
                slot => {
                    let slot = slot as usize;
                    let done = match conns.get_mut(slot).and_then(|c| c.as_mut()) {
                        Some(c) => {
                            on_conn_event(c, flags, &ep, &mut buf, &w, &response, &mut stats)
                        }
                        None => false,
                    };
                    if done {
                        conns[slot] = None;
                    }
                }
            }
        }
        // Responses whose service time is over.
        let now = clock::now();
        for slot in conns.iter_mut() {
            let due =
                matches!(slot, Some(Conn { state: ConnState::Serving { due }, .. }) if *due <= now);
            if due {
                let c = slot.as_mut().expect("matched");
                c.state = ConnState::Writing { sent: 0 };
                if write_response(c, &ep, &response, &mut stats) {
                    *slot = None;
                }
            }
        }
    }
    stats
}

/// Handles readiness of an accepted connection; true when it is finished
/// (and is then closed by dropping it).
fn on_conn_event(
    c: &mut Conn,
    flags: u32,
    ep: &Epoll,
    buf: &mut [u8],
    w: &WorkerSetup,
    response: &[u8],
    stats: &mut WorkerStats,
) -> bool {
    match c.state {
        ConnState::Reading { mut got } => {
            let mut eof = false;
            loop {
                // SAFETY: valid buffer.
                let n = unsafe { libc::read(c.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    got += n as usize;
                    continue;
                }
                if n == 0 {
                    eof = true;
                } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                    return true; // reset or error: drop it
                }
                break;
            }
            if got == 0 {
                c.state = ConnState::Reading { got };
                return eof;
            }
            // The request is in (one segment: requests are small).
            let _ = ep.modify(c.fd.as_raw_fd(), 0, c.slot);
            if w.spec.service_time.as_nanos() == 0 {
                c.state = ConnState::Writing { sent: 0 };
                return write_response(c, ep, response, stats);
            }
            c.state = ConnState::Serving {
                due: Mono(clock::now().0 + w.spec.service_time.as_nanos()),
            };
            false
        }
        ConnState::Serving { .. } => false,
        ConnState::Writing { .. } => {
            if flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                return true;
            }
            write_response(c, ep, response, stats)
        }
    }
}

/// Writes what remains of the response; true when done (or failed).
fn write_response(c: &mut Conn, ep: &Epoll, response: &[u8], stats: &mut WorkerStats) -> bool {
    let ConnState::Writing { mut sent } = c.state else {
        return false;
    };
    while sent < response.len() {
        // SAFETY: valid buffer; MSG_NOSIGNAL: no SIGPIPE on a reset peer.
        let n = unsafe {
            libc::send(
                c.fd.as_raw_fd(),
                response[sent..].as_ptr().cast(),
                response.len() - sent,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
                c.state = ConnState::Writing { sent };
                let _ = ep.modify(c.fd.as_raw_fd(), libc::EPOLLOUT as u32, c.slot);
                return false;
            }
            return true;
        }
        sent += n as usize;
    }
    stats.responses += 1;
    true
}

/// Waits until worker `index` has closed its connections after a kill (at
/// most `timeout`).
pub fn wait_killed(shared: &Shared, index: usize, timeout: Duration) -> bool {
    let (lock, cvar) = &**shared;
    let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    let (g, _) = cvar
        .wait_timeout_while(guard, timeout, |l| !l.ctl[index].kill_done)
        .unwrap_or_else(|p| p.into_inner());
    g.ctl[index].kill_done
}
