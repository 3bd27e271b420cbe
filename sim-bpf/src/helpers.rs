//! Helpers available to `BPF_PROG_TYPE_SK_REUSEPORT` (`sk_reuseport_func_proto`
//! and `bpf_base_func_proto`), with the kernel's return values.

use crate::ctx::SockHandle;
use crate::env::Env;
use crate::error::{Errno, Fault};
use crate::insn::STACK_SIZE;
use crate::maps::{MapId, MapType, BPF_F_RDONLY_PROG};
use crate::printk;
use crate::vm::{
    decode_ptr, ptr, well_formed, Machine, K_CTX, K_MAP, K_PACKET, K_SOCK, K_STACK, K_VALUE,
};

/// `BPF_FUNC_map_lookup_elem`.
pub const MAP_LOOKUP_ELEM: i32 = 1;
/// `BPF_FUNC_map_update_elem`.
pub const MAP_UPDATE_ELEM: i32 = 2;
/// `BPF_FUNC_map_delete_elem`.
pub const MAP_DELETE_ELEM: i32 = 3;
/// `BPF_FUNC_ktime_get_ns`.
pub const KTIME_GET_NS: i32 = 5;
/// `BPF_FUNC_trace_printk` (GPL only).
pub const TRACE_PRINTK: i32 = 6;
/// `BPF_FUNC_get_prandom_u32`.
pub const GET_PRANDOM_U32: i32 = 7;
/// `BPF_FUNC_get_smp_processor_id` (always CPU 0).
pub const GET_SMP_PROCESSOR_ID: i32 = 8;
/// `BPF_FUNC_skb_load_bytes`.
pub const SKB_LOAD_BYTES: i32 = 26;
/// `BPF_FUNC_get_numa_node_id` (always node 0).
pub const GET_NUMA_NODE_ID: i32 = 42;
/// `BPF_FUNC_get_socket_cookie`.
pub const GET_SOCKET_COOKIE: i32 = 46;
/// `BPF_FUNC_skb_load_bytes_relative`.
pub const SKB_LOAD_BYTES_RELATIVE: i32 = 68;
/// `BPF_FUNC_sk_select_reuseport`.
pub const SK_SELECT_REUSEPORT: i32 = 82;
/// `BPF_FUNC_ktime_get_boot_ns` (the same virtual clock).
pub const KTIME_GET_BOOT_NS: i32 = 125;
/// `BPF_FUNC_ktime_get_coarse_ns`.
pub const KTIME_GET_COARSE_NS: i32 = 160;

/// The helper ids the simulator implements.
pub const SUPPORTED: [i32; 14] = [
    MAP_LOOKUP_ELEM,
    MAP_UPDATE_ELEM,
    MAP_DELETE_ELEM,
    KTIME_GET_NS,
    TRACE_PRINTK,
    GET_PRANDOM_U32,
    GET_SMP_PROCESSOR_ID,
    SKB_LOAD_BYTES,
    GET_NUMA_NODE_ID,
    GET_SOCKET_COOKIE,
    SKB_LOAD_BYTES_RELATIVE,
    SK_SELECT_REUSEPORT,
    KTIME_GET_BOOT_NS,
    KTIME_GET_COARSE_NS,
];

/// `BPF_HDR_START_MAC`.
const BPF_HDR_START_MAC: u64 = 0;
/// `BPF_HDR_START_NET`.
const BPF_HDR_START_NET: u64 = 1;
const INT_MAX: u64 = i32::MAX as u64;

fn arg_err(helper: &'static str, reason: impl Into<String>) -> Fault {
    Fault::HelperArgument {
        helper,
        reason: reason.into(),
    }
}

impl<E: Env> Machine<'_, '_, E> {
    pub(crate) fn helper(&mut self, id: i32) -> Result<u64, Fault> {
        let r = &self.regs;
        let (r1, r2, r3, r4, r5) = (r[1], r[2], r[3], r[4], r[5]);
        let r = [0, r1, r2, r3, r4, r5];
        match id {
            MAP_LOOKUP_ELEM => self.map_lookup(r[1], r[2]),
            MAP_UPDATE_ELEM => self.map_update(r[1], r[2], r[3], r[4]),
            MAP_DELETE_ELEM => self.map_delete(r[1], r[2]),
            KTIME_GET_NS | KTIME_GET_BOOT_NS => Ok(self.env.ktime_ns()),
            KTIME_GET_COARSE_NS => Ok(self.env.ktime_coarse_ns()),
            TRACE_PRINTK => self.trace_printk(r[1], r[2], [r[3], r[4], r[5]]),
            GET_PRANDOM_U32 => Ok(self.env.prandom_u32() as u64),
            GET_SMP_PROCESSOR_ID | GET_NUMA_NODE_ID => Ok(0),
            SKB_LOAD_BYTES => self.skb_load_bytes(r[1], r[2], r[3], r[4], None),
            SKB_LOAD_BYTES_RELATIVE => self.skb_load_bytes(r[1], r[2], r[3], r[4], Some(r[5])),
            GET_SOCKET_COOKIE => self.socket_cookie(r[1]),
            SK_SELECT_REUSEPORT => self.sk_select_reuseport(r[1], r[2], r[3]),
            _ => Err(Fault::UnsupportedHelper { id }),
        }
    }

    fn map_arg(&self, helper: &'static str, v: u64) -> Result<MapId, Fault> {
        let p = decode_ptr(v);
        if p.kind != K_MAP || self.maps.get(MapId(p.map)).is_none() || p.off != 0 {
            return Err(arg_err(
                helper,
                format!("argument 1 is not a map pointer ({v:#x})"),
            ));
        }
        Ok(MapId(p.map))
    }

    /// Copies `len` readable bytes at `addr` (stack, map value, packet) into
    /// the scratch buffer, as the verifier's `check_helper_mem_access` allows.
    fn read_arg(&mut self, helper: &'static str, addr: u64, len: usize) -> Result<(), Fault> {
        self.scratch.clear();
        let p = decode_ptr(addr);
        if !well_formed(&p) {
            return Err(Fault::InvalidAddress {
                access: "read",
                addr,
            });
        }
        let off = p.off as usize;
        let bytes: &[u8] = match p.kind {
            K_STACK if (p.slot as usize) <= self.depth => {
                let base = p.slot as usize * STACK_SIZE;
                &self.stack[base..base + STACK_SIZE]
            }
            K_VALUE => self.maps.value(MapId(p.map), p.slot).unwrap_or(&[]),
            K_PACKET => self.call.data,
            _ => {
                return Err(arg_err(
                    helper,
                    format!(
                        "memory argument is not a stack, map value or packet pointer ({addr:#x})"
                    ),
                ))
            }
        };
        match bytes.get(off..off.saturating_add(len)) {
            Some(b) => {
                self.scratch.extend_from_slice(b);
                Ok(())
            }
            None => {
                let region = self.region_name(&p);
                Err(Fault::OutOfBounds {
                    access: "read",
                    region,
                    offset: if p.kind == K_STACK {
                        off as i64 - STACK_SIZE as i64
                    } else {
                        off as i64
                    },
                    size: len.min(255) as u8,
                    len: bytes.len() as u64,
                })
            }
        }
    }

    /// Writes `data` to writable memory at `addr` (stack or map value).
    fn write_arg(&mut self, helper: &'static str, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let p = decode_ptr(addr);
        if !well_formed(&p) {
            return Err(Fault::InvalidAddress {
                access: "write",
                addr,
            });
        }
        let off = p.off as usize;
        let region = self.region_name(&p);
        let dest: &mut [u8] = match p.kind {
            K_STACK if (p.slot as usize) <= self.depth => {
                let base = p.slot as usize * STACK_SIZE;
                &mut self.stack[base..base + STACK_SIZE]
            }
            K_VALUE => {
                let id = MapId(p.map);
                if self
                    .maps
                    .get(id)
                    .is_some_and(|m| m.def().flags & BPF_F_RDONLY_PROG != 0)
                {
                    return Err(Fault::ReadOnly { region });
                }
                self.maps.value_mut(id, p.slot).unwrap_or(&mut [])
            }
            _ => {
                return Err(arg_err(
                    helper,
                    format!("destination is not writable memory ({addr:#x})"),
                ))
            }
        };
        let len = dest.len();
        match dest.get_mut(off..off.saturating_add(data.len())) {
            Some(d) => {
                d.copy_from_slice(data);
                Ok(())
            }
            None => Err(Fault::OutOfBounds {
                access: "write",
                region,
                offset: if p.kind == K_STACK {
                    off as i64 - STACK_SIZE as i64
                } else {
                    off as i64
                },
                size: data.len().min(255) as u8,
                len: len as u64,
            }),
        }
    }

    fn key_arg(&mut self, helper: &'static str, map: MapId, key: u64) -> Result<(), Fault> {
        let ks = self.maps.def(map).key_size as usize;
        self.read_arg(helper, key, ks)
    }

    /// `bpf_map_lookup_elem`.
    fn map_lookup(&mut self, m: u64, key: u64) -> Result<u64, Fault> {
        const H: &str = "bpf_map_lookup_elem";
        let id = self.map_arg(H, m)?;
        let t = self.maps.def(id).map_type;
        match t {
            MapType::ReuseportSockarray => {
                return Err(arg_err(
                    H,
                    "the verifier allows only bpf_sk_select_reuseport on a reuseport_sockarray \
                     (check_map_func_compatibility)",
                ))
            }
            MapType::SockMap | MapType::SockHash => {
                return Err(arg_err(
                    H,
                    "a sockmap lookup returns a referenced socket that must be released with \
                     bpf_sk_release, which SK_REUSEPORT programs cannot call (the verifier rejects it)",
                ))
            }
            _ => {}
        }
        self.key_arg(H, id, key)?;
        if matches!(t, MapType::ArrayOfMaps | MapType::HashOfMaps) {
            return Ok(self
                .maps
                .prog_lookup_inner(id, &self.scratch[..])
                .map_or(0, |inner| ptr(K_MAP, inner.0, 0, 0)));
        }
        Ok(self
            .maps
            .prog_lookup_slot(id, &self.scratch[..])
            .map_or(0, |slot| ptr(K_VALUE, id.0, slot, 0)))
    }

    /// `bpf_map_update_elem`.
    fn map_update(&mut self, m: u64, key: u64, value: u64, flags: u64) -> Result<u64, Fault> {
        const H: &str = "bpf_map_update_elem";
        let id = self.map_arg(H, m)?;
        let def = self.maps.def(id).clone();
        match def.map_type {
            MapType::Array | MapType::PercpuArray | MapType::Hash => {
                if def.flags & BPF_F_RDONLY_PROG != 0 {
                    return Err(arg_err(
                        H,
                        format!("map {:?} is read-only for programs", def.name),
                    ));
                }
                self.key_arg(H, id, key)?;
                let k = std::mem::take(self.scratch);
                let r = self.read_arg(H, value, def.value_size as usize);
                let v = std::mem::replace(self.scratch, k);
                r?;
                let res = self.maps.update_bytes(id, &self.scratch[..], &v, flags);
                Ok(res.map_or_else(Errno::as_ret, |_| 0))
            }
            MapType::SockMap | MapType::SockHash => {
                // The value is a socket (`ARG_PTR_TO_BTF_ID_SOCK_COMMON`).
                let p = decode_ptr(value);
                if p.kind != K_SOCK {
                    return Err(arg_err(
                        H,
                        "the value of a sockmap update must be a socket pointer",
                    ));
                }
                let h = self.sock_handle(p.slot)?;
                let info = self.sock_info(p.slot)?;
                self.key_arg(H, id, key)?;
                let res = self
                    .maps
                    .update_sock(id, &self.scratch[..], h, Some(info), flags);
                Ok(res.map_or_else(Errno::as_ret, |_| 0))
            }
            _ => Err(arg_err(
                H,
                format!(
                    "programs cannot update a {} (the verifier rejects it)",
                    def.map_type.name()
                ),
            )),
        }
    }

    /// `bpf_map_delete_elem`.
    fn map_delete(&mut self, m: u64, key: u64) -> Result<u64, Fault> {
        const H: &str = "bpf_map_delete_elem";
        let id = self.map_arg(H, m)?;
        let t = self.maps.def(id).map_type;
        if matches!(
            t,
            MapType::ReuseportSockarray | MapType::ArrayOfMaps | MapType::HashOfMaps
        ) {
            return Err(arg_err(
                H,
                format!(
                    "programs cannot delete from a {} (the verifier rejects it)",
                    t.name()
                ),
            ));
        }
        self.key_arg(H, id, key)?;
        let res = {
            let k = std::mem::take(self.scratch);
            let r = self.maps.delete(id, &k);
            *self.scratch = k;
            r
        };
        Ok(res.map_or_else(Errno::as_ret, |_| 0))
    }

    fn sock_handle(&self, slot: u32) -> Result<SockHandle, Fault> {
        match slot {
            0 => Ok(self.call.sk),
            _ => self.call.migrating.ok_or(Fault::InvalidAddress {
                access: "read",
                addr: 0,
            }),
        }
    }

    /// `bpf_get_socket_ptr_cookie`: 0 for NULL.
    fn socket_cookie(&mut self, sk: u64) -> Result<u64, Fault> {
        if sk == 0 {
            return Ok(0);
        }
        let p = decode_ptr(sk);
        if p.kind != K_SOCK || p.off != 0 {
            return Err(arg_err(
                "bpf_get_socket_cookie",
                "argument is not a socket pointer",
            ));
        }
        let h = self.sock_handle(p.slot)?;
        Ok(self.env.socket_cookie(h))
    }

    /// `sk_select_reuseport` (`net/core/filter.c`).
    fn sk_select_reuseport(&mut self, ctx: u64, m: u64, key: u64) -> Result<u64, Fault> {
        const H: &str = "bpf_sk_select_reuseport";
        if decode_ptr(ctx).kind != K_CTX {
            return Err(arg_err(H, "argument 1 must be the context"));
        }
        let id = self.map_arg(H, m)?;
        let t = self.maps.def(id).map_type;
        if !matches!(
            t,
            MapType::ReuseportSockarray | MapType::SockMap | MapType::SockHash
        ) {
            return Err(arg_err(
                H,
                format!(
                    "map type {} is not a reuseport_sockarray, sockmap or sockhash",
                    t.name()
                ),
            ));
        }
        self.key_arg(H, id, key)?;
        let Some(sel) = self.maps.sock_lookup(id, &self.scratch[..]) else {
            return Ok(Errno::NoEnt.as_ret());
        };
        let Some(info) = self.env.sock(sel) else {
            return Ok(Errno::NoEnt.as_ret());
        };
        let Some(rid) = info.reuseport_id else {
            // Unhashed: ENOENT from a reuseport array; a sockmap socket may
            // never have been in a group.
            let e = if t == MapType::ReuseportSockarray {
                Errno::NoEnt
            } else {
                Errno::Inval
            };
            return Ok(e.as_ret());
        };
        if rid != self.call.reuseport_id {
            let me = self.sock_info(0)?;
            let e = if me.protocol != info.protocol {
                Errno::ProtoType
            } else if me.family != info.family {
                Errno::AfNoSupport
            } else {
                Errno::BadFd
            };
            return Ok(e.as_ret());
        }
        self.call.selected = Some(sel);
        Ok(0)
    }

    /// `bpf_skb_load_bytes` and `bpf_skb_load_bytes_relative` on
    /// `reuse_kern->skb` (`alloc_skb(0)` when the kernel had no packet).
    fn skb_load_bytes(
        &mut self,
        ctx: u64,
        offset: u64,
        to: u64,
        len: u64,
        start: Option<u64>,
    ) -> Result<u64, Fault> {
        let name = if start.is_some() {
            "bpf_skb_load_bytes_relative"
        } else {
            "bpf_skb_load_bytes"
        };
        if decode_ptr(ctx).kind != K_CTX {
            return Err(arg_err(name, "argument 1 must be the context"));
        }
        let len = len as u32 as usize;
        if len == 0 {
            return Err(arg_err(name, "zero-sized read (ARG_CONST_SIZE)"));
        }
        if len > STACK_SIZE && decode_ptr(to).kind != K_VALUE {
            return Err(arg_err(
                name,
                format!("{len} bytes cannot fit the destination"),
            ));
        }
        if len > 1 << 20 {
            return Err(arg_err(
                name,
                format!("{len} bytes is larger than any map value"),
            ));
        }
        let offset = offset as u32 as u64;
        let src: Option<&[u8]> = match start {
            None => {
                let d = self.call.data;
                (offset <= INT_MAX)
                    .then(|| d.get(offset as usize..offset as usize + len))
                    .flatten()
            }
            Some(hdr) => {
                let skb = self.call.skb;
                let base = match (hdr, skb) {
                    _ if offset > 0xffff => None,
                    (BPF_HDR_START_MAC, Some(s)) => s.mac_offset.map(|m| (s.bytes, m as usize)),
                    (BPF_HDR_START_NET, Some(s)) => Some((s.bytes, s.network_offset as usize)),
                    _ => None,
                };
                base.and_then(|(b, at)| b.get(at + offset as usize..at + offset as usize + len))
            }
        };
        match src {
            Some(b) => {
                let b = b.to_vec();
                self.write_arg(name, to, &b)?;
                Ok(0)
            }
            None => {
                self.write_arg(name, to, &vec![0u8; len])?;
                Ok(Errno::Fault.as_ret())
            }
        }
    }

    /// `bpf_trace_printk`.
    fn trace_printk(&mut self, fmt: u64, size: u64, args: [u64; 3]) -> Result<u64, Fault> {
        const H: &str = "bpf_trace_printk";
        if !self.gpl {
            return Err(arg_err(
                H,
                "GPL-only helper called from a program whose license is not GPL-compatible",
            ));
        }
        self.read_arg(H, fmt, size as u32 as usize)?;
        let f = std::mem::take(self.scratch);
        let res = printk::format(&f, &args, self);
        *self.scratch = f;
        match res {
            Ok(line) => {
                let n = line.len() as u64;
                self.env.trace_printk(self.program, &line);
                Ok(n)
            }
            Err(()) => Ok(Errno::Inval.as_ret()),
        }
    }
}

impl<E: Env> printk::ReadMem for Machine<'_, '_, E> {
    fn read_mem(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            out.push(self.load(addr.wrapping_add(i as u64), 0, 1).ok()? as u8);
        }
        Some(out)
    }
}
