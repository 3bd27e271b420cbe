//! The user-space side of the maps (the `bpf()` syscall's
//! `BPF_MAP_UPDATE_ELEM`, `BPF_MAP_LOOKUP_ELEM`, `BPF_MAP_DELETE_ELEM`),
//! and global variables by name.

use super::{
    check_flags, exist_check, index_of, MapId, MapSet, MapType, Store, BPF_F_INNER_MAP, BPF_NOEXIST,
};
use crate::ctx::SockHandle;
use crate::env::Sockets;
use crate::error::Errno;

impl MapSet {
    /// `BPF_MAP_UPDATE_ELEM`. For socket maps `value` holds the socket
    /// "fd" (a [`SockHandle`]) as a 4- or 8-byte integer; for map-in-map it
    /// holds the inner [`MapId`] as 4 bytes.
    pub fn update(
        &mut self,
        id: MapId,
        key: &[u8],
        value: &[u8],
        flags: u64,
        sockets: &dyn Sockets,
    ) -> Result<(), Errno> {
        let def = self.map(id)?.def.clone();
        if key.len() != def.key_size as usize {
            return Err(Errno::Inval);
        }
        let vs = def.value_size as usize;
        match def.map_type {
            MapType::Array | MapType::Hash => {
                if value.len() != vs {
                    return Err(Errno::Inval);
                }
                self.update_bytes(id, key, value, flags)
            }
            MapType::PercpuArray => {
                // One possible CPU: `round_up(value_size, 8)` bytes.
                if value.len() != vs && value.len() != vs.div_ceil(8) * 8 {
                    return Err(Errno::Inval);
                }
                self.update_bytes(id, key, &value[..vs], flags)
            }
            MapType::ReuseportSockarray | MapType::SockMap | MapType::SockHash => {
                let fd = match value.len() {
                    4 if vs == 4 => u32::from_le_bytes(value.try_into().expect("4 bytes")) as u64,
                    8 if vs == 8 => u64::from_le_bytes(value.try_into().expect("8 bytes")),
                    _ => return Err(Errno::Inval),
                };
                if fd > i32::MAX as u64 {
                    return Err(Errno::Inval);
                }
                let sk = SockHandle(fd);
                self.update_sock(id, key, sk, sockets.sock(sk), flags)
            }
            MapType::ArrayOfMaps | MapType::HashOfMaps => {
                let Ok(v4) = <[u8; 4]>::try_from(value) else {
                    return Err(Errno::Inval);
                };
                let inner = MapId(u32::from_le_bytes(v4));
                let inner_def = self.map(inner)?.def.clone();
                let tmpl = def.inner.as_deref().expect("checked at creation");
                // `bpf_map_meta_equal`.
                let same = inner_def.map_type == tmpl.map_type
                    && inner_def.key_size == tmpl.key_size
                    && inner_def.value_size == tmpl.value_size
                    && inner_def.flags == tmpl.flags
                    && (tmpl.flags & BPF_F_INNER_MAP != 0
                        || inner_def.max_entries == tmpl.max_entries);
                if !same {
                    return Err(Errno::Inval);
                }
                check_flags(flags)?;
                let max = def.max_entries;
                match &mut self.maps[id.0 as usize].store {
                    Store::MapArray(v) => {
                        let i = index_of(key);
                        if i >= max {
                            return Err(Errno::TooBig);
                        }
                        if flags & BPF_NOEXIST != 0 {
                            return Err(Errno::Exist);
                        }
                        v[i as usize] = Some(inner);
                    }
                    Store::MapHash(slab, v) => {
                        let found = slab.find(key);
                        exist_check(found.is_some(), flags)?;
                        let s = match found {
                            Some(s) => s as usize,
                            None => {
                                if slab.len() >= max as usize {
                                    return Err(Errno::TooBig);
                                }
                                slab.insert(key) as usize
                            }
                        };
                        if v.len() <= s {
                            v.resize(s + 1, None);
                        }
                        v[s] = Some(inner);
                    }
                    _ => unreachable!("map-in-map store"),
                }
                Ok(())
            }
        }
    }

    /// `BPF_MAP_LOOKUP_ELEM`. Socket maps return the socket cookie (8
    /// bytes; `ENOSPC` for 4-byte values, as `bpf_fd_reuseport_array_lookup_elem`
    /// and `sock_map_lookup_sys` do); map-in-map returns the inner map id.
    pub fn lookup(
        &self,
        id: MapId,
        key: &[u8],
        sockets: &mut dyn Sockets,
    ) -> Result<Vec<u8>, Errno> {
        let m = self.map(id)?;
        if key.len() != m.def.key_size as usize {
            return Err(Errno::Inval);
        }
        match &m.store {
            Store::Array(_) | Store::Hash(..) => {
                let slot = self.prog_lookup_slot(id, key).ok_or(Errno::NoEnt)?;
                let mut v = self.value(id, slot).expect("slot in range").to_vec();
                if m.def.map_type == MapType::PercpuArray {
                    v.resize(v.len().div_ceil(8) * 8, 0);
                }
                Ok(v)
            }
            Store::SockArray(_) | Store::SockHash(..) => {
                if m.def.value_size != 8 {
                    return Err(Errno::NoSpc);
                }
                let sk = self.sock_lookup(id, key).ok_or(Errno::NoEnt)?;
                Ok(sockets.socket_cookie(sk).to_le_bytes().to_vec())
            }
            Store::MapArray(_) | Store::MapHash(..) => {
                let inner = self.prog_lookup_inner(id, key).ok_or(Errno::NoEnt)?;
                Ok(inner.0.to_le_bytes().to_vec())
            }
        }
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn delete_user(&mut self, id: MapId, key: &[u8]) -> Result<(), Errno> {
        let m = self.map(id)?;
        if key.len() != m.def.key_size as usize {
            return Err(Errno::Inval);
        }
        self.delete(id, key)
    }

    /// The socket an entry holds (for tools and tests; user space sees only
    /// cookies).
    pub fn socket_at(&self, id: MapId, key: &[u8]) -> Option<SockHandle> {
        let m = self.maps.get(id.0 as usize)?;
        if !m.def.map_type.holds_sockets() || key.len() != m.def.key_size as usize {
            return None;
        }
        self.sock_lookup(id, key)
    }

    /// Reads a global variable of a data section map by name, as
    /// little-endian bytes.
    pub fn global(&self, name: &str) -> Option<&[u8]> {
        self.maps.iter().enumerate().find_map(|(i, m)| {
            let g = m.def.globals.iter().find(|g| g.name == name)?;
            let v = self.value(MapId(i as u32), 0)?;
            v.get(g.offset as usize..(g.offset + g.size) as usize)
        })
    }

    /// Writes a global variable of a data section map by name (user space
    /// writing `.data`/`.bss`, or `.rodata` before the program runs).
    pub fn set_global(&mut self, name: &str, bytes: &[u8]) -> Result<(), Errno> {
        let (i, g) = self
            .maps
            .iter()
            .enumerate()
            .find_map(|(i, m)| {
                m.def
                    .globals
                    .iter()
                    .find(|g| g.name == name)
                    .map(|g| (i, g.clone()))
            })
            .ok_or(Errno::NoEnt)?;
        if bytes.len() != g.size as usize {
            return Err(Errno::Inval);
        }
        let v = self.value_mut(MapId(i as u32), 0).ok_or(Errno::NoEnt)?;
        v[g.offset as usize..(g.offset + g.size) as usize].copy_from_slice(bytes);
        Ok(())
    }
}
