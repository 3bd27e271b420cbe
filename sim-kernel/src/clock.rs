//! The wall clock of a kernel run: `CLOCK_MONOTONIC` nanoseconds, and
//! scenario time as an offset from the run's start.

use sim_core::{SimDuration, SimTime};

/// A `CLOCK_MONOTONIC` reading in nanoseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mono(pub u64);

/// Reads `CLOCK_MONOTONIC`.
///
/// This is the crate's only clock read. The workspace bans
/// `Instant::now`/`SystemTime::now` so that no wall time leaks into the
/// deterministic simulator; the kernel backend runs in real time by
/// definition, and reads the same clock `Instant::now` uses, raw, because
/// `timerfd` and `clock_nanosleep` take absolute `CLOCK_MONOTONIC`
/// deadlines.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Mono {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Mono(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

impl Mono {
    /// As a `timespec`.
    pub fn timespec(self) -> libc::timespec {
        libc::timespec {
            tv_sec: (self.0 / 1_000_000_000) as libc::time_t,
            tv_nsec: (self.0 % 1_000_000_000) as libc::c_long,
        }
    }
}

/// The run's time origin: scenario time 0 on the monotonic clock.
#[derive(Copy, Clone, Debug)]
pub struct Epoch(pub Mono);

impl Epoch {
    /// The monotonic instant of scenario time `t`.
    pub fn at(self, t: SimTime) -> Mono {
        Mono(self.0 .0 + t.as_nanos())
    }

    /// Scenario time now (0 before the start).
    pub fn elapsed(self) -> SimTime {
        self.since(now())
    }

    /// Scenario time of `m` (0 before the start).
    pub fn since(self, m: Mono) -> SimTime {
        SimTime(m.0.saturating_sub(self.0 .0))
    }
}

/// Sleeps until `deadline` (absolute `CLOCK_MONOTONIC`), or returns at once
/// if it is past.
pub fn sleep_until(deadline: Mono) {
    let ts = deadline.timespec();
    loop {
        // SAFETY: valid timespec; TIMER_ABSTIME with a null remainder.
        let r = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if r != libc::EINTR {
            return;
        }
    }
}

/// Sets this thread's timer slack to 1 ns (default 50 µs), so timed
/// wake-ups of the link emulator, the workers and the timeline are not
/// coalesced late.
pub fn tight_timer_slack() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// Prepares a run thread: 1 ns timer slack, and `SCHED_FIFO` at `prio` if
/// `realtime`.
pub fn thread_setup(realtime: bool, prio: i32) {
    tight_timer_slack();
    if realtime {
        let _ = set_realtime(prio);
    }
}

/// A duration from nanoseconds.
pub fn dur(ns: u64) -> SimDuration {
    SimDuration::from_nanos(ns)
}

/// Scheduling priorities of the run's threads under `SCHED_FIFO`: the link
/// emulator above the endpoints, so packets leave on time even when the
/// endpoints are busy.
pub mod prio {
    /// The link emulator.
    pub const FORWARDER: i32 = 30;
    /// The timeline thread.
    pub const TIMELINE: i32 = 25;
    /// Workers, client engines and the sampler.
    pub const ENDPOINT: i32 = 20;
}

/// Puts the calling thread under `SCHED_FIFO` at `prio` and returns the
/// previous policy and priority (to restore with [`restore_scheduling`]),
/// or `None` if the kernel refused. Every run thread blocks in epoll or a
/// sleep, so none can spin; the kernel's RT throttling (95 % by default)
/// bounds them anyway.
pub fn set_realtime(prio: i32) -> Option<(i32, i32)> {
    // SAFETY: plain syscalls on the calling thread (pid 0).
    unsafe {
        let old_policy = libc::sched_getscheduler(0);
        let mut old = libc::sched_param { sched_priority: 0 };
        libc::sched_getparam(0, &mut old);
        let p = libc::sched_param {
            sched_priority: prio,
        };
        if libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) != 0 {
            return None;
        }
        Some((old_policy, old.sched_priority))
    }
}

/// Restores what [`set_realtime`] returned.
pub fn restore_scheduling(old: (i32, i32)) {
    let p = libc::sched_param {
        sched_priority: old.1,
    };
    // SAFETY: plain syscall on the calling thread.
    unsafe { libc::sched_setscheduler(0, old.0, &p) };
}

/// The run's start, published once every thread has been spawned (thread
/// creation under load can take longer than the start lead), or cancelled
/// if setup fails.
#[derive(Debug, Default)]
pub struct StartCell {
    state: std::sync::Mutex<Option<Option<Epoch>>>,
    cond: std::sync::Condvar,
}

impl StartCell {
    /// Publishes the epoch.
    pub fn start(&self, epoch: Epoch) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(Some(epoch));
        self.cond.notify_all();
    }

    /// Releases waiting threads without a start (they return at once).
    pub fn cancel(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_none() {
            *s = Some(None);
        }
        self.cond.notify_all();
    }

    /// Waits for [`StartCell::start`] (`Some`) or [`StartCell::cancel`]
    /// (`None`).
    pub fn wait(&self) -> Option<Epoch> {
        let g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let g = self
            .cond
            .wait_while(g, |s| s.is_none())
            .unwrap_or_else(|p| p.into_inner());
        g.expect("set")
    }
}
