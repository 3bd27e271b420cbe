//! Virtual time: [`SimTime`] (an instant) and [`SimDuration`] (a span), both in
//! integer nanoseconds.
//!
//! Time is never read from the system: the engine passes `now` into every
//! component, as smoltcp does. All arithmetic is integer; `as_secs_f64` exists
//! for display and reports only.

use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;
const NANOS_PER_MINUTE: u64 = 60 * NANOS_PER_SEC;

/// An instant of simulated time: nanoseconds since the start of the run.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct SimTime(pub u64);

/// A span of simulated time in nanoseconds.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct SimDuration(pub u64);

impl SimTime {
    /// The start of the run.
    pub const ZERO: SimTime = SimTime(0);
    /// The largest representable instant (about 584 years).
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// Nanoseconds since the start of the run.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the start of the run as a float. For display and
    /// reporting only; never use it in a scheduling decision.
    #[inline]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }

    /// `self - other`, or [`SimDuration::ZERO`] if `other` is later.
    #[inline]
    pub const fn saturating_sub(self, other: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(other.0))
    }

    /// `self + d`, or `None` on overflow.
    #[inline]
    pub const fn checked_add(self, d: SimDuration) -> Option<SimTime> {
        match self.0.checked_add(d.0) {
            Some(t) => Some(SimTime(t)),
            None => None,
        }
    }

    /// `self + d`, clamped to [`SimTime::MAX`].
    #[inline]
    pub const fn saturating_add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}

impl SimDuration {
    /// No time at all.
    pub const ZERO: SimDuration = SimDuration(0);
    /// The largest representable span.
    pub const MAX: SimDuration = SimDuration(u64::MAX);

    /// A span of `ns` nanoseconds.
    #[inline]
    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }

    /// A span of `us` microseconds. Panics on overflow.
    #[inline]
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(mul_or_panic(us, NANOS_PER_MICRO))
    }

    /// A span of `ms` milliseconds. Panics on overflow.
    #[inline]
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(mul_or_panic(ms, NANOS_PER_MILLI))
    }

    /// A span of `s` seconds. Panics on overflow.
    #[inline]
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(mul_or_panic(s, NANOS_PER_SEC))
    }

    /// The span in nanoseconds.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The span in seconds as a float. For display and reporting only.
    #[inline]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }

    /// `self * k`, clamped to [`SimDuration::MAX`].
    #[inline]
    pub const fn saturating_mul(self, k: u64) -> Self {
        SimDuration(self.0.saturating_mul(k))
    }

    /// `self + other`, clamped to [`SimDuration::MAX`].
    #[inline]
    pub const fn saturating_add(self, other: SimDuration) -> Self {
        SimDuration(self.0.saturating_add(other.0))
    }

    /// `self - other`, or zero if `other` is longer.
    #[inline]
    pub const fn saturating_sub(self, other: SimDuration) -> Self {
        SimDuration(self.0.saturating_sub(other.0))
    }

    /// `self + other`, or `None` on overflow.
    #[inline]
    pub const fn checked_add(self, other: SimDuration) -> Option<Self> {
        match self.0.checked_add(other.0) {
            Some(ns) => Some(SimDuration(ns)),
            None => None,
        }
    }

    /// `self << n` (that is `self * 2^n`), or `None` if any bit would be lost.
    ///
    /// Used for exponential backoff (`timeout << num_timeout`), where the
    /// plain `<<` operator silently drops high bits and panics for `n >= 64`.
    #[inline]
    pub const fn checked_shl(self, n: u32) -> Option<Self> {
        if self.0 == 0 {
            return Some(SimDuration::ZERO);
        }
        if n >= 64 || self.0.leading_zeros() < n {
            return None;
        }
        Some(SimDuration(self.0 << n))
    }

    /// Parses a human duration: an unsigned decimal number followed by a unit
    /// (`ns`, `us`, `ms`, `s`, `m` for minutes), e.g. `"250ms"`, `"1.5s"`,
    /// `"10us"`, `"2m"`. A bare `"0"` is accepted.
    ///
    /// Arithmetic is exact integer arithmetic on the digits: `"1.5s"` is
    /// exactly 1 500 000 000 ns. Fractions finer than one nanosecond, negative
    /// values and values above `u64::MAX` ns are rejected.
    pub fn parse(text: &str) -> Result<SimDuration, DurationParseError> {
        let err = |kind| DurationParseError {
            input: text.to_owned(),
            kind,
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(err(DurationErrorKind::Empty));
        }
        if s.starts_with('-') {
            return Err(err(DurationErrorKind::Negative));
        }
        let number_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(number_len);
        let unit = unit.trim_start();
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(err(DurationErrorKind::BadNumber));
        }
        if number.ends_with('.') {
            return Err(err(DurationErrorKind::BadNumber));
        }
        let (unit_ns, frac_digits_max) = match unit {
            "ns" => (1, 0),
            "us" | "µs" => (NANOS_PER_MICRO, 3),
            "ms" => (NANOS_PER_MILLI, 6),
            "s" => (NANOS_PER_SEC, 9),
            // 60e9 = 6 * 10^10, so ten decimal places are exact.
            "m" | "min" => (NANOS_PER_MINUTE, 10),
            "" => {
                if number.bytes().all(|b| b == b'0' || b == b'.') {
                    return Ok(SimDuration::ZERO);
                }
                return Err(err(DurationErrorKind::MissingUnit));
            }
            _ => return Err(err(DurationErrorKind::UnknownUnit(unit.to_owned()))),
        };
        let frac_trimmed = frac_part.trim_end_matches('0');
        if frac_trimmed.len() > frac_digits_max {
            return Err(err(DurationErrorKind::TooPrecise { frac_digits_max }));
        }
        let overflow = || err(DurationErrorKind::Overflow);
        let mut int_value: u64 = 0;
        for b in int_part.bytes() {
            int_value = int_value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(overflow)?;
        }
        let mut total = int_value.checked_mul(unit_ns).ok_or_else(overflow)?;
        // Fractional part: digits * unit_ns / 10^len, exact because len is
        // bounded so that 10^len divides unit_ns.
        let mut frac_value: u64 = 0;
        for b in frac_trimmed.bytes() {
            frac_value = frac_value * 10 + u64::from(b - b'0');
        }
        let scale = 10u64.pow(frac_trimmed.len() as u32);
        debug_assert_eq!(unit_ns % scale, 0);
        let frac_ns = frac_value
            .checked_mul(unit_ns / scale)
            .ok_or_else(overflow)?;
        total = total.checked_add(frac_ns).ok_or_else(overflow)?;
        Ok(SimDuration(total))
    }
}

const fn mul_or_panic(a: u64, b: u64) -> u64 {
    match a.checked_mul(b) {
        Some(v) => v,
        None => panic!("SimDuration overflow"),
    }
}

/// Why [`SimDuration::parse`] rejected its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationParseError {
    input: String,
    kind: DurationErrorKind,
}

impl DurationParseError {
    /// The rejected input text.
    pub fn input(&self) -> &str {
        &self.input
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DurationErrorKind {
    Empty,
    Negative,
    BadNumber,
    MissingUnit,
    UnknownUnit(String),
    TooPrecise { frac_digits_max: usize },
    Overflow,
}

impl fmt::Display for DurationParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid duration {:?}: ", self.input)?;
        match &self.kind {
            DurationErrorKind::Empty => write!(f, "empty"),
            DurationErrorKind::Negative => write!(f, "durations cannot be negative"),
            DurationErrorKind::BadNumber => write!(f, "expected a decimal number such as 250 or 1.5"),
            DurationErrorKind::MissingUnit => {
                write!(f, "missing unit; expected a number followed by ns, us, ms, s or m (e.g. \"250ms\")")
            }
            DurationErrorKind::UnknownUnit(u) => {
                write!(f, "unknown unit {u:?}; expected ns, us, ms, s or m (minutes)")
            }
            DurationErrorKind::TooPrecise { frac_digits_max: 0 } => {
                write!(f, "nanoseconds cannot have a fractional part")
            }
            DurationErrorKind::TooPrecise { frac_digits_max } => write!(
                f,
                "too many decimal places for this unit (at most {frac_digits_max}; the resolution is 1ns)"
            ),
            DurationErrorKind::Overflow => write!(f, "too large (the maximum is about 584 years)"),
        }
    }
}

impl std::error::Error for DurationParseError {}

impl core::str::FromStr for SimDuration {
    type Err = DurationParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SimDuration::parse(s)
    }
}

/// The panic of the time operators, out of line so that the operators
/// themselves stay a few instructions and inline everywhere.
#[cold]
#[inline(never)]
#[track_caller]
fn arith_panic(what: &str, a: u64, op: &str, b: u64) -> ! {
    panic!("{what}: {a} ns {op} {b} ns")
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    /// Panics on overflow.
    #[inline]
    fn add(self, d: SimDuration) -> SimTime {
        match self.checked_add(d) {
            Some(t) => t,
            None => arith_panic("SimTime overflow", self.0, "+", d.0),
        }
    }
}

impl AddAssign<SimDuration> for SimTime {
    #[inline]
    fn add_assign(&mut self, d: SimDuration) {
        *self = *self + d;
    }
}

impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    /// Panics if `other` is later than `self`.
    #[inline]
    fn sub(self, other: SimTime) -> SimDuration {
        match self.0.checked_sub(other.0) {
            Some(ns) => SimDuration(ns),
            None => arith_panic("negative SimDuration", self.0, "-", other.0),
        }
    }
}

impl Add for SimDuration {
    type Output = SimDuration;
    /// Panics on overflow.
    #[inline]
    fn add(self, other: SimDuration) -> SimDuration {
        match self.checked_add(other) {
            Some(d) => d,
            None => arith_panic("SimDuration overflow", self.0, "+", other.0),
        }
    }
}

impl AddAssign for SimDuration {
    #[inline]
    fn add_assign(&mut self, other: SimDuration) {
        *self = *self + other;
    }
}

impl Sub for SimDuration {
    type Output = SimDuration;
    /// Panics if `other` is longer than `self`.
    #[inline]
    fn sub(self, other: SimDuration) -> SimDuration {
        match self.0.checked_sub(other.0) {
            Some(ns) => SimDuration(ns),
            None => arith_panic("negative SimDuration", self.0, "-", other.0),
        }
    }
}

impl SubAssign for SimDuration {
    #[inline]
    fn sub_assign(&mut self, other: SimDuration) {
        *self = *self - other;
    }
}

impl fmt::Display for SimTime {
    /// Seconds with nine decimals: `"1.000000000s"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / NANOS_PER_SEC,
            self.0 % NANOS_PER_SEC
        )
    }
}

impl fmt::Display for SimDuration {
    /// The largest unit not exceeding the value, with the exact fraction and
    /// no trailing zeros: `"250ms"`, `"1.5s"`, `"10us"`, `"7ns"`, `"0s"`.
    /// The output parses back to the same value with [`SimDuration::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns == 0 {
            return f.write_str("0s");
        }
        let (unit_ns, digits, unit) = if ns >= NANOS_PER_SEC {
            (NANOS_PER_SEC, 9, "s")
        } else if ns >= NANOS_PER_MILLI {
            (NANOS_PER_MILLI, 6, "ms")
        } else if ns >= NANOS_PER_MICRO {
            (NANOS_PER_MICRO, 3, "us")
        } else {
            (1, 0, "ns")
        };
        let whole = ns / unit_ns;
        let mut frac = ns % unit_ns;
        if frac == 0 {
            return write!(f, "{whole}{unit}");
        }
        let mut width = digits;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, "{whole}.{frac:0width$}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_good_inputs() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("0.0", 0),
            ("0s", 0),
            ("250ms", 250_000_000),
            ("1.5s", 1_500_000_000),
            ("10us", 10_000),
            ("10µs", 10_000),
            ("100ns", 100),
            ("2m", 120_000_000_000),
            ("1.5m", 90_000_000_000),
            ("0.000000001s", 1),
            ("1.000000000s", 1_000_000_000),
            ("1.250ms", 1_250_000),
            (".5s", 500_000_000),
            ("3 ms", 3_000_000),
            (" 7ns ", 7),
            ("18446744073709551615ns", u64::MAX),
        ];
        for &(text, ns) in cases {
            assert_eq!(SimDuration::parse(text), Ok(SimDuration(ns)), "{text}");
        }
    }

    #[test]
    fn parse_bad_inputs_explain_themselves() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("-1s", "negative"),
            ("5", "missing unit"),
            ("5 parsecs", "unknown unit"),
            ("1.5ns", "fractional"),
            ("0.0000000001s", "too many decimal places"),
            ("1.0001us", "too many decimal places"),
            ("18446744073709551616ns", "too large"),
            ("18446744074s", "too large"),
            ("1..5s", "decimal number"),
            ("1.s", "decimal number"),
            ("ms", "decimal number"),
            ("s1", "decimal number"),
        ];
        for &(text, needle) in cases {
            let e = SimDuration::parse(text).expect_err(text);
            let msg = e.to_string();
            assert!(msg.contains(needle), "{text}: {msg}");
            assert!(msg.contains(&format!("{text:?}")), "{msg}");
        }
    }

    #[test]
    fn display_forms_round_trip() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (7, "7ns"),
            (10_000, "10us"),
            (250_000_000, "250ms"),
            (1_500_000_000, "1.5s"),
            (1_000_001, "1.000001ms"),
            (120_000_000_000, "120s"),
            (u64::MAX, "18446744073.709551615s"),
        ];
        for &(ns, text) in cases {
            assert_eq!(SimDuration(ns).to_string(), text);
            assert_eq!(SimDuration::parse(text), Ok(SimDuration(ns)));
        }
        assert_eq!(SimTime(1_000_000_000).to_string(), "1.000000000s");
        assert_eq!(SimTime(1_234).to_string(), "0.000001234s");
    }

    #[test]
    fn arithmetic() {
        let t = SimTime(10) + SimDuration(5);
        assert_eq!(t, SimTime(15));
        assert_eq!(t - SimTime(10), SimDuration(5));
        assert_eq!(SimTime(3).saturating_sub(SimTime(5)), SimDuration::ZERO);
        assert_eq!(SimTime(u64::MAX).checked_add(SimDuration(1)), None);
        assert_eq!(
            SimDuration::from_millis(1).saturating_mul(u64::MAX),
            SimDuration::MAX
        );
        assert_eq!(
            SimDuration::from_secs(1).checked_shl(3),
            Some(SimDuration::from_secs(8))
        );
        assert_eq!(SimDuration::from_secs(1).checked_shl(40), None);
        assert_eq!(SimDuration(1).checked_shl(63), Some(SimDuration(1 << 63)));
        assert_eq!(SimDuration(1).checked_shl(64), None);
        assert_eq!(SimDuration::ZERO.checked_shl(200), Some(SimDuration::ZERO));
        assert_eq!(SimDuration(3).max(SimDuration(4)), SimDuration(4));
    }

    #[test]
    #[should_panic(expected = "negative SimDuration")]
    fn negative_difference_panics() {
        let _ = SimTime(1) - SimTime(2);
    }
}
