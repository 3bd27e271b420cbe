//! Listener queues through `sock_diag` (`NETLINK_SOCK_DIAG`,
//! `SOCK_DIAG_BY_FAMILY` with `struct inet_diag_req_v2`), as `ss -lnt`
//! reads them.
//!
//! What the kernel reports (`net/ipv4/inet_diag.c`, `tcp_diag.c`):
//! - a listener (`TCP_LISTEN`): `idiag_rqueue` = `sk_ack_backlog` (the
//!   accept queue), `idiag_wqueue` = `sk_max_ack_backlog`, and its inode;
//! - a request socket (`TCP_NEW_SYN_RECV`, dumped from the established
//!   hash when the state mask has bit 12 or `TCPF_SYN_RECV`):
//!   `inet_req_diag_fill` reports state `TCP_SYN_RECV`, `idiag_timer` 1,
//!   the SYN-ACK retransmission count, **inode 0 and no listener**. A
//!   request cannot be attributed to a listener of a reuseport group; only
//!   to its local address and port. Fast Open children (full sockets in
//!   `SYN_RECV`) look the same (inode 0 until accepted).
//!
//! Hand-written (56-byte request, 72-byte reply) rather than through
//! `netlink-packet-sock-diag`: full control of the state mask (bit 12 for
//! `NEW_SYN_RECV`) and no extra crates for two fixed structs; a test checks
//! the decoding against a live listener.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::netlink::NetlinkSocket;

/// `SOCK_DIAG_BY_FAMILY`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `TCP_LISTEN`.
pub const TCP_LISTEN: u8 = 10;
/// `TCP_SYN_RECV`.
pub const TCP_SYN_RECV: u8 = 3;
/// `TCP_NEW_SYN_RECV`.
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// One socket as `INET_DIAG` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagEntry {
    /// `idiag_state` (request sockets are reported as [`TCP_SYN_RECV`]).
    pub state: u8,
    /// `idiag_timer` (1: retransmit timer, which request sockets report).
    pub timer: u8,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// `idiag_rqueue`.
    pub rqueue: u32,
    /// `idiag_wqueue`.
    pub wqueue: u32,
    /// `idiag_inode` (0 for request sockets).
    pub inode: u64,
    /// Socket cookie.
    pub cookie: u64,
}

/// A `sock_diag` socket bound (at creation) to the creating thread's
/// namespace; usable from any thread afterwards.
#[derive(Debug)]
pub struct DiagSocket(NetlinkSocket);

impl DiagSocket {
    /// Opens one in the calling thread's namespace.
    pub fn open() -> std::io::Result<Self> {
        Ok(DiagSocket(NetlinkSocket::open(libc::NETLINK_SOCK_DIAG)?))
    }

    /// Dumps TCP sockets of `family` whose state is in `states` (a bit
    /// mask, `1 << state`).
    pub fn dump(&mut self, family: i32, states: u32) -> std::io::Result<Vec<DiagEntry>> {
        let mut req = [0u8; 56];
        req[0] = family as u8;
        req[1] = libc::IPPROTO_TCP as u8;
        req[4..8].copy_from_slice(&states.to_ne_bytes());
        let mut out = Vec::new();
        self.0.dump(SOCK_DIAG_BY_FAMILY, &req, |m| {
            if let Some(e) = parse_msg(m) {
                out.push(e);
            }
        })?;
        Ok(out)
    }

    /// Listeners and request sockets of both families.
    pub fn listeners_and_requests(&mut self) -> std::io::Result<Vec<DiagEntry>> {
        let states = (1u32 << TCP_LISTEN) | (1 << TCP_SYN_RECV) | (1 << TCP_NEW_SYN_RECV);
        let mut v = self.dump(libc::AF_INET, states)?;
        v.extend(self.dump(libc::AF_INET6, states)?);
        Ok(v)
    }
}

fn addr(family: u8, b: &[u8]) -> IpAddr {
    if i32::from(family) == libc::AF_INET {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        let a: [u8; 16] = b[..16].try_into().expect("16 bytes");
        IpAddr::V6(Ipv6Addr::from(a))
    }
}

/// Decodes a `struct inet_diag_msg`.
fn parse_msg(m: &[u8]) -> Option<DiagEntry> {
    if m.len() < 72 {
        return None;
    }
    let family = m[0];
    let u32_at = |o: usize| u32::from_ne_bytes(m[o..o + 4].try_into().expect("4 bytes"));
    // inet_diag_sockid at 4: sport, dport (be16), src[16], dst[16], if, cookie[2].
    let sport = u16::from_be_bytes([m[4], m[5]]);
    let dport = u16::from_be_bytes([m[6], m[7]]);
    let cookie = u64::from(u32_at(44)) | (u64::from(u32_at(48)) << 32);
    Some(DiagEntry {
        state: m[1],
        timer: m[2],
        local: SocketAddr::new(addr(family, &m[8..24]), sport),
        remote: SocketAddr::new(addr(family, &m[24..40]), dport),
        rqueue: u32_at(56),
        wqueue: u32_at(60),
        inode: u64::from(u32_at(68)),
        cookie,
    })
}
