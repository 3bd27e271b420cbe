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

/// A duration from nanoseconds.
pub fn dur(ns: u64) -> SimDuration {
    SimDuration::from_nanos(ns)
}
