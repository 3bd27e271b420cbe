//! Periodic `INET_DIAG` samples of every listener's accept queue and of
//! each server's request sockets (SYN queue, per address and port: see
//! [`crate::diag`] for why not per listener).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sim_core::SimDuration;

use crate::clock::{self, Epoch, Mono};
use crate::diag::{DiagSocket, TCP_LISTEN, TCP_SYN_RECV};
use crate::result::QueueSample;
use crate::spec::ServerSpec;

/// What the sampler thread needs.
pub struct SamplerSetup {
    /// One diag socket per server host: `(host index, socket)`.
    pub sockets: Vec<(usize, DiagSocket)>,
    /// `(inode of the worker's own socket, worker index)`.
    pub inodes: Vec<(u64, usize)>,
    /// Number of workers.
    pub workers: usize,
    /// Servers (host and address).
    pub servers: Vec<ServerSpec>,
    /// Sampling interval.
    pub interval: SimDuration,
    /// Scenario time 0, published when the run starts.
    pub start: Arc<clock::StartCell>,
    /// Stop flag.
    pub stop: Arc<AtomicBool>,
    /// Run under `SCHED_FIFO`.
    pub realtime: bool,
}

/// Samples until stopped.
pub fn run_sampler(mut s: SamplerSetup) -> Vec<QueueSample> {
    clock::thread_setup(s.realtime, clock::prio::ENDPOINT);
    let mut out = Vec::new();
    let Some(epoch) = s.start.wait() else {
        return out;
    };
    clock::sleep_until(epoch.0);
    let mut next = epoch.0;
    while !s.stop.load(Ordering::Relaxed) {
        out.push(sample(&mut s, epoch));
        next = Mono(next.0 + s.interval.as_nanos().max(1));
        let now = clock::now();
        if next < now {
            next = now;
        }
        // Sleep in short slices to notice the stop flag.
        while !s.stop.load(Ordering::Relaxed) && clock::now() < next {
            clock::sleep_until(Mono(next.0.min(clock::now().0 + 20_000_000)));
        }
    }
    out
}

fn sample(s: &mut SamplerSetup, epoch: Epoch) -> QueueSample {
    let t = epoch.elapsed();
    let mut accept_queue = vec![None; s.workers];
    let mut syn_recv = vec![0u32; s.servers.len()];
    for (host, sock) in s.sockets.iter_mut() {
        let Ok(entries) = sock.listeners_and_requests() else {
            continue;
        };
        for e in entries {
            if e.state == TCP_LISTEN {
                if let Some(&(_, w)) = s.inodes.iter().find(|(i, _)| *i == e.inode) {
                    accept_queue[w] = Some(e.rqueue);
                }
            } else if e.state == TCP_SYN_RECV {
                let server = s.servers.iter().position(|sv| {
                    sv.host.0 as usize == *host
                        && sv.addr.port() == e.local.port()
                        && (sv.addr.ip().is_unspecified() || sv.addr.ip() == e.local.ip())
                });
                if let Some(i) = server {
                    syn_recv[i] += 1;
                }
            }
        }
    }
    QueueSample {
        t,
        accept_queue,
        syn_recv,
    }
}
