//! Packet bytes for the program's `data`..`data_end` and
//! `bpf_skb_load_bytes*`: the simulator models segments as structs, so the
//! host writes the frame Linux would have received on loopback (an
//! all-zero Ethernet header, IPv4 or IPv6, TCP with the options Linux puts
//! on a SYN or an ACK) into a reusable buffer.

use crate::ctx::{Skb, ETH_P_IP, ETH_P_IPV6};
use std::net::{IpAddr, SocketAddr};

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// TCP options in the header, as Linux writes them (`tcp_options_write`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TcpOptions {
    /// None: a 20-byte header.
    None,
    /// A SYN's: MSS, SACK-permitted + timestamps, NOP + window scale (40
    /// bytes, the `len` measured for a loopback SYN).
    Syn {
        /// MSS.
        mss: u16,
        /// Window scale shift.
        wscale: u8,
        /// TSval.
        tsval: u32,
    },
    /// NOP, NOP, timestamps (32 bytes: an ACK or data segment).
    Timestamps {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
}

/// One TCP segment to write as a frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TcpSegment {
    /// Source (the client).
    pub src: SocketAddr,
    /// Destination (the listener's address).
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags ([`tcp_flags`]).
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Options.
    pub options: TcpOptions,
    /// Payload length (the payload bytes are zeros: the model has no contents).
    pub payload_len: usize,
}

fn checksum(mut sum: u32, bytes: &[u8]) -> u32 {
    for c in bytes.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl TcpSegment {
    /// Writes the frame into `buf` (cleared first; its capacity is reused)
    /// and returns the [`Skb`] over it. Returns `None` if the addresses are
    /// of different families.
    pub fn write<'a>(&self, buf: &'a mut Vec<u8>) -> Option<Skb<'a>> {
        let v6 = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            _ => return None,
        };
        let mut o = [0u8; 20];
        let n = match self.options {
            TcpOptions::None => 0,
            TcpOptions::Syn { mss, wscale, tsval } => {
                o[..2].copy_from_slice(&[2, 4]);
                o[2..4].copy_from_slice(&mss.to_be_bytes());
                o[4..8].copy_from_slice(&[4, 2, 8, 10]);
                o[8..12].copy_from_slice(&tsval.to_be_bytes());
                o[16..20].copy_from_slice(&[1, 3, 3, wscale]);
                20
            }
            TcpOptions::Timestamps { tsval, tsecr } => {
                o[..4].copy_from_slice(&[1, 1, 8, 10]);
                o[4..8].copy_from_slice(&tsval.to_be_bytes());
                o[8..12].copy_from_slice(&tsecr.to_be_bytes());
                12
            }
        };
        let opts = &o[..n];
        let tcp_len = 20 + opts.len() + self.payload_len;
        buf.clear();
        buf.extend_from_slice(&[0; 12]);
        buf.extend_from_slice(&if v6 { ETH_P_IPV6 } else { ETH_P_IP }.to_be_bytes());
        let net = buf.len();
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let total = (20 + tcp_len) as u16;
                buf.extend_from_slice(&[0x45, 0]);
                buf.extend_from_slice(&total.to_be_bytes());
                buf.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
                buf.extend_from_slice(&s.octets());
                buf.extend_from_slice(&d.octets());
                let c = fold(checksum(0, &buf[net..net + 20]));
                buf[net + 10..net + 12].copy_from_slice(&c.to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                buf.extend_from_slice(&[0x60, 0, 0, 0]);
                buf.extend_from_slice(&(tcp_len as u16).to_be_bytes());
                buf.extend_from_slice(&[6, 64]);
                buf.extend_from_slice(&s.octets());
                buf.extend_from_slice(&d.octets());
            }
            _ => unreachable!("families checked above"),
        }
        let tcp = buf.len();
        buf.extend_from_slice(&self.src.port().to_be_bytes());
        buf.extend_from_slice(&self.dst.port().to_be_bytes());
        buf.extend_from_slice(&self.seq.to_be_bytes());
        buf.extend_from_slice(&self.ack.to_be_bytes());
        buf.push((((20 + opts.len()) / 4) as u8) << 4);
        buf.push(self.flags);
        buf.extend_from_slice(&self.window.to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.extend_from_slice(opts);
        buf.resize(tcp + tcp_len, 0);
        // Checksum over the pseudo-header and the segment.
        let mut sum = 0u32;
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                sum = checksum(sum, &s.octets());
                sum = checksum(sum, &d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                sum = checksum(sum, &s.octets());
                sum = checksum(sum, &d.octets());
            }
            _ => unreachable!("families checked above"),
        }
        sum += 6 + tcp_len as u32;
        let c = fold(checksum(sum, &buf[tcp..]));
        buf[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        Some(Skb {
            bytes: buf,
            mac_offset: Some(0),
            network_offset: net as u16,
            transport_offset: tcp as u16,
            protocol: if v6 { ETH_P_IPV6 } else { ETH_P_IP },
        })
    }
}
