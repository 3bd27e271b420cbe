//! Arrival schedules, drawn before the run from the spec's seed so that
//! repeated kernel runs see the same connection start times.
//!
//! The draws mirror the simulator's client generator
//! (`sim-reuseport`'s runner as of this crate's creation): population `i`
//! draws from stream `("arrivals", i)` of `RngStreams::new(seed)`, one
//! draw for the next arrival and then one for the connection's ISN, so a
//! Poisson population gets the same start times as in the simulator with
//! the same seed. If that generator changes, pass the simulator's times
//! as [`ArrivalProcess::Schedule`] instead.

use sim_core::{exponential_ns, uniform_below, RngStreams, SimDuration, SimTime};

use crate::spec::{ArrivalProcess, ClientSpec};

/// The start times of population `index`.
pub fn schedule(seed: u64, index: usize, c: &ClientSpec) -> Vec<SimTime> {
    if let ArrivalProcess::Schedule(times) = &c.arrival {
        return times.clone();
    }
    let mut rng = RngStreams::new(seed).stream("arrivals", index as u64);
    let burst = matches!(c.arrival, ArrivalProcess::Burst { .. });
    let mut out = Vec::new();
    if !(c.start < c.stop || burst) {
        return out;
    }
    let mut t = c.start;
    let mut issued: u64 = 0;
    loop {
        out.push(t);
        let next = match &c.arrival {
            ArrivalProcess::Constant { rate } => {
                Some(t + SimDuration::from_nanos((1_000_000_000 / rate).max(1)))
            }
            ArrivalProcess::Poisson { rate } => Some(
                t + SimDuration::from_nanos(
                    exponential_ns(&mut rng, (1_000_000_000 / rate).max(1)).max(1),
                ),
            ),
            ArrivalProcess::Burst { count, spacing } => {
                (issued + 1 < u64::from(*count)).then(|| t + *spacing)
            }
            ArrivalProcess::Ramp { from_rate, to_rate } => {
                let span = c.stop.saturating_sub(c.start).as_nanos().max(1);
                let pos = t.saturating_sub(c.start).as_nanos();
                let rate = if to_rate >= from_rate {
                    from_rate + ((to_rate - from_rate) as u128 * pos as u128 / span as u128) as u64
                } else {
                    from_rate - ((from_rate - to_rate) as u128 * pos as u128 / span as u128) as u64
                };
                Some(t + SimDuration::from_nanos(1_000_000_000 / rate.max(1)))
            }
            ArrivalProcess::Schedule(_) => unreachable!("handled above"),
        };
        issued += 1;
        // The simulator draws the connection's ISN from the same stream.
        let _isn = uniform_below(&mut rng, 1 << 32);
        match next {
            Some(n) if burst || n < c.stop => t = n,
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(arrival: ArrivalProcess, start_ms: u64, stop_ms: u64) -> ClientSpec {
        ClientSpec {
            name: "c".into(),
            host: sim_core::HostId(0),
            target: "127.0.0.1:1".parse().unwrap(),
            sources: vec!["127.0.0.1".parse().unwrap()],
            arrival,
            start: SimTime(start_ms * 1_000_000),
            stop: SimTime(stop_ms * 1_000_000),
            request_bytes: 1,
            fast_open: false,
        }
    }

    #[test]
    fn shapes() {
        let c = client(ArrivalProcess::Constant { rate: 100 }, 0, 1000);
        let s = schedule(1, 0, &c);
        assert_eq!(s.len(), 100);
        assert_eq!(s[1], SimTime(10_000_000));
        let b = client(
            ArrivalProcess::Burst {
                count: 25,
                spacing: SimDuration::from_millis(1),
            },
            5,
            5,
        );
        let s = schedule(1, 0, &b);
        assert_eq!(s.len(), 25);
        assert_eq!(s[24], SimTime(29_000_000));
        let p = client(ArrivalProcess::Poisson { rate: 500 }, 0, 4000);
        let s1 = schedule(7, 0, &p);
        assert_eq!(s1, schedule(7, 0, &p), "same seed, same schedule");
        assert_ne!(s1, schedule(8, 0, &p));
        assert_ne!(
            s1,
            schedule(7, 1, &p),
            "populations draw from their own streams"
        );
        assert!((1700..2300).contains(&s1.len()), "{}", s1.len());
        assert!(s1.windows(2).all(|w| w[0] < w[1]));
        let r = client(
            ArrivalProcess::Ramp {
                from_rate: 100,
                to_rate: 1000,
            },
            0,
            1000,
        );
        let s = schedule(1, 0, &r);
        assert!((450..600).contains(&s.len()), "{}", s.len());
    }
}
