//! `sim-core`: the deterministic discrete-event engine under reuseport-sim.
//!
//! It knows nothing about TCP sockets or scenario files. It provides:
//!
//! - [`time`]: virtual time in integer nanoseconds ([`SimTime`],
//!   [`SimDuration`]); never the wall clock.
//! - [`queue`]: the event queue ([`EventQueue`]), earliest first, FIFO among
//!   equal times.
//! - [`timer`]: lazily cancelled timers ([`Timer`]) so the queue holds about
//!   one entry per entity.
//! - [`rng`]: named, independent RNG streams ([`RngStreams`]) and integer
//!   probabilities ([`Probability`]).
//! - [`packet`]: `Copy` TCP segments ([`Packet`], [`TcpFlags`],
//!   [`FourTuple`]).
//! - [`topology`]: hosts, links, routes and fault injection ([`Network`]).
//! - [`tuple_map`]: connection tables keyed by 4-tuple ([`TupleMap`]),
//!   with small IPv4 entries.
//! - [`wheel`]: the kernel timer wheel's granularity ([`TimerModel`]):
//!   when a TCP timer armed for a timeout in jiffies really fires.
//! - [`trace`]: run digests ([`Digest`]) and JSON-lines traces
//!   ([`TraceWriter`]).
//!
//! Determinism by construction: every source of variation is the seed; no
//! `HashMap` iteration, no threads, no ambient time.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod fifo;
pub mod packet;
pub mod pcap;
pub mod queue;
pub mod rng;
pub mod time;
pub mod timer;
pub mod topology;
pub mod trace;
pub mod tuple_map;
pub mod wheel;

pub use fifo::{ChunkPool, ChunkedFifo};
pub use packet::{FourTuple, Packet, TcpFlags};
pub use pcap::PcapWriter;
pub use queue::EventQueue;
pub use rng::{exponential_ns, uniform_below, Probability, RngStreams, SimRng};
pub use time::{DurationParseError, SimDuration, SimTime};
pub use timer::{horizon_check, Timer, TimerArm, TimerFire, HORIZON_GRID};
/// Gives back the memory of a peak: a hash table keeps the capacity of its
/// largest size, and a sparse table costs cache misses on every lookup.
/// Shrinks a table more than four times larger than needed (and larger than
/// a floor of 1024 entries) to 1.5 times its size: well below the trigger,
/// since a table shrunk to its exact size regrows at once and would shrink
/// again at the next call. Only for tables whose iteration order nothing
/// depends on.
pub fn shrink_after_peak<K: std::hash::Hash + Eq, V>(table: &mut rustc_hash::FxHashMap<K, V>) {
    let len = table.len();
    if table.capacity() > 4 * len.max(1024) {
        table.shrink_to(len + len / 2);
    }
}

pub use topology::{
    Delivery, Direction, DropReason, Fault, FilterId, FilterMatch, Hop, HostId, LinkId, LinkParams,
    Network, NetworkStats, PacketFilter, TopologyBuilder,
};
pub use trace::{Digest, TraceWriter};
pub use tuple_map::TupleMap;
pub use wheel::{calc_index, calc_wheel_index, Hz, Jiffies, TimerMode, TimerModel};
