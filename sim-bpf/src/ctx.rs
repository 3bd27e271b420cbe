//! The program's view of the kernel: `struct sk_reuseport_md` (the context,
//! `include/uapi/linux/bpf.h`) and `struct bpf_sock` for `sk` and
//! `migrating_sk`, read with the rules of `sk_reuseport_is_valid_access`,
//! `sk_reuseport_convert_ctx_access`, `bpf_sock_is_valid_access`,
//! `bpf_sock_common_is_valid_access` and `bpf_sock_convert_ctx_access`
//! (`net/core/filter.c`), including the narrow-load rewrite of
//! `convert_ctx_accesses` (`kernel/bpf/verifier.c`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// An opaque socket handle assigned by the host (the simulator uses
/// listener ids). User space passes it where the kernel takes a socket fd,
/// so it must be at most `i32::MAX` (`fd > S32_MAX` is `EINVAL`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SockHandle(pub u64);

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `SOCK_STREAM`.
pub const SOCK_STREAM: u16 = 1;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `ETH_P_IP`.
pub const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_IPV6`.
pub const ETH_P_IPV6: u16 = 0x86dd;

/// `BPF_TCP_*` states (`include/uapi/linux/bpf.h`, equal to the kernel's
/// `TCP_*`), as `bpf_sock.state` shows them.
#[allow(missing_docs)]
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
    pub const NEW_SYN_RECV: u8 = 12;
}

/// `LOOPBACK4_IPV6` (127.0.0.6): what an IPv6 TCP socket bound to a
/// specific address, and its children, show as their IPv4 addresses
/// (`__inet6_bind`, `tcp_v6_syn_recv_sock`).
pub const LOOPBACK4_IPV6: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

/// What the kernel exposes of one socket through `struct bpf_sock`, plus
/// the facts `bpf_sk_select_reuseport` and the socket maps check. Values
/// are as the kernel stores them (addresses in network byte order bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SockInfo {
    /// `skc_family`.
    pub family: u16,
    /// `sk_type` (full sockets only).
    pub sock_type: u16,
    /// `sk_protocol` (full sockets only).
    pub protocol: u8,
    /// `skc_state` (`BPF_TCP_*`).
    pub state: u8,
    /// `skc_rcv_saddr`.
    pub src_ip4: [u8; 4],
    /// `skc_v6_rcv_saddr`.
    pub src_ip6: [u8; 16],
    /// `skc_num`: local port, host byte order.
    pub src_port: u16,
    /// `skc_daddr`.
    pub dst_ip4: [u8; 4],
    /// `skc_v6_daddr`.
    pub dst_ip6: [u8; 16],
    /// Remote port as a number (presented as `skc_dport`, network order).
    pub dst_port: u16,
    /// `sk_bound_dev_if`.
    pub bound_dev_if: u32,
    /// `sk_mark`.
    pub mark: u32,
    /// `sk_priority`.
    pub priority: u32,
    /// A full socket (listener, child) rather than a request socket
    /// (`sk_fullsock`): request sockets are `PTR_TO_SOCK_COMMON`.
    pub full_sock: bool,
    /// In the listening hash (`sk_hashed`), as a reuseport array requires.
    pub hashed: bool,
    /// `reuseport_id` of the socket's group (`sk_reuseport_cb`), if any.
    pub reuseport_id: Option<u32>,
}

fn v4mapped(a: [u8; 4]) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[10] = 0xff;
    v[11] = 0xff;
    v[12..].copy_from_slice(&a);
    v
}

/// `(v4 field, v6 field)` of an address as a socket stores it. IPv4
/// addresses set through `sk_rcv_saddr_set`/`sk_daddr_set` (requests and
/// children: `tcp_v4_init_req`, `tcp_v4_syn_recv_sock`) are mirrored as
/// v4-mapped IPv6 addresses; a listener's (`__inet_bind`) are not. IPv6
/// listeners bound to a specific address and IPv6 children show
/// `LOOPBACK4_IPV6` in the v4 field (`__inet6_bind`,
/// `tcp_v6_syn_recv_sock`); IPv6 requests 0 (`tcp_v6_init_req` sets only
/// the IPv6 addresses).
fn ip_parts(ip: IpAddr, mapped_v6: bool, v6_loopback4: bool) -> ([u8; 4], [u8; 16]) {
    match ip {
        IpAddr::V4(v4) => (
            v4.octets(),
            if mapped_v6 {
                v4mapped(v4.octets())
            } else {
                [0; 16]
            },
        ),
        IpAddr::V6(v6) => {
            let v4 = if let Some(m) = v6.to_ipv4_mapped() {
                m.octets()
            } else if v6.is_unspecified() || !v6_loopback4 {
                [0; 4]
            } else {
                LOOPBACK4_IPV6.octets()
            };
            (v4, v6.octets())
        }
    }
}

impl SockInfo {
    fn tcp(local: SocketAddr, remote: Option<SocketAddr>, state: u8, request: bool) -> Self {
        let full_child = remote.is_some() && !request;
        let (src_ip4, src_ip6) =
            ip_parts(local.ip(), remote.is_some(), remote.is_none() || full_child);
        let (dst_ip4, dst_ip6, dst_port) = match remote {
            Some(r) => {
                let (a, b) = ip_parts(r.ip(), true, full_child);
                (a, b, r.port())
            }
            None => ([0; 4], [0; 16], 0),
        };
        SockInfo {
            family: if local.is_ipv4() { AF_INET } else { AF_INET6 },
            sock_type: SOCK_STREAM,
            protocol: IPPROTO_TCP,
            state,
            src_ip4,
            src_ip6,
            src_port: local.port(),
            dst_ip4,
            dst_ip6,
            dst_port,
            bound_dev_if: 0,
            mark: 0,
            priority: 0,
            full_sock: !request,
            hashed: false,
            reuseport_id: None,
        }
    }

    /// A TCP listener bound to `local` (`state` is `LISTEN`, or `CLOSE`
    /// once it stopped), in reuseport group `reuseport_id`.
    pub fn tcp_listener(local: SocketAddr, state: u8, reuseport_id: Option<u32>) -> Self {
        let mut s = Self::tcp(local, None, state, false);
        s.hashed = state == tcp_state::LISTEN;
        s.reuseport_id = reuseport_id;
        s
    }

    /// A request socket (`NEW_SYN_RECV`): only `sock_common` fields exist.
    pub fn tcp_request(local: SocketAddr, remote: SocketAddr) -> Self {
        Self::tcp(local, Some(remote), tcp_state::NEW_SYN_RECV, true)
    }

    /// A full child socket (`ESTABLISHED`, `SYN_RECV` for Fast Open,
    /// `CLOSE_WAIT`, ...).
    pub fn tcp_child(local: SocketAddr, remote: SocketAddr, state: u8) -> Self {
        Self::tcp(local, Some(remote), state, false)
    }

    /// The `struct bpf_sock` bytes this socket presents (80 bytes, the UAPI
    /// layout, little-endian), before field access rules.
    fn view_value(&self, field: SockField) -> u64 {
        match field {
            SockField::BoundDevIf => self.bound_dev_if as u64,
            SockField::Family => self.family as u64,
            SockField::Type => self.sock_type as u64,
            SockField::Protocol => self.protocol as u64,
            SockField::Mark => self.mark as u64,
            SockField::Priority => self.priority as u64,
            SockField::SrcIp4 => u32::from_le_bytes(self.src_ip4) as u64,
            SockField::SrcIp6(i) => u32::from_le_bytes(word(&self.src_ip6, i)) as u64,
            SockField::SrcPort => self.src_port as u64,
            // `skc_dport` holds the port in network byte order.
            SockField::DstPort => u16::from_le_bytes(self.dst_port.to_be_bytes()) as u64,
            SockField::DstIp4 => u32::from_le_bytes(self.dst_ip4) as u64,
            SockField::DstIp6(i) => u32::from_le_bytes(word(&self.dst_ip6, i)) as u64,
            SockField::State => self.state as u64,
            // No CONFIG_SOCK_RX_QUEUE_MAPPING value in the model: -1.
            SockField::RxQueueMapping => 0xffff_ffff,
        }
    }
}

fn word(a: &[u8; 16], i: usize) -> [u8; 4] {
    [a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SockField {
    BoundDevIf,
    Family,
    Type,
    Protocol,
    Mark,
    Priority,
    SrcIp4,
    SrcIp6(usize),
    SrcPort,
    DstPort,
    DstIp4,
    DstIp6(usize),
    State,
    RxQueueMapping,
}

/// Size of `struct bpf_sock`.
pub const BPF_SOCK_SIZE: u32 = 80;

/// Reads `size` bytes at `off` of the `bpf_sock` of `s`. `common` is true
/// for `PTR_TO_SOCK_COMMON` (a `migrating_sk`), which cannot read
/// `type`..`priority`.
pub(crate) fn sock_load(
    s: &SockInfo,
    off: u32,
    size: u8,
    common: bool,
) -> Result<u64, &'static str> {
    use SockField::*;
    if off >= BPF_SOCK_SIZE {
        return Err("beyond struct bpf_sock");
    }
    if !off.is_multiple_of(size as u32) {
        return Err("misaligned");
    }
    if common && (8..24).contains(&off) {
        return Err("type, protocol, mark and priority are not in sock_common");
    }
    let base = off & !3;
    // (field, target size in bytes: the kernel field the load is rewritten to)
    let (field, target, narrow_ok) = match base {
        0 => (BoundDevIf, 4, false),
        4 => (Family, 2, true),
        8 => (Type, 2, true),
        12 => (Protocol, 2, true),
        16 => (Mark, 4, false),
        20 => (Priority, 4, false),
        24 => (SrcIp4, 4, true),
        28..=40 => (SrcIp6(((base - 28) / 4) as usize), 4, true),
        44 => (SrcPort, 2, true),
        48 => (DstPort, 2, true),
        52 => (DstIp4, 4, true),
        56..=68 => (DstIp6(((base - 56) / 4) as usize), 4, true),
        72 => (State, 1, true),
        _ => (RxQueueMapping, 4, true),
    };
    if field == DstPort {
        // `dst_port` is a 2-byte field: 4-byte loads at 48, and 1- or
        // 2-byte loads of it; the padding after it is not readable.
        return match (off, size) {
            (48, 4) | (48, 2) => Ok(s.view_value(DstPort)),
            (48, 1) => Ok(s.view_value(DstPort) & 0xff),
            (49, 1) => Ok(s.view_value(DstPort) >> 8),
            _ => Err("padding after dst_port"),
        };
    }
    if size == 8 || (!narrow_ok && size != 4) {
        return Err("invalid access size");
    }
    let v = s.view_value(field);
    Ok(narrow(v, off, size, target))
}

/// `convert_ctx_accesses` for a narrower load of a 4-byte field whose
/// kernel source is `target` bytes: the load is rewritten to the whole
/// field, then shifted and masked only when `size < target`.
fn narrow(v: u64, off: u32, size: u8, target: u8) -> u64 {
    if size >= 4 || size >= target {
        return v;
    }
    let shift = (off & 3) * 8;
    (v >> shift) & ((1u64 << (size * 8)) - 1)
}

/// `sizeof(struct sk_reuseport_md)`.
pub const MD_SIZE: u32 = 56;
/// `offsetof(struct sk_reuseport_md, data)`.
pub const MD_DATA: u32 = 0;
/// `offsetof(struct sk_reuseport_md, data_end)`.
pub const MD_DATA_END: u32 = 8;
/// `offsetof(struct sk_reuseport_md, len)`.
pub const MD_LEN: u32 = 16;
/// `offsetof(struct sk_reuseport_md, eth_protocol)`.
pub const MD_ETH_PROTOCOL: u32 = 20;
/// `offsetof(struct sk_reuseport_md, ip_protocol)`.
pub const MD_IP_PROTOCOL: u32 = 24;
/// `offsetof(struct sk_reuseport_md, bind_inany)`.
pub const MD_BIND_INANY: u32 = 28;
/// `offsetof(struct sk_reuseport_md, hash)`.
pub const MD_HASH: u32 = 32;
/// `offsetof(struct sk_reuseport_md, sk)`.
pub const MD_SK: u32 = 40;
/// `offsetof(struct sk_reuseport_md, migrating_sk)`.
pub const MD_MIGRATING_SK: u32 = 48;

/// A context field, resolved by [`md_field`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum MdField {
    Data,
    DataEnd,
    Sk,
    MigratingSk,
    /// A 4-byte scalar, read with narrowing; `target` is the kernel
    /// field's size (`skb->protocol` is 2 bytes).
    Scalar {
        which: MdScalar,
        target: u8,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum MdScalar {
    Len,
    EthProtocol,
    IpProtocol,
    BindInany,
    Hash,
}

/// `sk_reuseport_is_valid_access`: which field an access reads, or why the
/// verifier would refuse it.
pub(crate) fn md_field(off: u32, size: u8) -> Result<MdField, &'static str> {
    if off >= MD_SIZE {
        return Err("beyond struct sk_reuseport_md");
    }
    if !off.is_multiple_of(size as u32) {
        return Err("misaligned");
    }
    let ptr = |f: MdField| {
        if size == 8 {
            Ok(f)
        } else {
            Err("pointer fields are read with 8-byte loads only")
        }
    };
    match off {
        MD_DATA => ptr(MdField::Data),
        MD_DATA_END => ptr(MdField::DataEnd),
        MD_SK => ptr(MdField::Sk),
        MD_MIGRATING_SK => ptr(MdField::MigratingSk),
        MD_HASH => {
            if size == 4 {
                Ok(MdField::Scalar {
                    which: MdScalar::Hash,
                    target: 4,
                })
            } else {
                Err("hash is read with 4-byte loads only")
            }
        }
        _ => {
            let base = off & !3;
            if size > 4 {
                return Err("invalid access size");
            }
            let (which, target) = match base {
                MD_LEN => (MdScalar::Len, 4),
                MD_ETH_PROTOCOL => {
                    if size < 2 {
                        return Err("eth_protocol is read with 2- or 4-byte loads");
                    }
                    (MdScalar::EthProtocol, 2)
                }
                // `sk->sk_protocol` is a u16, `reuse_kern->bind_inany` a bool.
                MD_IP_PROTOCOL => (MdScalar::IpProtocol, 2),
                MD_BIND_INANY => (MdScalar::BindInany, 1),
                _ => return Err("no field at this offset"),
            };
            Ok(MdField::Scalar { which, target })
        }
    }
}

/// Reads a scalar context field with the kernel's narrowing.
pub(crate) fn md_scalar(v: u64, off: u32, size: u8, target: u8) -> u64 {
    narrow(v, off, size, target)
}

/// The packet a program sees (`reuse_kern->skb`), when the kernel has one:
/// the SYN or final ACK being processed. `bytes` starts at the MAC header
/// when there is one, else at the network header.
#[derive(Copy, Clone, Debug)]
pub struct Skb<'a> {
    /// Frame bytes from the first header present to the end of the segment.
    pub bytes: &'a [u8],
    /// Offset of the MAC header in `bytes`, if set (`skb_mac_header_was_set`).
    pub mac_offset: Option<u16>,
    /// Offset of the IP header (`skb_network_header`).
    pub network_offset: u16,
    /// Offset of the TCP header: where `data` starts (`skb->data` in
    /// `tcp_v4_rcv`/`tcp_v6_rcv`).
    pub transport_offset: u16,
    /// `skb->protocol` in host byte order (`ETH_P_IP`, `ETH_P_IPV6`).
    pub protocol: u16,
}

impl<'a> Skb<'a> {
    /// `data`..`data_end`: the TCP header and payload (the model's skbs
    /// are linear, so `skb_headlen == len`).
    pub fn data(&self) -> &'a [u8] {
        self.bytes
            .get(self.transport_offset as usize..)
            .unwrap_or(&[])
    }
}

/// One call of the program, as `bpf_run_sk_reuseport` sets up
/// `struct sk_reuseport_kern`.
#[derive(Copy, Clone, Debug)]
pub struct ReuseportCtx<'a> {
    /// `reuse_kern->sk`: on listener selection the group member the lookup
    /// found first (`inet_lhash2_lookup` → `reuseport_select_sock`); on
    /// migration the closed listener (`reuseport_migrate_sock`).
    pub sk: SockHandle,
    /// `migrating_sk`: `None` on listener selection; the request socket
    /// (`NEW_SYN_RECV`) or the child (`ESTABLISHED`, `SYN_RECV`,
    /// `CLOSE_WAIT`) on migration.
    pub migrating_sk: Option<SockHandle>,
    /// `hash`: the flow hash (`migrating_sk->sk_hash` on migration).
    pub hash: u32,
    /// `reuse->reuseport_id` of the calling group.
    pub reuseport_id: u32,
    /// `reuse->bind_inany`.
    pub bind_inany: bool,
    /// The packet, or `None` on the timer and close paths, where
    /// `reuseport_migrate_sock` runs the program on `alloc_skb(0)`: empty
    /// data, `len == 0`, `eth_protocol == 0`, no MAC header.
    pub skb: Option<Skb<'a>>,
}

/// The `bpf_sock.family`-style helper: address family of an address.
pub fn family_of(addr: &SocketAddr) -> u16 {
    if addr.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}
