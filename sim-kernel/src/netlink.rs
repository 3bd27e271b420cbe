//! Minimal netlink: the three `rtnetlink` requests a namespace needs (link
//! up, add an address, add a device route) and the framing shared with
//! `sock_diag` ([`crate::diag`]).
//!
//! Hand-written with `libc` rather than through `rtnetlink` (async, pulls
//! in tokio) or `neli`/`netlink-packet-*` (a family of crates for four
//! fixed-layout messages): each request is a header, a fixed struct and one
//! or two attributes, and the tests check every one against the kernel.
//! Sockets are created by the calling thread, so in its namespace.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::{cvt_size, owned};

const NLMSG_HDRLEN: usize = 16;

/// Rounds up to the netlink alignment (4).
pub const fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// A netlink socket of one protocol.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
    seq: u32,
}

/// One received message: type, flags and payload (after the header).
#[derive(Debug)]
pub struct Message<'a> {
    /// `nlmsg_type`.
    pub kind: u16,
    /// Payload.
    pub payload: &'a [u8],
}

impl NetlinkSocket {
    /// Opens a socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_SOCK_DIAG`)
    /// in the calling thread's namespace.
    pub fn open(protocol: i32) -> io::Result<Self> {
        // SAFETY: plain syscall.
        let fd = owned(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        })?;
        Ok(NetlinkSocket { fd, seq: 1 })
    }

    fn send(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + body.len();
        let mut buf = Vec::with_capacity(align(len));
        buf.extend_from_slice(&(len as u32).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        buf.extend_from_slice(&self.seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(body);
        // SAFETY: zeroed sockaddr_nl is valid; the kernel is pid 0.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: valid buffer and address.
        cvt_size(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(self.seq)
    }

    /// Sends a request with `NLM_F_ACK` and waits for its acknowledgement.
    pub fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        let seq = self.send(kind, flags | libc::NLM_F_ACK as u16, body)?;
        let mut done = None;
        self.receive(seq, |m| {
            if m.kind == libc::NLMSG_ERROR as u16 && m.payload.len() >= 4 {
                let code = i32::from_ne_bytes(m.payload[0..4].try_into().expect("4 bytes"));
                done = Some(code);
                return false;
            }
            true
        })?;
        match done {
            Some(0) => Ok(()),
            Some(code) => Err(io::Error::from_raw_os_error(-code)),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "netlink: no acknowledgement",
            )),
        }
    }

    /// Sends a dump request and calls `each` for every message until
    /// `NLMSG_DONE`.
    pub fn dump(&mut self, kind: u16, body: &[u8], mut each: impl FnMut(&[u8])) -> io::Result<()> {
        let seq = self.send(kind, libc::NLM_F_DUMP as u16, body)?;
        let mut err = None;
        self.receive(seq, |m| match m.kind as i32 {
            libc::NLMSG_DONE => false,
            libc::NLMSG_ERROR => {
                let code = i32::from_ne_bytes(m.payload[0..4].try_into().expect("4 bytes"));
                if code != 0 {
                    err = Some(io::Error::from_raw_os_error(-code));
                }
                false
            }
            _ => {
                each(m.payload);
                true
            }
        })?;
        err.map_or(Ok(()), Err)
    }

    /// Reads messages of sequence `seq` until `on` returns false.
    fn receive(&mut self, seq: u32, mut on: impl FnMut(Message<'_>) -> bool) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: valid buffer.
            let n = cvt_size(unsafe {
                libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
            })?;
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4")) as usize;
                let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2"));
                let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4"));
                if len < NLMSG_HDRLEN || off + len > n {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "netlink: truncated message",
                    ));
                }
                if mseq == seq
                    && !on(Message {
                        kind,
                        payload: &buf[off + NLMSG_HDRLEN..off + len],
                    })
                {
                    return Ok(());
                }
                off += align(len);
            }
        }
    }
}

/// Appends an attribute (`struct rtattr` / `struct nlattr`).
pub fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align(buf.len()), 0);
}

fn family(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// The index of interface `name` in the calling thread's namespace.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

/// `ip link set dev <index> up` (`RTM_NEWLINK` with `IFF_UP` in
/// `ifi_change`).
pub fn link_up(nl: &mut NetlinkSocket, index: u32) -> io::Result<()> {
    // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32.
    let mut body = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    body.extend_from_slice(&(index as i32).to_ne_bytes());
    body.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    body.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    nl.request(libc::RTM_NEWLINK, 0, &body)
}

/// `ip addr add <addr>/<prefix> dev <index>` (IPv6 with `nodad`, so the
/// address is usable at once).
pub fn add_address(nl: &mut NetlinkSocket, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    // struct ifaddrmsg: family, prefixlen, flags, scope (u8 each), index u32.
    let flags = if addr.is_ipv6() {
        libc::IFA_F_NODAD as u8
    } else {
        0
    };
    let mut body = vec![family(addr), prefix, flags, libc::RT_SCOPE_UNIVERSE];
    body.extend_from_slice(&index.to_ne_bytes());
    let bytes = addr_bytes(addr);
    push_attr(&mut body, libc::IFA_LOCAL, &bytes);
    push_attr(&mut body, libc::IFA_ADDRESS, &bytes);
    nl.request(
        libc::RTM_NEWADDR,
        (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
        &body,
    )
}

/// `ip route add <dst>/<prefix> dev <index>` in the main table (a
/// link-scope device route; `prefix = 0` is the default route).
pub fn add_device_route(
    nl: &mut NetlinkSocket,
    index: u32,
    dst: IpAddr,
    prefix: u8,
) -> io::Result<()> {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8), flags u32.
    let mut body = vec![
        family(dst),
        prefix,
        0,
        0,
        libc::RT_TABLE_MAIN,
        libc::RTPROT_BOOT,
        libc::RT_SCOPE_LINK,
        libc::RTN_UNICAST,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes());
    if prefix > 0 {
        push_attr(&mut body, libc::RTA_DST, &addr_bytes(dst));
    }
    push_attr(&mut body, libc::RTA_OIF, &index.to_ne_bytes());
    nl.request(
        libc::RTM_NEWROUTE,
        (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
        &body,
    )
}
