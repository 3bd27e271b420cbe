//! A pcapng capture writer ([`PcapWriter`]) so simulated traffic can be
//! opened in Wireshark or tcpdump, and the packet encoder it uses
//! ([`encode_packet`]).
//!
//! The container is written by the `pcap-file` crate: one section (little
//! endian, `shb_userappl` "reuseport-sim") and two interfaces, both
//! `LINKTYPE_RAW` (101: each packet starts with an IPv4 or IPv6 header),
//! snaplen 65535, nanosecond timestamps (`if_tsresol` 9):
//!
//! - interface 0, [`IF_WIRE`] (`sim-wire`): every packet the simulated
//!   network delivered;
//! - interface 1, [`IF_LOST`] (`sim-lost`): every packet the simulated
//!   network lost (loss, a link down, a filter), each with an `opt_comment`
//!   `lost in the simulated network: <why>`.
//!
//! A packet is captured as it leaves its host. The lost ones are apart so
//! that a reader can see what the receiver saw (`frame.interface_id == 0`
//! in Wireshark), and knows why a retransmission followed.
//!
//! Each [`Packet`] becomes an IPv4 (20 bytes, TTL 64, DF, id 0) or IPv6
//! (40 bytes, hop limit 64) header chosen by the address family, a TCP header
//! (20 bytes, or more with options) with valid checksums, and
//! `payload_len` zero bytes of payload (captured up to the snaplen).

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapError};

use crate::packet::{Packet, TcpFlags};
use crate::time::SimTime;

/// Maximum captured bytes per packet.
pub const PCAP_SNAPLEN: u32 = 65_535;
/// `LINKTYPE_RAW`: packets start with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;
/// TCP option kind of TCP Fast Open (RFC 7413).
pub const TCPOPT_FASTOPEN: u8 = 34;
/// Interface id of the packets the simulated network delivered.
pub const IF_WIRE: u32 = 0;
/// Interface id of the packets the simulated network lost.
pub const IF_LOST: u32 = 1;
/// Start of the comment on a lost packet (then the reason).
pub const LOST_COMMENT: &str = "lost in the simulated network: ";

const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_BASE_HEADER_LEN: usize = 20;
const IPPROTO_TCP: u8 = 6;
const TTL: u8 = 64;
/// `if_tsresol` 9: timestamps count nanoseconds.
const TSRESOL_NANOS: u8 = 9;
/// Length of the all-zero cookie written for a Fast Open SYN with data (the
/// model has no cookie values).
const TFO_COOKIE_LEN: usize = 8;

/// What became of a captured packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate<'a> {
    /// The network delivered it (interface [`IF_WIRE`]).
    Delivered,
    /// The network lost it, for this reason (interface [`IF_LOST`]).
    Lost(&'a str),
}

/// Writes [`Packet`]s to a pcapng stream.
///
/// ```
/// use sim_core::pcap::Fate;
/// use sim_core::{Packet, PcapWriter, SimTime, TcpFlags};
/// let mut w = PcapWriter::new(Vec::new()).unwrap();
/// let syn = Packet {
///     src: "10.0.0.1:40000".parse().unwrap(),
///     dst: "10.0.0.2:80".parse().unwrap(),
///     flags: TcpFlags::SYN,
///     seq: 1,
///     ack: 0,
///     payload_len: 0,
///     fast_open: false,
///     window: 65535,
///     tsval: 0,
///     tsecr: 0,
///     tag: 0,
/// };
/// w.write_packet(SimTime(1_500_000_000), &syn, Fate::Delivered).unwrap();
/// w.write_packet(SimTime(2_500_000_000), &syn, Fate::Lost("loss")).unwrap();
/// assert_eq!(w.packets(), 2);
/// assert_eq!(w.lost(), 1);
/// let bytes = w.into_inner().unwrap();
/// assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a]); // a pcapng section
/// ```
pub struct PcapWriter<W: Write> {
    inner: PcapNgWriter<W>,
    packets: u64,
    lost: u64,
    /// Reused packet buffer (headers + captured payload).
    buf: Vec<u8>,
    /// Reused comment buffer.
    comment: String,
}

impl<W: Write> std::fmt::Debug for PcapWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapWriter")
            .field("packets", &self.packets)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

/// A `pcap-file` error as an I/O error (the writer only fails on I/O).
fn io_error(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// The description of one of the two interfaces.
fn interface(name: &'static str, description: &'static str) -> InterfaceDescriptionBlock<'static> {
    InterfaceDescriptionBlock {
        linktype: DataLink::from(LINKTYPE_RAW),
        snaplen: PCAP_SNAPLEN,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
            InterfaceDescriptionOption::IfDescription(Cow::Borrowed(description)),
            InterfaceDescriptionOption::IfTsResol(TSRESOL_NANOS),
        ],
    }
}

impl<W: Write> PcapWriter<W> {
    /// Wraps `inner` and writes the section header and both interfaces.
    pub fn new(inner: W) -> io::Result<Self> {
        let section = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1,
            options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(
                "reuseport-sim",
            ))],
        };
        let mut inner = PcapNgWriter::with_section_header(inner, section).map_err(io_error)?;
        for idb in [
            interface("sim-wire", "packets the simulated network delivered"),
            interface("sim-lost", "packets lost inside the simulated network"),
        ] {
            inner.write_pcapng_block(idb).map_err(io_error)?;
        }
        Ok(PcapWriter {
            inner,
            packets: 0,
            lost: 0,
            buf: Vec::with_capacity(128),
            comment: String::new(),
        })
    }

    /// Writes one packet `pkt` sent at `t` whose fate was `fate`.
    ///
    /// The timestamp is `t` in nanoseconds since the epoch of the capture
    /// (simulated time 0 shows as 1970-01-01). A payload longer than the
    /// IP length field allows (65535 bytes of IPv4 datagram or IPv6 payload)
    /// is clamped; the captured bytes are further capped at the snaplen, with
    /// the original length giving the full length.
    pub fn write_packet(&mut self, t: SimTime, pkt: &Packet, fate: Fate<'_>) -> io::Result<()> {
        self.buf.clear();
        let original_len = encode_packet(pkt, &mut self.buf);
        debug_assert!(self.buf.len() <= PCAP_SNAPLEN as usize);
        let (interface_id, options) = match fate {
            Fate::Delivered => (IF_WIRE, Vec::new()),
            Fate::Lost(why) => {
                self.comment.clear();
                self.comment.push_str(LOST_COMMENT);
                self.comment.push_str(why);
                self.lost += 1;
                (
                    IF_LOST,
                    vec![EnhancedPacketOption::Comment(Cow::Borrowed(
                        self.comment.as_str(),
                    ))],
                )
            }
        };
        let epb = EnhancedPacketBlock {
            interface_id,
            timestamp: Duration::from_nanos(t.as_nanos()),
            original_len,
            data: Cow::Borrowed(&self.buf),
            options,
        };
        self.inner.write_pcapng_block(epb).map_err(io_error)?;
        self.packets += 1;
        Ok(())
    }

    /// Number of packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Number of those that were lost in the network.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(self) -> io::Result<W> {
        let mut w = self.inner.into_inner();
        w.flush()?;
        Ok(w)
    }
}

/// `TCPOPT_TIMESTAMP` (RFC 7323).
const TCPOPT_TIMESTAMP: u8 = 8;
/// Longest option block written: Fast Open with a cookie (12) + timestamps (12).
const MAX_OPTS: usize = 24;

/// The TCP options written for `pkt`, already padded to a multiple of 4.
///
/// A SYN (or SYN-ACK) with `fast_open` gets a Fast Open cookie request
/// (kind 34, length 2) if it has no payload, else a Fast Open option with an
/// all-zero 8-byte cookie (the model has no cookie values). A segment with
/// a timestamp (`tsval != 0`) gets NOP, NOP, Timestamps (kind 8, length 10),
/// the layout Linux uses. Other options (MSS, SACK, window scale) are not
/// modelled and not written.
fn tcp_options(pkt: &Packet) -> ([u8; MAX_OPTS], usize) {
    let mut opts = [0u8; MAX_OPTS];
    let mut len = 0;
    if pkt.fast_open && pkt.flags.contains(TcpFlags::SYN) {
        // NOP, NOP, then the option, so the option ends on a 4-byte boundary.
        opts[0] = 1;
        opts[1] = 1;
        opts[2] = TCPOPT_FASTOPEN;
        if pkt.payload_len == 0 {
            opts[3] = 2;
            len = 4;
        } else {
            opts[3] = (2 + TFO_COOKIE_LEN) as u8;
            // opts[4..12]: zero cookie.
            len = 4 + TFO_COOKIE_LEN;
        }
    }
    if pkt.tsval != 0 {
        opts[len] = 1;
        opts[len + 1] = 1;
        opts[len + 2] = TCPOPT_TIMESTAMP;
        opts[len + 3] = 10;
        opts[len + 4..len + 8].copy_from_slice(&pkt.tsval.to_be_bytes());
        opts[len + 8..len + 12].copy_from_slice(&pkt.tsecr.to_be_bytes());
        len += 12;
    }
    (opts, len)
}

/// Appends the captured bytes of `pkt` (IP header, TCP header, payload
/// capped at the snaplen) to `out` and returns the full on-wire length.
///
/// # Panics
/// If `pkt` mixes address families (the model never builds such a packet).
pub fn encode_packet(pkt: &Packet, out: &mut Vec<u8>) -> u32 {
    let (opts, opts_len) = tcp_options(pkt);
    let tcp_hdr_len = TCP_BASE_HEADER_LEN + opts_len;
    let (ip_hdr_len, max_after_ip) = match pkt.src.ip() {
        IpAddr::V4(_) => (IPV4_HEADER_LEN, 0xffff - IPV4_HEADER_LEN),
        IpAddr::V6(_) => (IPV6_HEADER_LEN, 0xffff),
    };
    let payload_len = (pkt.payload_len as usize).min(max_after_ip - tcp_hdr_len);
    let tcp_len = tcp_hdr_len + payload_len;
    let orig_len = ip_hdr_len + tcp_len;

    // Pseudo-header sum (addresses, protocol, TCP length).
    let mut sum: u32 = 0;
    match (pkt.src, pkt.dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            let (s, d) = (s.ip().octets(), d.ip().octets());
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&(orig_len as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0]); // identification
            out.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
            out.extend_from_slice(&[TTL, IPPROTO_TCP, 0, 0]);
            out.extend_from_slice(&s);
            out.extend_from_slice(&d);
            let c = checksum(&out[start..]);
            out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());

            sum = sum_be_words(sum, &s);
            sum = sum_be_words(sum, &d);
            sum += u32::from(IPPROTO_TCP);
            sum += tcp_len as u32;
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            let (s, d) = (s.ip().octets(), d.ip().octets());
            out.extend_from_slice(&[0x60, 0, 0, 0]); // version, class, flow
            out.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            out.extend_from_slice(&[IPPROTO_TCP, TTL]);
            out.extend_from_slice(&s);
            out.extend_from_slice(&d);

            sum = sum_be_words(sum, &s);
            sum = sum_be_words(sum, &d);
            sum += tcp_len as u32; // 32-bit upper-layer length
            sum += u32::from(IPPROTO_TCP);
        }
        _ => panic!("packet {} > {} mixes address families", pkt.src, pkt.dst),
    }

    let tcp_start = out.len();
    out.extend_from_slice(&pkt.src.port().to_be_bytes());
    out.extend_from_slice(&pkt.dst.port().to_be_bytes());
    out.extend_from_slice(&pkt.seq.to_be_bytes());
    out.extend_from_slice(&pkt.ack.to_be_bytes());
    out.push(((tcp_hdr_len / 4) as u8) << 4);
    out.push(pkt.flags.0);
    out.extend_from_slice(&pkt.window.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    out.extend_from_slice(&opts[..opts_len]);
    // The payload is all zeros, so it adds nothing to the checksum.
    sum = sum_be_words(sum, &out[tcp_start..]);
    let c = fold(sum);
    out[tcp_start + 16..tcp_start + 18].copy_from_slice(&c.to_be_bytes());

    let captured_payload = payload_len.min(PCAP_SNAPLEN as usize - (ip_hdr_len + tcp_hdr_len));
    out.resize(out.len() + captured_payload, 0);
    orig_len as u32
}

/// Adds `data` as big-endian 16-bit words (an odd trailing byte is padded
/// with zero) to the running sum `acc`, without folding.
fn sum_be_words(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds a 32-bit sum to 16 bits and complements it.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum (RFC 1071) of `data`: the one's complement of the
/// one's-complement sum of its big-endian 16-bit words. Write it into a
/// zeroed checksum field; summing the data again then gives `0xffff`.
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum_be_words(0, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// One's-complement sum, folded, not complemented.
    fn ones_sum(data: &[u8]) -> u16 {
        !checksum(data)
    }

    fn u16be(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    fn u32be(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// A packet parsed back from the file.
    #[derive(Debug)]
    struct Parsed {
        t_ns: u128,
        interface_id: u32,
        comment: Option<String>,
        incl_len: u32,
        orig_len: u32,
        version: u8,
        src: SocketAddr,
        dst: SocketAddr,
        flags: u8,
        seq: u32,
        ack: u32,
        window: u16,
        tcp_header_len: usize,
        options: Vec<u8>,
        payload_captured: usize,
    }

    /// Reads a whole file back with `pcap-file`, checking the section, the
    /// two interfaces and every checksum.
    fn parse(file: &[u8]) -> Vec<Parsed> {
        use pcap_file::pcapng::{Block, PcapNgReader};
        let mut r = PcapNgReader::new(file).expect("a pcapng section");
        assert_eq!(r.section().endianness, Endianness::Little);
        assert_eq!(r.section().major_version, 1);
        let mut out = Vec::new();
        let mut interfaces = Vec::new();
        while let Some(block) = r.next_block() {
            match block.expect("a valid block") {
                Block::InterfaceDescription(idb) => interfaces.push(idb.into_owned()),
                Block::EnhancedPacket(epb) => {
                    assert_eq!(interfaces.len(), 2, "both interfaces come first");
                    out.push(parse_packet(&epb));
                }
                other => panic!("unexpected block {other:?}"),
            }
        }
        for (idb, name) in interfaces.iter().zip(["sim-wire", "sim-lost"]) {
            assert_eq!(u32::from(idb.linktype), LINKTYPE_RAW);
            assert_eq!(idb.snaplen, PCAP_SNAPLEN);
            assert!(idb
                .options
                .contains(&InterfaceDescriptionOption::IfName(Cow::Borrowed(name))));
            assert!(idb
                .options
                .contains(&InterfaceDescriptionOption::IfTsResol(9)));
        }
        out
    }

    /// Parses one packet block, checking its headers and checksums.
    fn parse_packet(epb: &EnhancedPacketBlock<'_>) -> Parsed {
        let rec: &[u8] = &epb.data;
        let incl_len = rec.len() as u32;
        let orig_len = epb.original_len;
        assert!(incl_len <= orig_len && incl_len <= PCAP_SNAPLEN);
        let comment = match epb.options.as_slice() {
            [] => None,
            [EnhancedPacketOption::Comment(c)] => Some(c.to_string()),
            other => panic!("unexpected options {other:?}"),
        };
        let version = rec[0] >> 4;
        let (src_ip, dst_ip, ip_len, mut pseudo_sum, tcp_len): (IpAddr, IpAddr, _, u32, _) =
            match version {
                4 => {
                    assert_eq!(rec[0] & 0x0f, 5, "IHL");
                    assert_eq!(usize::from(u16be(rec, 2)), orig_len as usize);
                    assert_eq!(u16be(rec, 6), 0x4000, "DF, no fragment offset");
                    assert_eq!(rec[8], 64, "TTL");
                    assert_eq!(rec[9], 6, "protocol");
                    assert_eq!(ones_sum(&rec[..20]), 0xffff, "IPv4 header checksum");
                    let s: [u8; 4] = rec[12..16].try_into().unwrap();
                    let d: [u8; 4] = rec[16..20].try_into().unwrap();
                    let tcp_len = orig_len as usize - 20;
                    let ps = sum_be_words(sum_be_words(6 + tcp_len as u32, &s), &d);
                    (s.into(), d.into(), 20, ps, tcp_len)
                }
                6 => {
                    assert_eq!(&rec[1..4], &[0, 0, 0], "class and flow label");
                    assert_eq!(usize::from(u16be(rec, 4)), orig_len as usize - 40);
                    assert_eq!(rec[6], 6, "next header");
                    assert_eq!(rec[7], 64, "hop limit");
                    let s: [u8; 16] = rec[8..24].try_into().unwrap();
                    let d: [u8; 16] = rec[24..40].try_into().unwrap();
                    let tcp_len = orig_len as usize - 40;
                    let ps = sum_be_words(sum_be_words(6 + tcp_len as u32, &s), &d);
                    (s.into(), d.into(), 40, ps, tcp_len)
                }
                v => panic!("IP version {v}"),
            };
        let tcp = &rec[ip_len..];
        let tcp_header_len = usize::from(tcp[12] >> 4) * 4;
        assert_eq!(tcp[12] & 0x0f, 0, "reserved bits");
        assert_eq!(u16be(tcp, 18), 0, "urgent pointer");
        let payload_captured = tcp.len() - tcp_header_len;
        // Only verify the TCP checksum when the whole segment is
        // captured (the payload is zeros either way).
        if payload_captured == tcp_len - tcp_header_len {
            pseudo_sum = sum_be_words(pseudo_sum, tcp);
            let mut s = pseudo_sum;
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            assert_eq!(s, 0xffff, "TCP checksum");
        }
        assert!(tcp[tcp_header_len..].iter().all(|&b| b == 0));
        Parsed {
            t_ns: epb.timestamp.as_nanos(),
            interface_id: epb.interface_id,
            comment,
            incl_len,
            orig_len,
            version,
            src: SocketAddr::new(src_ip, u16be(tcp, 0)),
            dst: SocketAddr::new(dst_ip, u16be(tcp, 2)),
            flags: tcp[13],
            seq: u32be(tcp, 4),
            ack: u32be(tcp, 8),
            window: u16be(tcp, 14),
            tcp_header_len,
            options: tcp[20..tcp_header_len].to_vec(),
            payload_captured,
        }
    }

    fn handshake(client: &str, server: &str) -> [Packet; 3] {
        let c: SocketAddr = client.parse().unwrap();
        let s: SocketAddr = server.parse().unwrap();
        let syn = Packet {
            src: c,
            dst: s,
            flags: TcpFlags::SYN,
            seq: 1000,
            ack: 0,
            payload_len: 0,
            fast_open: false,
            window: 64240,
            tsval: 0,
            tsecr: 0,
            tag: 0,
        };
        let syn_ack = Packet {
            src: s,
            dst: c,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            seq: 5000,
            ack: 1001,
            payload_len: 0,
            fast_open: false,
            window: 65160,
            tsval: 0,
            tsecr: 0,
            tag: 0,
        };
        let data = Packet {
            src: c,
            dst: s,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            seq: 1001,
            ack: 5001,
            payload_len: 517,
            fast_open: false,
            window: 502,
            tsval: 0,
            tsecr: 0,
            tag: 0,
        };
        [syn, syn_ack, data]
    }

    fn write_all(pkts: &[(SimTime, Packet)]) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for (t, p) in pkts {
            w.write_packet(*t, p, Fate::Delivered).unwrap();
        }
        assert_eq!(w.packets(), pkts.len() as u64);
        w.into_inner().unwrap()
    }

    fn sample() -> Vec<(SimTime, Packet)> {
        let v4 = handshake("10.0.0.1:40000", "10.0.0.2:80");
        let v6 = handshake("[2001:db8::1]:40001", "[2001:db8::2]:443");
        let times = [
            SimTime(0),
            SimTime(999_999_999),
            SimTime(1_000_000_000),
            SimTime(3_250_000_001),
            SimTime(3_250_000_002),
            SimTime(7_000_000_000),
        ];
        times.into_iter().zip(v4.into_iter().chain(v6)).collect()
    }

    #[test]
    fn checksum_known_vector() {
        // RFC 1071 example words 0x0001 0xf203 0xf4f5 0xf6f7 sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A well-known IPv4 header (checksum 0xb861).
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0x12]), !0x1200);
    }

    #[test]
    fn round_trip_v4_and_v6() {
        let pkts = sample();
        let file = write_all(&pkts);
        let parsed = parse(&file);
        assert_eq!(parsed.len(), pkts.len());
        for ((t, p), r) in pkts.iter().zip(&parsed) {
            assert_eq!(r.t_ns, u128::from(t.as_nanos()));
            assert_eq!((r.interface_id, r.comment.as_deref()), (IF_WIRE, None));
            let (ver, ip_len) = if p.src.is_ipv4() { (4, 20) } else { (6, 40) };
            assert_eq!(r.version, ver);
            assert_eq!(r.orig_len, ip_len + 20 + p.payload_len);
            assert_eq!(r.incl_len, r.orig_len);
            assert_eq!(r.src, p.src);
            assert_eq!(r.dst, p.dst);
            assert_eq!(r.flags, p.flags.0);
            assert_eq!(r.seq, p.seq);
            assert_eq!(r.ack, p.ack);
            assert_eq!(r.window, p.window);
            assert_eq!(r.tcp_header_len, 20);
            assert_eq!(r.payload_captured, p.payload_len as usize);
        }
        assert_eq!(parsed[1].t_ns, 999_999_999);
        assert_eq!(parsed[3].t_ns, 3_250_000_001);
        assert_eq!(parsed[0].flags, 0x02);
        assert_eq!(parsed[1].flags, 0x12);
        assert_eq!(parsed[2].flags, 0x18);
    }

    #[test]
    fn lost_packets_are_apart_and_commented() {
        let pkts = sample();
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let fates = [
            Fate::Delivered,
            Fate::Lost("loss"),
            Fate::Delivered,
            Fate::Lost("link_down"),
            Fate::Delivered,
            Fate::Delivered,
        ];
        for ((t, p), fate) in pkts.iter().zip(fates) {
            w.write_packet(*t, p, fate).unwrap();
        }
        assert_eq!((w.packets(), w.lost()), (6, 2));
        let parsed = parse(&w.into_inner().unwrap());
        let seen: Vec<(u32, Option<&str>)> = parsed
            .iter()
            .map(|r| (r.interface_id, r.comment.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (IF_WIRE, None),
                (IF_LOST, Some("lost in the simulated network: loss")),
                (IF_WIRE, None),
                (IF_LOST, Some("lost in the simulated network: link_down")),
                (IF_WIRE, None),
                (IF_WIRE, None),
            ]
        );
        // A lost packet is the same packet: same bytes, same timestamp.
        assert_eq!(parsed[1].t_ns, 999_999_999);
        assert_eq!(parsed[1].flags, 0x12);
        assert_eq!(parsed[3].src, pkts[3].1.src);
    }

    #[test]
    fn fast_open_option() {
        let [mut syn, _, _] = handshake("10.0.0.1:40000", "10.0.0.2:80");
        syn.fast_open = true;
        let mut syn_data = syn;
        syn_data.payload_len = 100;
        let [mut syn6, mut syn_ack6, _] = handshake("[::1]:1", "[::2]:2");
        syn6.fast_open = true;
        syn6.payload_len = 3; // odd payload length
        syn_ack6.fast_open = true; // SYN-ACK also carries the option
        let mut ack = syn;
        ack.flags = TcpFlags::ACK; // not a SYN: no option
        let file = write_all(&[
            (SimTime(1), syn),
            (SimTime(2), syn_data),
            (SimTime(3), syn6),
            (SimTime(4), syn_ack6),
            (SimTime(5), ack),
        ]);
        let r = parse(&file);
        assert_eq!(r[0].tcp_header_len, 24);
        assert_eq!(r[0].options, [1, 1, 34, 2]);
        assert_eq!(r[0].orig_len, 44);
        assert_eq!(r[1].tcp_header_len, 32);
        assert_eq!(r[1].options, [1, 1, 34, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r[1].orig_len, 20 + 32 + 100);
        assert_eq!(r[2].tcp_header_len, 32);
        assert_eq!(r[2].payload_captured, 3);
        assert_eq!(r[3].tcp_header_len, 24);
        assert_eq!(r[4].tcp_header_len, 20);
        // Timestamps: NOP, NOP, kind 8, length 10, TSval, TSecr, after Fast Open.
        let mut ts = syn;
        ts.tsval = 0x0102_0304;
        ts.tsecr = 0x0a0b_0c0d;
        let mut ts_data = syn_data;
        ts_data.tsval = 7;
        let r = parse(&write_all(&[(SimTime(1), ts), (SimTime(2), ts_data)]));
        assert_eq!(r[0].tcp_header_len, 36);
        assert_eq!(
            r[0].options,
            [1, 1, 34, 2, 1, 1, 8, 10, 1, 2, 3, 4, 10, 11, 12, 13]
        );
        assert_eq!(r[1].tcp_header_len, 44);
        assert_eq!(r[1].options[12..], [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0]);
    }

    #[test]
    fn snaplen_caps_captured_payload() {
        let [_, _, mut big4] = handshake("10.0.0.1:40000", "10.0.0.2:80");
        big4.payload_len = 70_000; // more than an IPv4 datagram holds
        let [_, _, mut big6] = handshake("[::1]:1", "[::2]:2");
        big6.payload_len = 65_500; // fits IPv6 payload length, not the snaplen
        let file = write_all(&[(SimTime(1), big4), (SimTime(2), big6)]);
        let r = parse(&file);
        assert_eq!(r[0].orig_len, 65_535);
        assert_eq!(r[0].incl_len, 65_535);
        assert_eq!(r[1].orig_len, 40 + 20 + 65_500);
        assert_eq!(r[1].incl_len, 65_535);
        assert_eq!(r[1].payload_captured, 65_535 - 60);
    }

    #[test]
    fn timestamp_keeps_every_nanosecond() {
        // 64-bit nanosecond timestamps: even the last instant is exact.
        let [syn, _, _] = handshake("10.0.0.1:40000", "10.0.0.2:80");
        let file = write_all(&[(SimTime::MAX, syn)]);
        let r = parse(&file);
        assert_eq!(r[0].t_ns, u128::from(u64::MAX));
    }

    fn temp_path(tag: &str) -> std::path::PathBuf {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!(
            "sim-core-pcap-{tag}-{}-{n}.pcapng",
            std::process::id()
        ))
    }

    #[test]
    fn tshark_accepts_file() {
        let have_tshark = std::process::Command::new("tshark")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have_tshark {
            eprintln!("tshark not on PATH; skipping pcap validation with tshark");
            return;
        }
        let mut pkts = sample();
        let [mut tfo, _, _] = handshake("10.0.0.3:40002", "10.0.0.2:80");
        tfo.fast_open = true;
        tfo.payload_len = 10;
        pkts.push((SimTime(8_000_000_000), tfo));
        let path = temp_path("tshark");
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for (i, (t, p)) in pkts.iter().enumerate() {
            let fate = if i == 1 {
                Fate::Lost("loss")
            } else {
                Fate::Delivered
            };
            w.write_packet(*t, p, fate).unwrap();
        }
        std::fs::write(&path, w.into_inner().unwrap()).unwrap();
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args([
                "-T",
                "fields",
                "-e",
                "tcp.flags",
                "-e",
                "tcp.checksum.status",
                "-e",
                "frame.interface_id",
            ])
            .args(["-o", "tcp.check_checksum:TRUE"])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), pkts.len(), "tshark output:\n{stdout}");
        for (i, ((_, p), line)) in pkts.iter().zip(&lines).enumerate() {
            let mut fields = line.split('\t');
            let flags = fields.next().unwrap_or_default();
            let status = fields.next().unwrap_or_default();
            let interface = fields.next().unwrap_or_default();
            assert_eq!(interface, if i == 1 { "1" } else { "0" }, "{line:?}");
            let flags = u16::from_str_radix(flags.trim_start_matches("0x"), 16)
                .unwrap_or_else(|_| panic!("bad tcp.flags in {line:?}"));
            assert_eq!(flags, u16::from(p.flags.0), "{line:?}");
            // 1 = Good (older tshark prints the number, newer the name).
            assert!(
                status == "1" || status == "Good",
                "checksum status in {line:?}"
            );
        }
    }
}
