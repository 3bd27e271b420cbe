//! Packets as plain `Copy` values: addresses, TCP flags, sequence numbers and
//! a payload length (no payload bytes are carried).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};
use std::net::SocketAddr;

/// TCP header flags (the low six bits of the flags byte, RFC 793 order).
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flags.
    pub const EMPTY: TcpFlags = TcpFlags(0);
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field significant.
    pub const URG: TcpFlags = TcpFlags(0x20);

    const NAMES: [(TcpFlags, &'static str); 6] = [
        (Self::SYN, "SYN"),
        (Self::ACK, "ACK"),
        (Self::FIN, "FIN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::URG, "URG"),
    ];

    /// True if every flag of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any flag of `other` is set in `self`.
    #[inline]
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// True if no flag is set.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True if exactly ACK is set. The payload is checked separately by
    /// [`Packet::is_pure_ack`].
    #[inline]
    pub const fn is_pure_ack(self) -> bool {
        self.0 == Self::ACK.0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl Not for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn not(self) -> TcpFlags {
        TcpFlags(!self.0 & 0x3f)
    }
}

impl fmt::Display for TcpFlags {
    /// Names joined with `|` in tcpdump-like order: `"SYN|ACK"`; `"-"` if
    /// empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let unknown = self.0 & !0x3f;
        if unknown != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{unknown:#04x}")?;
        }
        Ok(())
    }
}

/// A connection's identity as seen from one end.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FourTuple {
    /// This end's address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

/// Hashes an IPv4 tuple as two words (the hot path: connection tables are
/// looked up for every packet); other tuples field by field. Consistent with
/// `Eq`: equal tuples hash equally.
impl std::hash::Hash for FourTuple {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // By reference: a copy of the pair is 64 bytes per hash.
        match (&self.local, &self.remote) {
            (SocketAddr::V4(l), SocketAddr::V4(r)) => {
                state.write_u64((u64::from(l.ip().to_bits()) << 32) | u64::from(r.ip().to_bits()));
                state.write_u32((u32::from(l.port()) << 16) | u32::from(r.port()));
            }
            (l, r) => {
                l.hash(state);
                r.hash(state);
            }
        }
    }
}

impl FourTuple {
    /// The same connection seen from the other end.
    #[inline]
    pub const fn reversed(self) -> FourTuple {
        FourTuple {
            local: self.remote,
            remote: self.local,
        }
    }
}

impl fmt::Display for FourTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)
    }
}

/// One TCP segment in flight. `Copy` and heap-free.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Sender's address and port.
    pub src: SocketAddr,
    /// Receiver's address and port.
    pub dst: SocketAddr,
    /// TCP flags.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful if ACK is set).
    pub ack: u32,
    /// Payload length in bytes (the bytes themselves are not modelled).
    pub payload_len: u32,
    /// The SYN carries TCP Fast Open data or a cookie.
    pub fast_open: bool,
    /// Advertised receive window.
    pub window: u16,
    /// TCP timestamp option (RFC 7323) `TSval`; 0 means the segment carries
    /// no timestamp option. The model's timestamp clock counts milliseconds
    /// from 1 at time 0 (the kernel adds a random per-connection offset,
    /// `ts_off`, so any fixed origin is as good), so 0 never occurs in a run.
    pub tsval: u32,
    /// Timestamp option `TSecr`: the peer's `TSval` echoed (meaningful when
    /// `tsval != 0`).
    pub tsecr: u32,
    /// Simulation-only annotation, not on the wire (not in pcap captures):
    /// the sender's reason code, e.g. the TCP model's RST cause, so that
    /// what the receiver does with the segment can be attributed to it.
    /// 0 = none.
    pub tag: u8,
}

/// IPv4 header length without options, bytes.
pub const IPV4_HEADER_LEN: u32 = 20;
/// IPv6 fixed header length, bytes.
pub const IPV6_HEADER_LEN: u32 = 40;
/// TCP header length without options, bytes.
pub const TCP_HEADER_LEN: u32 = 20;

impl Packet {
    /// True if only ACK is set and there is no payload.
    #[inline]
    pub const fn is_pure_ack(&self) -> bool {
        self.flags.is_pure_ack() && self.payload_len == 0
    }

    /// Bytes on the wire for bandwidth accounting: IP header (20 for IPv4,
    /// 40 for IPv6) + TCP header without options (20) + payload. Link-layer
    /// framing and TCP options (timestamps included) are not counted.
    #[inline]
    pub const fn wire_len(&self) -> u32 {
        let ip = if self.dst.is_ipv4() {
            IPV4_HEADER_LEN
        } else {
            IPV6_HEADER_LEN
        };
        ip + TCP_HEADER_LEN + self.payload_len
    }

    /// The four-tuple as the receiver sees it: `local = dst`, `remote = src`.
    #[inline]
    pub const fn tuple_at_receiver(&self) -> FourTuple {
        FourTuple {
            local: self.dst,
            remote: self.src,
        }
    }

    /// The four-tuple as the sender sees it: `local = src`, `remote = dst`.
    #[inline]
    pub const fn tuple_at_sender(&self) -> FourTuple {
        FourTuple {
            local: self.src,
            remote: self.dst,
        }
    }
}

impl fmt::Display for Packet {
    /// tcpdump-like: `10.0.0.1:5000 > 10.0.0.2:80 [SYN] seq 1 ack 0 len 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} > {} [{}] seq {} ack {} len {}",
            self.src, self.dst, self.flags, self.seq, self.ack, self.payload_len
        )?;
        if self.fast_open {
            f.write_str(" tfo")?;
        }
        if self.tsval != 0 {
            write!(f, " ts {}/{}", self.tsval, self.tsecr)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(flags: TcpFlags, payload_len: u32) -> Packet {
        Packet {
            src: "10.0.0.1:40000".parse().unwrap(),
            dst: "10.0.0.2:80".parse().unwrap(),
            flags,
            seq: 1,
            ack: 2,
            payload_len,
            fast_open: false,
            window: 65535,
            tsval: 0,
            tsecr: 0,
            tag: 0,
        }
    }

    #[test]
    fn flags() {
        let syn_ack = TcpFlags::SYN | TcpFlags::ACK;
        assert!(syn_ack.contains(TcpFlags::SYN));
        assert!(syn_ack.contains(TcpFlags::ACK));
        assert!(!syn_ack.contains(TcpFlags::ACK | TcpFlags::FIN));
        assert!(!syn_ack.is_pure_ack());
        assert!(TcpFlags::ACK.is_pure_ack());
        assert_eq!(syn_ack.to_string(), "SYN|ACK");
        assert_eq!(
            (TcpFlags::FIN | TcpFlags::ACK | TcpFlags::PSH).to_string(),
            "ACK|FIN|PSH"
        );
        assert_eq!(TcpFlags::EMPTY.to_string(), "-");
        assert_eq!(TcpFlags::RST.to_string(), "RST");
    }

    #[test]
    fn pure_ack_and_wire_len() {
        assert!(packet(TcpFlags::ACK, 0).is_pure_ack());
        assert!(!packet(TcpFlags::ACK, 1).is_pure_ack());
        assert!(!packet(TcpFlags::ACK | TcpFlags::PSH, 0).is_pure_ack());
        assert_eq!(packet(TcpFlags::ACK, 1460).wire_len(), 1500);
        let mut v6 = packet(TcpFlags::ACK, 0);
        v6.src = "[::1]:1".parse().unwrap();
        v6.dst = "[::2]:2".parse().unwrap();
        assert_eq!(v6.wire_len(), 60);
    }

    #[test]
    fn tuples() {
        let p = packet(TcpFlags::SYN, 0);
        let t = p.tuple_at_receiver();
        assert_eq!(t.local, p.dst);
        assert_eq!(t.remote, p.src);
        assert_eq!(t.reversed(), p.tuple_at_sender());
        assert_eq!(
            p.to_string(),
            "10.0.0.1:40000 > 10.0.0.2:80 [SYN] seq 1 ack 2 len 0"
        );
    }
}
