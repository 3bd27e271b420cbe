//! The link emulator: one thread moving packets between the hosts' TUN
//! devices through `sim_core`'s [`Network`], so latency, jitter, loss,
//! bandwidth (serialization + FIFO), link-down windows, parameter changes
//! and packet filters follow exactly the simulator's per-hop model (see
//! `sim_core::topology`), including its per-direction seeded RNG streams.
//!
//! For each packet read from a host's TUN at scenario time `t` (the read
//! time): parse its IP/TCP headers, ask [`Network::transmit`] at `t`, and
//! either count the drop or keep the packet in a heap until its arrival
//! time, when it is written into the destination host's TUN. A
//! `CLOCK_MONOTONIC` timerfd with an absolute deadline wakes the thread for
//! the earliest due packet; the thread's timer slack is 1 ns. Lateness
//! (write time − due time) is measured for every packet and reported.
//!
//! Non-TCP packets (IPv6 router solicitations, MLD reports) are dropped and
//! counted: the scenarios only carry TCP.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sim_core::{Delivery, DropReason, Network, SimTime};

use crate::clock::{self, Epoch};
use crate::pcap::RawPcap;
use crate::result::{ForwarderStats, LatenessStats};
use crate::sys::{self, Epoll};

const TOKEN_STOP: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;
const TOKEN_CAPTURE: u64 = 1 << 32;

/// A packet waiting for its arrival time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at: SimTime,
    seq: u64,
    dst: usize,
    bytes: Vec<u8>,
}

/// What the forwarder needs; the TUN fds stay owned by the caller, who
/// must join the thread before closing them.
pub struct ForwarderSetup {
    /// The link model, faults already added.
    pub network: Network,
    /// TUN fd of each host (by host index), `None` for hosts without one.
    pub tuns: Vec<Option<RawFd>>,
    /// Packet sockets on `lo` whose outgoing packets go to the pcap only.
    pub captures: Vec<OwnedFd>,
    /// Where to write packets, if anywhere.
    pub pcap: Option<RawPcap>,
    /// Scenario time 0, published when the run starts.
    pub start: Arc<clock::StartCell>,
    /// Run under `SCHED_FIFO`.
    pub realtime: bool,
}

/// The running forwarder.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    wake: OwnedFd,
    handle: Option<std::thread::JoinHandle<(ForwarderStats, Option<RawPcap>)>>,
}

impl Forwarder {
    /// Starts the thread.
    pub fn spawn(setup: ForwarderSetup) -> std::io::Result<Forwarder> {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = sys::eventfd()?;
        let wake_fd = wake.as_raw_fd();
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("rpsim-forwarder".into())
            .spawn(move || run(setup, &stop2, wake_fd))?;
        Ok(Forwarder {
            stop,
            wake,
            handle: Some(handle),
        })
    }

    /// Stops the thread and returns its statistics and pcap writer.
    pub fn finish(mut self) -> (ForwarderStats, Option<RawPcap>) {
        self.stop_and_join().unwrap_or_default()
    }

    fn stop_and_join(&mut self) -> Option<(ForwarderStats, Option<RawPcap>)> {
        self.stop.store(true, Ordering::SeqCst);
        sys::eventfd_signal(self.wake.as_raw_fd());
        self.handle.take().and_then(|h| h.join().ok())
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

fn run(s: ForwarderSetup, stop: &AtomicBool, wake: RawFd) -> (ForwarderStats, Option<RawPcap>) {
    clock::thread_setup(s.realtime, clock::prio::FORWARDER);
    let Some(epoch) = s.start.wait() else {
        return (ForwarderStats::default(), s.pcap);
    };
    forward(s, epoch, stop, wake)
}

fn forward(
    mut s: ForwarderSetup,
    epoch: Epoch,
    stop: &AtomicBool,
    wake: RawFd,
) -> (ForwarderStats, Option<RawPcap>) {
    let mut stats = ForwarderStats::default();
    let mut lateness: Vec<u64> = Vec::new();
    let Ok(ep) = Epoll::new() else {
        return (stats, s.pcap);
    };
    let timer = sys::timerfd().expect("timerfd");
    let _ = ep.add(wake, libc::EPOLLIN as u32, TOKEN_STOP);
    let _ = ep.add(timer.as_raw_fd(), libc::EPOLLIN as u32, TOKEN_TIMER);
    for (h, fd) in s.tuns.iter().enumerate() {
        if let Some(fd) = fd {
            let _ = ep.add(*fd, libc::EPOLLIN as u32, h as u64);
        }
    }
    for (i, fd) in s.captures.iter().enumerate() {
        let _ = ep.add(
            fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            TOKEN_CAPTURE + i as u64,
        );
    }
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut events = Vec::with_capacity(64);
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        if ep.wait(&mut events, -1).is_err() {
            break;
        }
        for ev in events.iter() {
            let token = ev.u64;
            match token {
                TOKEN_STOP => sys::eventfd_drain(wake),
                TOKEN_TIMER => sys::timerfd_ack(timer.as_raw_fd()),
                t if t >= TOKEN_CAPTURE => {
                    let fd = s.captures[(t - TOKEN_CAPTURE) as usize].as_raw_fd();
                    capture_lo(fd, &mut buf, epoch, &mut s.pcap);
                }
                h => {
                    let fd = s.tuns[h as usize].expect("registered TUN");
                    loop {
                        // SAFETY: valid buffer.
                        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                        if n <= 0 {
                            break;
                        }
                        let pkt = &buf[..n as usize];
                        let t = epoch.elapsed();
                        stats.read += 1;
                        if let Some(w) = s.pcap.as_mut() {
                            let _ = w.write(t, pkt);
                        }
                        let Some(p) = crate::packet::parse_tcp(pkt) else {
                            stats.non_tcp_dropped += 1;
                            continue;
                        };
                        stats.tcp += 1;
                        match s.network.transmit(t, &p) {
                            Delivery::Arrive { at, dst_host, .. } => {
                                seq += 1;
                                heap.push(Reverse(Pending {
                                    at,
                                    seq,
                                    dst: dst_host.0 as usize,
                                    bytes: pkt.to_vec(),
                                }));
                            }
                            Delivery::Dropped { reason, .. } => match reason {
                                DropReason::Loss => stats.lost += 1,
                                DropReason::LinkDown => stats.link_down += 1,
                                DropReason::Filter(_) => stats.filtered += 1,
                                DropReason::NoRoute => stats.no_route += 1,
                            },
                        }
                    }
                }
            }
        }
        // Deliver everything due, then sleep until the next one.
        let now = epoch.elapsed();
        while heap.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Reverse(p) = heap.pop().expect("peeked");
            let late = epoch.elapsed().saturating_sub(p.at);
            match s.tuns.get(p.dst).copied().flatten() {
                Some(fd) => {
                    // SAFETY: valid buffer.
                    let r = unsafe { libc::write(fd, p.bytes.as_ptr().cast(), p.bytes.len()) };
                    if r < 0 {
                        stats.write_errors += 1;
                    } else {
                        stats.delivered += 1;
                        lateness.push(late.as_nanos());
                    }
                }
                None => stats.no_route += 1,
            }
        }
        sys::timerfd_arm(
            timer.as_raw_fd(),
            heap.peek().map(|Reverse(p)| epoch.at(p.at)),
        );
    }
    stats.network = s.network.stats();
    stats.lateness = lateness_stats(&mut lateness);
    (stats, s.pcap)
}

/// Reads the packets of an `AF_PACKET` socket on `lo` into the pcap
/// (outgoing copies only: each loopback packet is seen leaving and
/// arriving).
fn capture_lo(fd: RawFd, buf: &mut [u8], epoch: Epoch, pcap: &mut Option<RawPcap>) {
    loop {
        // SAFETY: zeroed sockaddr_ll is a valid out buffer.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: valid buffers.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n <= 0 {
            return;
        }
        if sll.sll_pkttype == libc::PACKET_OUTGOING {
            if let Some(w) = pcap.as_mut() {
                let _ = w.write(epoch.elapsed(), &buf[..n as usize]);
            }
        }
    }
}

/// Percentiles of the lateness samples (nanoseconds).
pub fn lateness_stats(v: &mut [u64]) -> LatenessStats {
    if v.is_empty() {
        return LatenessStats::default();
    }
    v.sort_unstable();
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let sum: u128 = v.iter().map(|&x| u128::from(x)).sum();
    LatenessStats {
        count: v.len() as u64,
        p50: clock::dur(pick(0.5)),
        p99: clock::dur(pick(0.99)),
        max: clock::dur(*v.last().expect("non-empty")),
        mean: clock::dur((sum / v.len() as u128) as u64),
    }
}

/// An `AF_PACKET`/`SOCK_DGRAM` socket on `lo` of the calling thread's
/// namespace (IP packets without the link header), for the pcap.
pub fn open_lo_capture() -> std::io::Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain syscall.
    let fd = sys::owned(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    })?;
    // SAFETY: zeroed sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = crate::netlink::if_index("lo")? as i32;
    // SAFETY: valid address.
    sys::cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}
