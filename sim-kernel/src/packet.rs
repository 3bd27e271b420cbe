//! Reads the IP and TCP headers of a real packet into a `sim_core`
//! [`Packet`], so the link model and the packet filters see exactly what
//! they see in the simulator (flags, ports, payload length).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sim_core::{Packet, TcpFlags};

const IPPROTO_TCP: u8 = 6;
const TCPOPT_EOL: u8 = 0;
const TCPOPT_NOP: u8 = 1;
const TCPOPT_FASTOPEN: u8 = 34;
const TCPOPT_TIMESTAMP: u8 = 8;

/// The destination address of an IPv4 or IPv6 packet (for routing
/// non-TCP packets too).
pub fn destination(buf: &[u8]) -> Option<IpAddr> {
    match buf.first()? >> 4 {
        4 if buf.len() >= 20 => Some(IpAddr::V4(Ipv4Addr::new(
            buf[16], buf[17], buf[18], buf[19],
        ))),
        6 if buf.len() >= 40 => {
            let b: [u8; 16] = buf[24..40].try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// Parses a TCP packet (IPv4 or IPv6 without extension headers); `None`
/// for anything else or a truncated packet.
pub fn parse_tcp(buf: &[u8]) -> Option<Packet> {
    let (src, dst, tcp, ip_payload_len) = match buf.first()? >> 4 {
        4 => {
            if buf.len() < 20 {
                return None;
            }
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if buf[9] != IPPROTO_TCP || ihl < 20 || total > buf.len() || total < ihl {
                return None;
            }
            // Fragments other than the first carry no TCP header.
            let frag = u16::from_be_bytes([buf[6], buf[7]]) & 0x1fff;
            if frag != 0 {
                return None;
            }
            let s = IpAddr::V4(Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]));
            let d = IpAddr::V4(Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]));
            (s, d, &buf[ihl..total], total - ihl)
        }
        6 => {
            if buf.len() < 40 || buf[6] != IPPROTO_TCP {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
            if 40 + plen > buf.len() {
                return None;
            }
            let s: [u8; 16] = buf[8..24].try_into().ok()?;
            let d: [u8; 16] = buf[24..40].try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                &buf[40..40 + plen],
                plen,
            )
        }
        _ => return None,
    };
    if tcp.len() < 20 {
        return None;
    }
    let doff = usize::from(tcp[12] >> 4) * 4;
    if doff < 20 || doff > tcp.len() {
        return None;
    }
    let flags = TcpFlags(tcp[13] & 0x3f);
    let fast_open = flags.contains(TcpFlags::SYN) && has_option(&tcp[20..doff], TCPOPT_FASTOPEN);
    let (tsval, tsecr) = timestamps(&tcp[20..doff]);
    Some(Packet {
        src: SocketAddr::new(src, u16::from_be_bytes([tcp[0], tcp[1]])),
        dst: SocketAddr::new(dst, u16::from_be_bytes([tcp[2], tcp[3]])),
        flags,
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
        payload_len: (ip_payload_len - doff) as u32,
        fast_open,
        window: u16::from_be_bytes([tcp[14], tcp[15]]),
        tsval,
        tsecr,
        tag: 0,
    })
}

fn has_option(opts: &[u8], kind: u8) -> bool {
    find_option(opts, kind).is_some()
}

/// The body (after kind and length) of TCP option `kind` in `opts`.
fn find_option(mut opts: &[u8], kind: u8) -> Option<&[u8]> {
    while let Some(&k) = opts.first() {
        match k {
            TCPOPT_EOL => return None,
            TCPOPT_NOP => opts = &opts[1..],
            _ => {
                let &len = opts.get(1)?;
                if len < 2 || usize::from(len) > opts.len() {
                    return None;
                }
                if k == kind {
                    return Some(&opts[2..usize::from(len)]);
                }
                opts = &opts[usize::from(len)..];
            }
        }
    }
    None
}

/// `(tsval, tsecr)` of the timestamp option (kind 8, RFC 7323), or zeros.
fn timestamps(opts: &[u8]) -> (u32, u32) {
    match find_option(opts, TCPOPT_TIMESTAMP) {
        Some(b) if b.len() == 8 => (
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::pcap::encode_packet;

    /// Encodes with sim-core's capture encoder (valid headers) and parses back.
    fn roundtrip(p: Packet) -> Packet {
        let mut bytes = Vec::new();
        encode_packet(&p, &mut bytes);
        parse_tcp(&bytes).expect("parses")
    }

    fn pkt(src: &str, dst: &str, flags: TcpFlags, len: u32, tfo: bool) -> Packet {
        Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            flags,
            seq: 0x0102_0304,
            ack: 0x0a0b_0c0d,
            payload_len: len,
            fast_open: tfo,
            window: 4096,
            tsval: 0x1122_3344,
            tsecr: 0x5566_7788,
            tag: 0,
        }
    }

    #[test]
    fn parses_v4_and_v6() {
        let p = pkt(
            "10.0.1.1:40000",
            "10.0.0.1:443",
            TcpFlags::ACK | TcpFlags::PSH,
            300,
            false,
        );
        assert_eq!(roundtrip(p), p);
        let p = pkt("[fd00::2]:40000", "[fd00::1]:443", TcpFlags::ACK, 0, false);
        let q = roundtrip(p);
        assert_eq!(q, p);
        assert!(q.is_pure_ack());
        let p = pkt("10.0.1.1:40000", "10.0.0.1:443", TcpFlags::SYN, 12, true);
        assert_eq!(roundtrip(p), p);
        assert_eq!(destination(&[0x45; 20]).unwrap().to_string(), "69.69.69.69");
    }

    #[test]
    fn rejects_non_tcp_and_truncated() {
        let p = pkt("10.0.1.1:1", "10.0.0.1:2", TcpFlags::SYN, 0, false);
        let mut ip = Vec::new();
        encode_packet(&p, &mut ip);
        assert!(parse_tcp(&ip[..30]).is_none());
        let mut udp = ip.to_vec();
        udp[9] = 17;
        assert!(parse_tcp(&udp).is_none());
        assert!(parse_tcp(&[]).is_none());
    }
}
