//! Seeded randomness: named independent sub-streams, integer probabilities,
//! and the few distributions the model needs.
//!
//! Every random decision draws from a stream named after what it decides
//! (`"link-loss"`, link 3) rather than from one global generator. Adding a
//! stream, or drawing more from one, never changes the draws of another, so
//! two runs that differ in one parameter see the same randomness everywhere
//! else (common random numbers), and a seed sweep compares like with like.

use rand_core::{RngCore, SeedableRng};
use xxhash_rust::xxh3::Xxh3;

use core::fmt;

/// The generator behind every stream: ChaCha with 8 rounds, fast and with a
/// portable, documented output sequence.
pub type SimRng = rand_chacha::ChaCha8Rng;

/// The root of all randomness of a run: a `u64` seed from which named
/// sub-streams are derived.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RngStreams {
    seed: u64,
}

impl RngStreams {
    /// Streams for the run seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        RngStreams { seed }
    }

    /// The run seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The independent sub-stream `(name, index)`, e.g. `("link-loss", 3)`.
    ///
    /// Its 256-bit ChaCha key is two XXH3-128 hashes (with different hash
    /// seeds) of the bytes `seed (u64 LE) | index (u64 LE) | name length
    /// (u64 LE) | name`. The length prefix keeps `("ab", ..)` and `("a", ..)`
    /// apart. The same `(seed, name, index)` always yields the same sequence,
    /// on every platform.
    pub fn stream(&self, name: &str, index: u64) -> SimRng {
        let hash = |hash_seed: u64| {
            let mut h = Xxh3::with_seed(hash_seed);
            h.update(&self.seed.to_le_bytes());
            h.update(&index.to_le_bytes());
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.digest128()
        };
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&hash(0x5eed_0001).to_le_bytes());
        key[16..].copy_from_slice(&hash(0x5eed_0002).to_le_bytes());
        SimRng::from_seed(key)
    }
}

const PPB_ONE: u32 = 1_000_000_000;

/// A probability in integer parts per billion (`0..=1_000_000_000`).
///
/// Scheduling decisions compare integers, never floats.
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
pub struct Probability {
    ppb: u32,
}

impl Probability {
    /// Probability 0.
    pub const NEVER: Probability = Probability { ppb: 0 };
    /// Probability 1.
    pub const ALWAYS: Probability = Probability { ppb: PPB_ONE };

    /// `num / den`, rounded to the nearest part per billion (halves round
    /// up). `None` if `den == 0` or `num > den`.
    pub fn from_ratio(num: u64, den: u64) -> Option<Self> {
        if den == 0 || num > den {
            return None;
        }
        let ppb = (u128::from(num) * u128::from(PPB_ONE) + u128::from(den) / 2) / u128::from(den);
        Some(Probability { ppb: ppb as u32 })
    }

    /// `ppm` parts per million; `None` above one million.
    pub fn from_ppm(ppm: u32) -> Option<Self> {
        Self::from_ppb(ppm.checked_mul(1_000)?)
    }

    /// `ppb` parts per billion; `None` above one billion.
    pub const fn from_ppb(ppb: u32) -> Option<Self> {
        if ppb > PPB_ONE {
            None
        } else {
            Some(Probability { ppb })
        }
    }

    /// The probability in parts per billion.
    #[inline]
    pub const fn as_ppb(self) -> u32 {
        self.ppb
    }

    /// The probability as a float, for display and reports only.
    pub fn as_f64(self) -> f64 {
        f64::from(self.ppb) / f64::from(PPB_ONE)
    }

    /// Parses `"0.5%"`, `"0.001"`, `"1/1000"`, `"250ppm"` or `"7ppb"`.
    ///
    /// Decimals are read digit by digit in integer arithmetic and must be
    /// exact in parts per billion (at most 9 decimal places for a fraction,
    /// 7 for a percentage); a ratio `a/b` is rounded to the nearest ppb as in
    /// [`Probability::from_ratio`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let fail = |why: &str| {
            Err(format!(
                "invalid probability {text:?}: {why}; expected a fraction in [0, 1] such as \"0.001\", \
                 a percentage such as \"0.5%\", a ratio such as \"1/1000\", or \"250ppm\""
            ))
        };
        if let Some((num, den)) = s.split_once('/') {
            let (Some(num), Some(den)) = (parse_u64(num.trim()), parse_u64(den.trim())) else {
                return fail("ratio terms must be unsigned integers");
            };
            if den == 0 {
                return fail("zero denominator");
            }
            return match Self::from_ratio(num, den) {
                Some(p) => Ok(p),
                None => fail("ratio above 1"),
            };
        }
        let (number, ppb_per_unit, frac_digits_max) = if let Some(n) = s.strip_suffix('%') {
            (n, 10_000_000u64, 7)
        } else if let Some(n) = s.strip_suffix("ppm") {
            (n, 1_000, 3)
        } else if let Some(n) = s.strip_suffix("ppb") {
            (n, 1, 0)
        } else {
            (s, u64::from(PPB_ONE), 9)
        };
        let number = number.trim();
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || number.ends_with('.') {
            return fail("missing number");
        }
        let Some(int_value) = (if int_part.is_empty() {
            Some(0)
        } else {
            parse_u64(int_part)
        }) else {
            return fail("not an unsigned decimal number");
        };
        if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
            return fail("not an unsigned decimal number");
        }
        let frac = frac_part.trim_end_matches('0');
        if frac.len() > frac_digits_max {
            return fail("more decimal places than parts-per-billion resolution allows");
        }
        let frac_value = frac
            .bytes()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
        let frac_ppb = frac_value * (ppb_per_unit / 10u64.pow(frac.len() as u32));
        let ppb = int_value
            .checked_mul(ppb_per_unit)
            .and_then(|v| v.checked_add(frac_ppb))
            .filter(|&v| v <= u64::from(PPB_ONE));
        match ppb {
            Some(ppb) => Ok(Probability { ppb: ppb as u32 }),
            None => fail("above 1"),
        }
    }

    /// Draws a Bernoulli trial: true with this probability.
    ///
    /// Always draws exactly one `u64`, also for [`Probability::NEVER`] and
    /// [`Probability::ALWAYS`], so that changing a probability never shifts
    /// the later draws of the stream. The comparison is
    /// `(x * 10^9) >> 64 < ppb` in integers; its bias is below
    /// `10^9 / 2^64 ≈ 5e-11`.
    #[inline]
    pub fn sample(self, rng: &mut impl RngCore) -> bool {
        let x = rng.next_u64();
        (((u128::from(x)) * u128::from(PPB_ONE)) >> 64) < u128::from(self.ppb)
    }
}

impl fmt::Display for Probability {
    /// As an exact percentage: `"0.5%"`, `"100%"`, `"0.0000001%"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.ppb / 10_000_000;
        let mut frac = self.ppb % 10_000_000;
        if frac == 0 {
            return write!(f, "{whole}%");
        }
        let mut width = 7;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, "{whole}.{frac:0width$}%")
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A uniform integer in `[0, n)`, without bias (Lemire's multiply-and-reject
/// method). Usually draws one `u64`; rejects with probability below
/// `n / 2^64`.
///
/// # Panics
/// If `n == 0`.
#[inline]
pub fn uniform_below(rng: &mut impl RngCore, n: u64) -> u64 {
    assert!(n > 0, "uniform_below(0)");
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// An exponentially distributed integer with mean `mean_ns` (for Poisson
/// inter-arrival times), rounded to the nearest nanosecond.
///
/// Draws exactly one `u64`. The draw uses `f64` internally: `-ln(1 - u) *
/// mean` with `u` a multiple of 2^-53 in `[0, 1)`. The logarithm is computed
/// here with a fixed polynomial using only IEEE-exact `+ - * /`, not the
/// platform's libm, so results are identical on every platform. The largest
/// possible value is about `36.7 * mean_ns`.
pub fn exponential_ns(rng: &mut impl RngCore, mean_ns: u64) -> u64 {
    let k = rng.next_u64() >> 11; // 53 random bits
    let y = ((1u64 << 53) - k) as f64 * (1.0 / (1u64 << 53) as f64); // (0, 1], exact
    let x = -ln_portable(y) * mean_ns as f64;
    x.round() as u64 // saturating cast
}

/// Natural logarithm of a positive normal `y`, to about 1 ulp, using only
/// correctly rounded IEEE operations (deterministic across platforms).
fn ln_portable(y: f64) -> f64 {
    debug_assert!(y.is_normal() && y > 0.0);
    const LN_2: f64 = core::f64::consts::LN_2;
    const SQRT_2: f64 = core::f64::consts::SQRT_2;
    let bits = y.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | (1023u64 << 52)); // [1, 2)
    if m > SQRT_2 {
        m *= 0.5;
        exponent += 1;
    }
    // ln(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716, s^2 <= 0.0295.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut series = 0.0;
    // 2*atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...); 13 terms reach 0.0295^13 < 1e-19.
    let mut k = 25.0;
    while k > 1.0 {
        series = series * s2 + 1.0 / k;
        k -= 2.0;
    }
    series = series * s2 + 1.0;
    exponent as f64 * LN_2 + 2.0 * s * series
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(rng: &mut SimRng, n: usize) -> Vec<u64> {
        (0..n).map(|_| rng.next_u64()).collect()
    }

    #[test]
    fn same_stream_same_draws() {
        let a = RngStreams::new(1).stream("link-loss", 3);
        let b = RngStreams::new(1).stream("link-loss", 3);
        assert_eq!(draws(&mut a.clone(), 100), draws(&mut b.clone(), 100));
    }

    #[test]
    fn different_names_indices_seeds_differ() {
        let streams = RngStreams::new(1);
        let base = draws(&mut streams.stream("link-loss", 3), 8);
        assert_ne!(base, draws(&mut streams.stream("link-jitter", 3), 8));
        assert_ne!(base, draws(&mut streams.stream("link-loss", 4), 8));
        assert_ne!(
            base,
            draws(&mut RngStreams::new(2).stream("link-loss", 3), 8)
        );
        // Length prefix: name/index boundaries cannot collide.
        assert_ne!(
            draws(&mut streams.stream("a", 0), 4),
            draws(&mut streams.stream("", 0), 4)
        );
    }

    #[test]
    fn adding_a_stream_does_not_change_others() {
        let streams = RngStreams::new(99);
        let mut a = streams.stream("client", 0);
        let first = draws(&mut a, 50);
        // Create and use other streams in between.
        let mut b = streams.stream("client", 1);
        let mut c = streams.stream("server", 0);
        let _ = draws(&mut b, 1000);
        let _ = draws(&mut c, 1000);
        let mut a2 = streams.stream("client", 0);
        assert_eq!(first, draws(&mut a2, 50));
        // Pinned value: the derivation must not change between versions,
        // or every recorded digest changes.
        assert_eq!(
            RngStreams::new(0).stream("pin", 0).next_u64(),
            PINNED_FIRST_DRAW
        );
    }

    const PINNED_FIRST_DRAW: u64 = 10_542_152_842_942_145_338;

    #[test]
    fn sample_frequency_within_binomial_tolerance() {
        let mut rng = RngStreams::new(5).stream("test", 0);
        let p = Probability::from_ppm(10_000).unwrap(); // 1%
        let n = 1_000_000u64;
        let hits = (0..n).filter(|_| p.sample(&mut rng)).count() as f64;
        let mean = n as f64 * 0.01;
        let sigma = (n as f64 * 0.01 * 0.99).sqrt();
        assert!(
            (hits - mean).abs() < 5.0 * sigma,
            "hits {hits}, mean {mean}, sigma {sigma}"
        );
    }

    #[test]
    fn never_and_always_still_draw_one_value() {
        let mut a = RngStreams::new(5).stream("test", 0);
        let mut b = a.clone();
        for _ in 0..1000 {
            assert!(!Probability::NEVER.sample(&mut a));
            assert!(Probability::ALWAYS.sample(&mut b));
        }
        let mut c = RngStreams::new(5).stream("test", 0);
        for _ in 0..1000 {
            c.next_u64();
        }
        let next = c.next_u64();
        assert_eq!(a.next_u64(), next);
        assert_eq!(b.next_u64(), next);
    }

    #[test]
    fn from_ratio_and_parse_are_exact() {
        assert_eq!(
            Probability::from_ratio(1, 1000).unwrap().as_ppb(),
            1_000_000
        );
        assert_eq!(Probability::from_ratio(1, 3).unwrap().as_ppb(), 333_333_333);
        assert_eq!(Probability::from_ratio(2, 3).unwrap().as_ppb(), 666_666_667);
        assert_eq!(Probability::from_ratio(7, 7), Some(Probability::ALWAYS));
        assert_eq!(Probability::from_ratio(0, 7), Some(Probability::NEVER));
        assert_eq!(Probability::from_ratio(8, 7), None);
        assert_eq!(Probability::from_ratio(0, 0), None);
        assert_eq!(Probability::from_ppm(1_000_001), None);
        let cases: &[(&str, u32)] = &[
            ("0.5%", 5_000_000),
            ("0.001", 1_000_000),
            ("1/1000", 1_000_000),
            ("0", 0),
            ("1", PPB_ONE),
            ("1.000", PPB_ONE),
            ("100%", PPB_ONE),
            ("0.000000001", 1),
            ("0.0000001%", 1),
            (".25", 250_000_000),
            ("250ppm", 250_000),
            ("7ppb", 7),
            ("0.1", 100_000_000), // exact, unlike 0.1f64
            (" 3/4 ", 750_000_000),
        ];
        for &(text, ppb) in cases {
            assert_eq!(
                Probability::parse(text).map(|p| p.as_ppb()),
                Ok(ppb),
                "{text}"
            );
        }
        let bad = [
            ("1.5", "above 1"),
            ("101%", "above 1"),
            ("2/1", "above 1"),
            ("1/0", "zero denominator"),
            ("0.0000000001", "decimal places"),
            ("-0.1", "unsigned"),
            ("abc", "unsigned"),
            ("", "missing number"),
            ("1e-3", "unsigned"),
            ("1./2", "ratio terms"),
        ];
        for (text, needle) in bad {
            let e = Probability::parse(text).expect_err(text);
            assert!(e.contains(needle) && e.contains("expected"), "{text}: {e}");
        }
        assert_eq!(Probability::parse("0.5%").unwrap().to_string(), "0.5%");
        assert_eq!(Probability::ALWAYS.to_string(), "100%");
    }

    #[test]
    fn uniform_below_is_roughly_unbiased() {
        let mut rng = RngStreams::new(11).stream("uniform", 0);
        const N: u64 = 7;
        const DRAWS: u64 = 700_000;
        let mut counts = [0u64; N as usize];
        for _ in 0..DRAWS {
            counts[uniform_below(&mut rng, N) as usize] += 1;
        }
        let expected = (DRAWS / N) as f64;
        let sigma = (DRAWS as f64 * (1.0 / N as f64) * (1.0 - 1.0 / N as f64)).sqrt();
        for c in counts {
            assert!((c as f64 - expected).abs() < 5.0 * sigma, "{counts:?}");
        }
        // A range that is not a power of two and almost 2^64: the top half
        // must be as likely as the bottom half.
        let n = (1u64 << 63) + (1u64 << 62);
        let top = (0..100_000)
            .filter(|_| uniform_below(&mut rng, n) >= n / 2)
            .count();
        assert!((top as i64 - 50_000).abs() < 5 * 158, "{top}");
        assert_eq!(uniform_below(&mut rng, 1), 0);
    }

    #[test]
    fn ln_portable_matches_libm() {
        let mut y = 1.0f64;
        while y > 1e-16 {
            let ours = ln_portable(y);
            let libm = y.ln();
            assert!(
                (ours - libm).abs() <= 4.0 * f64::EPSILON * libm.abs().max(1.0),
                "{y}: {ours} vs {libm}"
            );
            y *= 0.937;
        }
        assert_eq!(ln_portable(1.0), 0.0);
    }

    #[test]
    fn exponential_mean() {
        let mut rng = RngStreams::new(3).stream("arrivals", 0);
        let mean_ns = 1_000_000u64;
        let n = 200_000u64;
        let sum: u64 = (0..n).map(|_| exponential_ns(&mut rng, mean_ns)).sum();
        let sample_mean = sum as f64 / n as f64;
        // Standard deviation of the mean: mean / sqrt(n).
        let sigma = mean_ns as f64 / (n as f64).sqrt();
        assert!(
            (sample_mean - mean_ns as f64).abs() < 5.0 * sigma,
            "{sample_mean}"
        );
        assert_eq!(exponential_ns(&mut rng, 0), 0);
    }
}
