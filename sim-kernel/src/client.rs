//! The client engine: one thread per client host, inside the host's
//! namespace, running every population of that host with non-blocking
//! sockets and epoll. Each arrival opens a connection from the next source
//! address (round robin, ephemeral port), writes the request once
//! connected (or with `TCP_FASTOPEN_CONNECT`, in the SYN), reads the
//! response until EOF and classifies the outcome from what the socket
//! reports.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sim_core::SimTime;

use crate::clock::{self, Epoch};
use crate::result::{ConnRecord, Outcome};
use crate::spec::ClientSpec;
use crate::sys::{self, cvt, Epoll};

/// One population as the engine runs it.
pub struct Population {
    /// Index in the spec.
    pub index: usize,
    /// Its spec.
    pub spec: ClientSpec,
    /// Start times.
    pub schedule: Vec<SimTime>,
}

/// Everything a client engine needs.
pub struct EngineSetup {
    /// The populations of one host.
    pub populations: Vec<Population>,
    /// Scenario time 0, published when the run starts.
    pub start: Arc<clock::StartCell>,
    /// When open connections become in flight (the run's duration).
    pub deadline: SimTime,
    /// Stops the engine early.
    pub stop: Arc<AtomicBool>,
    /// Wakes it (owned by the caller, who joins first).
    pub wake: RawFd,
    /// Run under `SCHED_FIFO`.
    pub realtime: bool,
}

/// What the engine hands back: records, and the sockets still open (closed
/// by the caller after it has read the counters).
pub struct EngineOutput {
    /// One per connection attempted.
    pub records: Vec<ConnRecord>,
    /// Sockets of in-flight connections.
    pub open: Vec<OwnedFd>,
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Sending { sent: usize },
    Receiving,
}

struct Conn {
    fd: OwnedFd,
    rec: usize,
    phase: Phase,
    started_mono: u64,
    request: usize,
}

const TOKEN_WAKE: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;

/// Runs the engine on the calling thread, which it moves into the
/// namespace `ns` (a [`Netns::dup_fd`](crate::netns::Netns::dup_fd)).
pub fn run_engine(ns: OwnedFd, s: EngineSetup) -> std::io::Result<EngineOutput> {
    crate::netns::enter_fd(&ns)?;
    clock::thread_setup(s.realtime, clock::prio::ENDPOINT);
    let Some(epoch) = s.start.wait() else {
        return Ok(EngineOutput {
            records: Vec::new(),
            open: Vec::new(),
        });
    };
    // Nothing starts before scenario time 0.
    clock::sleep_until(epoch.0);
    let ep = Epoll::new()?;
    let timer = sys::timerfd()?;
    ep.add(s.wake, libc::EPOLLIN as u32, TOKEN_WAKE)?;
    ep.add(timer.as_raw_fd(), libc::EPOLLIN as u32, TOKEN_TIMER)?;
    // Every arrival, in time order (stable: population order at ties).
    let mut arrivals: Vec<(SimTime, usize)> = s
        .populations
        .iter()
        .enumerate()
        .flat_map(|(p, pop)| pop.schedule.iter().map(move |&t| (t, p)))
        .collect();
    arrivals.sort_by_key(|&(t, p)| (t, p));
    let mut next_arrival = 0;
    let mut next_source = vec![0usize; s.populations.len()];
    let mut records: Vec<ConnRecord> = Vec::with_capacity(arrivals.len());
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = Vec::with_capacity(256);
    let mut buf = vec![0u8; 64 * 1024];
    let max_request = s
        .populations
        .iter()
        .map(|p| p.spec.request_bytes as usize)
        .max()
        .unwrap_or(0);
    let request = vec![b'q'; max_request];
    loop {
        let now = epoch.elapsed();
        if s.stop.load(Ordering::Relaxed) || now >= s.deadline {
            break;
        }
        while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= now {
            let (planned, p) = arrivals[next_arrival];
            next_arrival += 1;
            let pop = &s.populations[p];
            let src = pop.spec.sources[next_source[p] % pop.spec.sources.len()];
            next_source[p] += 1;
            let rec = records.len();
            let started = clock::now();
            records.push(ConnRecord {
                population: pop.index,
                planned,
                started: epoch.since(started),
                local: None,
                outcome: Outcome::InFlight,
                handshake: None,
                completion: None,
                response_bytes: 0,
                ended: s.deadline,
            });
            match open(src, pop.spec.target, pop.spec.fast_open) {
                Ok(fd) => {
                    records[rec].local = sys::local_addr(fd.as_raw_fd());
                    let slot = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    let mut c = Conn {
                        fd,
                        rec,
                        phase: Phase::Connecting,
                        started_mono: started.0,
                        request: pop.spec.request_bytes as usize,
                    };
                    if pop.spec.fast_open {
                        // connect() returned at once; the SYN leaves with
                        // the first write.
                        c.phase = Phase::Sending { sent: 0 };
                    }
                    ep.add(
                        c.fd.as_raw_fd(),
                        (libc::EPOLLOUT | libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
                        slot as u64,
                    )?;
                    let done = if pop.spec.fast_open {
                        step(
                            &mut c,
                            libc::EPOLLOUT as u32,
                            &ep,
                            slot,
                            &request,
                            &mut buf,
                            &mut records,
                            epoch,
                        )
                    } else {
                        false
                    };
                    if !done {
                        conns[slot] = Some(c);
                    }
                }
                Err(e) => {
                    let r = &mut records[rec];
                    r.outcome = classify(e.raw_os_error().unwrap_or(0));
                    r.ended = r.started;
                }
            }
        }
        let wake_at = arrivals
            .get(next_arrival)
            .map_or(s.deadline, |a| a.0.min(s.deadline));
        sys::timerfd_arm(timer.as_raw_fd(), Some(epoch.at(wake_at)));
        ep.wait(&mut events, -1)?;
        for ev in events.iter() {
            let (token, flags) = (ev.u64, ev.events);
            match token {
                TOKEN_WAKE => sys::eventfd_drain(s.wake),
                TOKEN_TIMER => sys::timerfd_ack(timer.as_raw_fd()),
                slot => {
                    let slot = slot as usize;
                    let Some(c) = conns.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    if step(c, flags, &ep, slot, &request, &mut buf, &mut records, epoch) {
                        conns[slot] = None;
                    }
                }
            }
        }
    }
    let open: Vec<OwnedFd> = conns.into_iter().flatten().map(|c| c.fd).collect();
    Ok(EngineOutput { records, open })
}

/// A non-blocking socket bound to `src` (ephemeral port, chosen at
/// connect time) and connecting to `dst`.
fn open(src: std::net::IpAddr, dst: SocketAddr, fast_open: bool) -> std::io::Result<OwnedFd> {
    let family = if dst.is_ipv4() {
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
    // Defer the port choice to connect(), which picks a port unique for
    // the 4-tuple instead of for the address.
    sys::setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
    let (sa, len) = sys::sockaddr(SocketAddr::new(src, 0));
    // SAFETY: valid address.
    cvt(unsafe { libc::bind(raw, (&sa as *const libc::sockaddr_storage).cast(), len) })?;
    if fast_open {
        sys::setsockopt_int(raw, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, 1)?;
    }
    let (sa, len) = sys::sockaddr(dst);
    // SAFETY: valid address.
    let r = unsafe { libc::connect(raw, (&sa as *const libc::sockaddr_storage).cast(), len) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(fd)
}

/// The outcome of an errno.
pub fn classify(errno: i32) -> Outcome {
    match errno {
        libc::ECONNREFUSED => Outcome::Refused,
        libc::ECONNRESET | libc::EPIPE => Outcome::Reset,
        libc::ETIMEDOUT => Outcome::TimedOut,
        e => Outcome::OtherError(e),
    }
}

fn so_error(fd: RawFd) -> i32 {
    sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR).unwrap_or(0)
}

/// Advances a connection on readiness `flags`; true when it has ended.
#[allow(clippy::too_many_arguments)]
fn step(
    c: &mut Conn,
    flags: u32,
    ep: &Epoll,
    slot: usize,
    request: &[u8],
    buf: &mut [u8],
    records: &mut [ConnRecord],
    epoch: Epoch,
) -> bool {
    let fd = c.fd.as_raw_fd();
    let now = clock::now();
    let elapsed = |n: u64| clock::dur(n.saturating_sub(c.started_mono));
    let finish = |rec: &mut ConnRecord, o: Outcome| {
        rec.outcome = o;
        rec.ended = epoch.since(now);
    };
    let rec = &mut records[c.rec];
    if let Phase::Connecting = c.phase {
        if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
            return false;
        }
        let err = so_error(fd);
        if err != 0 {
            finish(rec, classify(err));
            return true;
        }
        rec.handshake = Some(elapsed(now.0));
        c.phase = Phase::Sending { sent: 0 };
    }
    if let Phase::Sending { mut sent } = c.phase {
        while sent < c.request {
            // SAFETY: valid buffer; MSG_NOSIGNAL: EPIPE instead of SIGPIPE.
            let n = unsafe {
                libc::send(
                    fd,
                    request[sent..c.request].as_ptr().cast(),
                    c.request - sent,
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if e == libc::EAGAIN || e == libc::EINPROGRESS {
                    c.phase = Phase::Sending { sent };
                    return false;
                }
                let e = if e == libc::EPIPE && so_error(fd) != 0 {
                    so_error(fd)
                } else {
                    e
                };
                // A Fast Open SYN refused before any handshake.
                let o = if rec.handshake.is_none() && e == libc::ECONNREFUSED {
                    Outcome::Refused
                } else {
                    classify(e)
                };
                finish(rec, o);
                return true;
            }
            sent += n as usize;
        }
        if rec.handshake.is_none() {
            // Fast Open: the data is queued; count the handshake from here.
            rec.handshake = Some(elapsed(now.0));
        }
        c.phase = Phase::Receiving;
        let _ = ep.modify(fd, (libc::EPOLLIN | libc::EPOLLRDHUP) as u32, slot as u64);
    }
    if flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 == 0 {
        return false;
    }
    loop {
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            rec.response_bytes += n as u64;
            continue;
        }
        if n == 0 {
            if rec.response_bytes > 0 {
                rec.completion = Some(elapsed(now.0));
                finish(rec, Outcome::Completed);
            } else {
                finish(rec, Outcome::EofBeforeResponse);
            }
            return true;
        }
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if e == libc::EAGAIN {
            return false;
        }
        let o = if rec.handshake.is_none() && e == libc::ECONNREFUSED {
            Outcome::Refused
        } else {
            classify(e)
        };
        finish(rec, o);
        return true;
    }
}
