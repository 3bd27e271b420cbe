//! Run digests and JSON-lines traces.
//!
//! A run digest is an XXH3-64 hash over every processed event; the model
//! feeds it the fields that define an event. Two runs with the same digest
//! processed the same events in the same order, which is how determinism is
//! checked cheaply across seeds, builds and machines.

use std::io::{self, BufWriter, Write};

use xxhash_rust::xxh3::Xxh3;

use crate::time::SimTime;

/// Incremental hash of a run's events.
#[derive(Clone)]
pub struct Digest(Box<Xxh3>, Box<[u8; DIGEST_BUF]>, usize);

impl core::fmt::Debug for Digest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Digest({})", self.hex())
    }
}

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes buffered before they are fed to the hasher; feeding xxh3 in large
/// chunks is several times cheaper per event than 8 bytes at a time, and the
/// streaming digest does not depend on how its input is split.
const DIGEST_BUF: usize = 1024;

impl Digest {
    /// The digest of nothing.
    pub fn new() -> Self {
        Digest(Box::new(Xxh3::new()), Box::new([0; DIGEST_BUF]), 0)
    }

    /// Feeds a `u64` (little-endian bytes).
    #[inline]
    pub fn update_u64(&mut self, v: u64) {
        if self.2 + 8 > DIGEST_BUF {
            self.flush();
        }
        self.1[self.2..self.2 + 8].copy_from_slice(&v.to_le_bytes());
        self.2 += 8;
    }

    /// Feeds a `u32` (little-endian bytes).
    #[inline]
    pub fn update_u32(&mut self, v: u32) {
        self.update_bytes(&v.to_le_bytes());
    }

    /// Feeds a time as its nanoseconds.
    #[inline]
    pub fn update_time(&mut self, t: SimTime) {
        self.update_u64(t.0);
    }

    /// Feeds raw bytes. Variable-length data should be preceded by its
    /// length so that adjacent fields cannot run into each other.
    #[inline]
    pub fn update_bytes(&mut self, bytes: &[u8]) {
        if self.2 + bytes.len() > DIGEST_BUF {
            self.flush();
        }
        if bytes.len() > DIGEST_BUF {
            self.0.update(bytes);
        } else {
            self.1[self.2..self.2 + bytes.len()].copy_from_slice(bytes);
            self.2 += bytes.len();
        }
    }

    fn flush(&mut self) {
        self.0.update(&self.1[..self.2]);
        self.2 = 0;
    }

    /// The digest of everything fed so far (feeding may continue).
    #[inline]
    pub fn finish(&self) -> u64 {
        let mut h = (*self.0).clone();
        h.update(&self.1[..self.2]);
        h.digest()
    }

    /// [`Digest::finish`] as 16 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.finish())
    }
}

/// Writes one JSON object per line.
///
/// Records must be structs (or enums of structs), not maps: serde emits
/// struct fields in declaration order, which makes the output byte-stable
/// across runs; a `HashMap` would not be.
pub struct TraceWriter<W: Write> {
    out: BufWriter<W>,
    records: u64,
}

impl<W: Write> TraceWriter<W> {
    /// A writer buffering into `inner`.
    pub fn new(inner: W) -> Self {
        TraceWriter {
            out: BufWriter::new(inner),
            records: 0,
        }
    }

    /// Writes `rec` as one JSON line.
    pub fn record<T: serde::Serialize>(&mut self, rec: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, rec).map_err(io::Error::other)?;
        self.out.write_all(b"\n")?;
        self.records += 1;
        Ok(())
    }

    /// Number of records written.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes buffered lines to the inner writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_order_sensitive_and_stable() {
        let mut a = Digest::new();
        a.update_u64(1);
        a.update_u64(2);
        let mut b = Digest::new();
        b.update_u64(2);
        b.update_u64(1);
        assert_ne!(a.finish(), b.finish());
        let mut c = Digest::new();
        c.update_bytes(&1u64.to_le_bytes());
        c.update_bytes(&2u64.to_le_bytes());
        assert_eq!(a.finish(), c.finish(), "streaming is split-independent");
        assert_eq!(a.hex().len(), 16);
        assert_eq!(
            Digest::new().hex(),
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(b""))
        );
    }

    #[derive(serde::Serialize)]
    struct Rec {
        t_ns: u64,
        what: &'static str,
    }

    #[test]
    fn trace_writes_json_lines_in_field_order() {
        let mut w = TraceWriter::new(Vec::new());
        w.record(&Rec {
            t_ns: 5,
            what: "syn",
        })
        .unwrap();
        w.record(&Rec {
            t_ns: 6,
            what: "ack",
        })
        .unwrap();
        assert_eq!(w.records(), 2);
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "{\"t_ns\":5,\"what\":\"syn\"}\n{\"t_ns\":6,\"what\":\"ack\"}\n"
        );
    }
}
