//! BPF maps: `ARRAY`, `PERCPU_ARRAY` (one CPU), `HASH`,
//! `REUSEPORT_SOCKARRAY`, `SOCKMAP`, `SOCKHASH`, `ARRAY_OF_MAPS` and
//! `HASH_OF_MAPS`, with the kernel's element semantics and errno values
//! (`kernel/bpf/arraymap.c`, `hashtab.c`, `reuseport_array.c`,
//! `map_in_map.c`, `net/core/sock_map.c`), for programs and for user space.

mod dump;
mod slab;
mod user;

pub use dump::MapDump;

use crate::ctx::{SockHandle, SockInfo, AF_INET, AF_INET6, IPPROTO_TCP, SOCK_STREAM};
use crate::error::{Errno, LoadError};
use rustc_hash::FxHashMap;
use slab::KeySlab;

/// `BPF_ANY`: create or update.
pub const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only.
pub const BPF_EXIST: u64 = 2;
/// `BPF_F_LOCK` (accepted and ignored: the model has no concurrency).
pub const BPF_F_LOCK: u64 = 4;
/// `BPF_F_RDONLY_PROG`: programs may not write the map (`.rodata`).
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_INNER_MAP`: inner maps may differ in `max_entries`.
pub const BPF_F_INNER_MAP: u32 = 1 << 12;

/// Largest `max_entries` of a map whose values programs address (the
/// interpreter encodes the element index of a value pointer in 20 bits).
pub const MAX_VALUE_ENTRIES: u32 = 1 << 20;
/// Largest number of maps in one object (8 bits of a pointer).
pub const MAX_MAPS: usize = 256;

/// A map's index in its object, also the "fd" programs and user space use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapId(pub u32);

/// The supported `enum bpf_map_type` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH` (1).
    Hash,
    /// `BPF_MAP_TYPE_ARRAY` (2).
    Array,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY` (6), with one CPU.
    PercpuArray,
    /// `BPF_MAP_TYPE_ARRAY_OF_MAPS` (12).
    ArrayOfMaps,
    /// `BPF_MAP_TYPE_HASH_OF_MAPS` (13).
    HashOfMaps,
    /// `BPF_MAP_TYPE_SOCKMAP` (15).
    SockMap,
    /// `BPF_MAP_TYPE_SOCKHASH` (18).
    SockHash,
    /// `BPF_MAP_TYPE_REUSEPORT_SOCKARRAY` (20).
    ReuseportSockarray,
}

impl MapType {
    /// From the UAPI number.
    pub fn from_u32(t: u32) -> Option<Self> {
        Some(match t {
            1 => MapType::Hash,
            2 => MapType::Array,
            6 => MapType::PercpuArray,
            12 => MapType::ArrayOfMaps,
            13 => MapType::HashOfMaps,
            15 => MapType::SockMap,
            18 => MapType::SockHash,
            20 => MapType::ReuseportSockarray,
            _ => return None,
        })
    }

    /// The UAPI number.
    pub fn as_u32(self) -> u32 {
        match self {
            MapType::Hash => 1,
            MapType::Array => 2,
            MapType::PercpuArray => 6,
            MapType::ArrayOfMaps => 12,
            MapType::HashOfMaps => 13,
            MapType::SockMap => 15,
            MapType::SockHash => 18,
            MapType::ReuseportSockarray => 20,
        }
    }

    /// bpftool's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            MapType::Hash => "hash",
            MapType::Array => "array",
            MapType::PercpuArray => "percpu_array",
            MapType::ArrayOfMaps => "array_of_maps",
            MapType::HashOfMaps => "hash_of_maps",
            MapType::SockMap => "sockmap",
            MapType::SockHash => "sockhash",
            MapType::ReuseportSockarray => "reuseport_sockarray",
        }
    }

    fn holds_sockets(self) -> bool {
        matches!(
            self,
            MapType::SockMap | MapType::SockHash | MapType::ReuseportSockarray
        )
    }
}

/// A global variable of a data section (`.bss`, `.data`, `.rodata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// Symbol name.
    pub name: String,
    /// Offset in the section's single value.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// A map definition, as parsed from the object (BTF `.maps`, legacy
/// `maps`, or a data section), reusable by a kernel backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    /// Map name (the symbol, or the section name for data sections).
    pub name: String,
    /// Type.
    pub map_type: MapType,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub flags: u32,
    /// Inner map template of a map-in-map.
    pub inner: Option<Box<MapDef>>,
    /// Initial contents of a data section map (one value).
    pub data: Option<Vec<u8>>,
    /// Variables of a data section map.
    pub globals: Vec<Global>,
}

impl MapDef {
    /// A definition with no inner map, data or globals.
    pub fn new(
        name: &str,
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> Self {
        MapDef {
            name: name.to_string(),
            map_type,
            key_size,
            value_size,
            max_entries,
            flags: 0,
            inner: None,
            data: None,
            globals: Vec::new(),
        }
    }

    /// `map_alloc_check` of the type, plus the interpreter's own limits.
    fn check(&self) -> Result<(), String> {
        let fd_value = |v: u32| v == 4 || v == 8;
        if self.max_entries == 0 {
            return Err("max_entries is 0".into());
        }
        match self.map_type {
            MapType::Array | MapType::PercpuArray => {
                if self.key_size != 4 || self.value_size == 0 {
                    return Err("array maps need key_size 4 and a value".into());
                }
            }
            MapType::Hash => {
                if self.key_size == 0 || self.value_size == 0 {
                    return Err("hash maps need a key and a value".into());
                }
            }
            MapType::ReuseportSockarray | MapType::SockMap => {
                if self.key_size != 4 || !fd_value(self.value_size) {
                    return Err("socket arrays need key_size 4 and value_size 4 or 8".into());
                }
            }
            MapType::SockHash => {
                if self.key_size == 0 || self.key_size > 512 || !fd_value(self.value_size) {
                    return Err("sockhash needs a key of 1..512 bytes and value_size 4 or 8".into());
                }
            }
            MapType::ArrayOfMaps | MapType::HashOfMaps => {
                if self.value_size != 4 || self.inner.is_none() {
                    return Err("map-in-map needs value_size 4 and an inner map".into());
                }
                if self.map_type == MapType::ArrayOfMaps && self.key_size != 4 {
                    return Err("array_of_maps needs key_size 4".into());
                }
            }
        }
        if self.max_entries > MAX_VALUE_ENTRIES {
            return Err(format!(
                "max_entries {} is above the simulator's limit of {MAX_VALUE_ENTRIES}",
                self.max_entries
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Store {
    /// `ARRAY`, `PERCPU_ARRAY`: `max_entries * value_size` bytes.
    Array(Vec<u8>),
    /// `HASH`: keys, and `value_size` bytes per slot.
    Hash(KeySlab, Vec<u8>),
    /// `REUSEPORT_SOCKARRAY`, `SOCKMAP`.
    SockArray(Vec<Option<SockHandle>>),
    /// `SOCKHASH`.
    SockHash(KeySlab, Vec<Option<SockHandle>>),
    /// `ARRAY_OF_MAPS`.
    MapArray(Vec<Option<MapId>>),
    /// `HASH_OF_MAPS`.
    MapHash(KeySlab, Vec<Option<MapId>>),
}

/// One map: definition and contents.
#[derive(Clone, Debug)]
pub struct Map {
    def: MapDef,
    store: Store,
}

impl Map {
    fn new(def: MapDef) -> Self {
        let n = def.max_entries as usize;
        let store = match def.map_type {
            MapType::Array | MapType::PercpuArray => {
                let mut v = vec![0u8; n * def.value_size as usize];
                if let Some(d) = &def.data {
                    v[..d.len()].copy_from_slice(d);
                }
                Store::Array(v)
            }
            MapType::Hash => Store::Hash(KeySlab::new(def.key_size as usize), Vec::new()),
            MapType::ReuseportSockarray | MapType::SockMap => Store::SockArray(vec![None; n]),
            MapType::SockHash => Store::SockHash(KeySlab::new(def.key_size as usize), Vec::new()),
            MapType::ArrayOfMaps => Store::MapArray(vec![None; n]),
            MapType::HashOfMaps => Store::MapHash(KeySlab::new(def.key_size as usize), Vec::new()),
        };
        Map { def, store }
    }

    /// The definition.
    pub fn def(&self) -> &MapDef {
        &self.def
    }
}

fn index_of(key: &[u8]) -> u32 {
    u32::from_le_bytes([key[0], key[1], key[2], key[3]])
}

fn check_flags(flags: u64) -> Result<(), Errno> {
    if (flags & !BPF_F_LOCK) > BPF_EXIST {
        Err(Errno::Inval)
    } else {
        Ok(())
    }
}

/// `check_flags` of `hashtab.c` (and the same tests of the other types).
fn exist_check(exists: bool, flags: u64) -> Result<(), Errno> {
    match flags & !BPF_F_LOCK {
        BPF_NOEXIST if exists => Err(Errno::Exist),
        BPF_EXIST if !exists => Err(Errno::NoEnt),
        _ => Ok(()),
    }
}

/// All maps of one object.
#[derive(Clone, Debug, Default)]
pub struct MapSet {
    maps: Vec<Map>,
    /// `sk_user_data` of a socket in a reuseport array: where it is.
    in_sockarray: FxHashMap<SockHandle, (MapId, u32)>,
    /// Number of socket map (sockmap/sockhash) entries holding a socket (its psock links).
    psock_links: FxHashMap<SockHandle, u32>,
}

impl MapSet {
    /// Creates the maps of `defs` (in order: `MapId(i)` is `defs[i]`).
    pub fn new(defs: Vec<MapDef>) -> Result<Self, LoadError> {
        if defs.len() > MAX_MAPS {
            return Err(LoadError::Elf(format!("more than {MAX_MAPS} maps")));
        }
        let mut maps = Vec::with_capacity(defs.len());
        for d in defs {
            d.check().map_err(|reason| LoadError::Map {
                map: d.name.clone(),
                reason,
            })?;
            if let Some(inner) = &d.inner {
                if matches!(inner.map_type, MapType::ArrayOfMaps | MapType::HashOfMaps) {
                    return Err(LoadError::Map {
                        map: d.name.clone(),
                        reason: "an inner map cannot itself hold maps".into(),
                    });
                }
            }
            maps.push(Map::new(d));
        }
        Ok(MapSet {
            maps,
            ..Default::default()
        })
    }

    /// Adds a map after load (an inner map user space creates to put into
    /// a map-in-map).
    pub fn create(&mut self, def: MapDef) -> Result<MapId, LoadError> {
        if self.maps.len() >= MAX_MAPS {
            return Err(LoadError::Map {
                map: def.name,
                reason: format!("more than {MAX_MAPS} maps"),
            });
        }
        def.check().map_err(|reason| LoadError::Map {
            map: def.name.clone(),
            reason,
        })?;
        self.maps.push(Map::new(def));
        Ok(MapId(self.maps.len() as u32 - 1))
    }

    /// Number of maps.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// True if there are no maps.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The map with this id.
    pub fn get(&self, id: MapId) -> Option<&Map> {
        self.maps.get(id.0 as usize)
    }

    /// The id of the map named `name`.
    pub fn by_name(&self, name: &str) -> Option<MapId> {
        self.maps
            .iter()
            .position(|m| m.def.name == name)
            .map(|i| MapId(i as u32))
    }

    /// Iterates over `(id, map)`.
    pub fn iter(&self) -> impl Iterator<Item = (MapId, &Map)> {
        self.maps
            .iter()
            .enumerate()
            .map(|(i, m)| (MapId(i as u32), m))
    }

    pub(crate) fn def(&self, id: MapId) -> &MapDef {
        &self.maps[id.0 as usize].def
    }

    fn map(&self, id: MapId) -> Result<&Map, Errno> {
        self.maps.get(id.0 as usize).ok_or(Errno::BadF)
    }

    // ---- program side -------------------------------------------------

    /// `map_lookup_elem` of an array or hash: the element slot whose value
    /// a program may address, or `None` (NULL).
    pub(crate) fn prog_lookup_slot(&self, id: MapId, key: &[u8]) -> Option<u32> {
        let m = &self.maps[id.0 as usize];
        match &m.store {
            Store::Array(_) => {
                let i = index_of(key);
                (i < m.def.max_entries).then_some(i)
            }
            Store::Hash(slab, _) => slab.find(key),
            _ => None,
        }
    }

    /// `map_lookup_elem` of a map-in-map: the inner map.
    pub(crate) fn prog_lookup_inner(&self, id: MapId, key: &[u8]) -> Option<MapId> {
        let m = &self.maps[id.0 as usize];
        match &m.store {
            Store::MapArray(v) => v.get(index_of(key) as usize).copied().flatten(),
            Store::MapHash(slab, v) => slab.find(key).and_then(|s| v[s as usize]),
            _ => None,
        }
    }

    /// The value bytes of element `slot`.
    pub(crate) fn value(&self, id: MapId, slot: u32) -> Option<&[u8]> {
        let m = self.maps.get(id.0 as usize)?;
        let vs = m.def.value_size as usize;
        let at = slot as usize * vs;
        match &m.store {
            Store::Array(v) | Store::Hash(_, v) => v.get(at..at + vs),
            _ => None,
        }
    }

    /// The value bytes of element `slot`, writable.
    pub(crate) fn value_mut(&mut self, id: MapId, slot: u32) -> Option<&mut [u8]> {
        let m = self.maps.get_mut(id.0 as usize)?;
        let vs = m.def.value_size as usize;
        let at = slot as usize * vs;
        match &mut m.store {
            Store::Array(v) | Store::Hash(_, v) => v.get_mut(at..at + vs),
            _ => None,
        }
    }

    /// The socket an entry holds (`map->ops->map_lookup_elem` of a socket
    /// map, as `bpf_sk_select_reuseport` calls it).
    pub(crate) fn sock_lookup(&self, id: MapId, key: &[u8]) -> Option<SockHandle> {
        let m = &self.maps[id.0 as usize];
        match &m.store {
            Store::SockArray(v) => v.get(index_of(key) as usize).copied().flatten(),
            Store::SockHash(slab, v) => slab.find(key).and_then(|s| v[s as usize]),
            _ => None,
        }
    }

    /// `map_update_elem` with plain bytes (arrays and hashes), from a
    /// program or user space.
    pub(crate) fn update_bytes(
        &mut self,
        id: MapId,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        check_flags(flags)?;
        let m = &mut self.maps[id.0 as usize];
        let vs = m.def.value_size as usize;
        let max = m.def.max_entries;
        match &mut m.store {
            Store::Array(v) => {
                // `array_map_update_elem`.
                let i = index_of(key);
                if i >= max {
                    return Err(Errno::TooBig);
                }
                if flags & BPF_NOEXIST != 0 {
                    return Err(Errno::Exist);
                }
                let at = i as usize * vs;
                v[at..at + vs].copy_from_slice(&value[..vs]);
                Ok(())
            }
            Store::Hash(slab, v) => {
                // `htab_map_update_elem`: a full map refuses new keys only.
                let old = slab.find(key);
                exist_check(old.is_some(), flags)?;
                let slot = match old {
                    Some(s) => s,
                    None => {
                        if slab.len() >= max as usize {
                            return Err(Errno::TooBig);
                        }
                        let s = slab.insert(key);
                        if v.len() < slab.capacity() * vs {
                            v.resize(slab.capacity() * vs, 0);
                        }
                        s
                    }
                };
                let at = slot as usize * vs;
                v[at..at + vs].copy_from_slice(&value[..vs]);
                Ok(())
            }
            _ => Err(Errno::Inval),
        }
    }

    /// `map_delete_elem` (program or user space), except the reuseport
    /// array, which only user space may delete from.
    pub(crate) fn delete(&mut self, id: MapId, key: &[u8]) -> Result<(), Errno> {
        let m = &mut self.maps[id.0 as usize];
        let max = m.def.max_entries;
        let removed = match &mut m.store {
            // `array_map_delete_elem`.
            Store::Array(_) => return Err(Errno::Inval),
            Store::Hash(slab, _) => {
                return slab.remove(key).map(|_| ()).ok_or(Errno::NoEnt);
            }
            Store::SockArray(v) => {
                let i = index_of(key);
                if m.def.map_type == MapType::ReuseportSockarray {
                    // `reuseport_array_delete_elem`.
                    if i >= max {
                        return Err(Errno::TooBig);
                    }
                    v[i as usize].take().ok_or(Errno::NoEnt)?
                } else {
                    // `sock_map_delete_elem`: EINVAL for a bad index or an empty slot.
                    v.get_mut(i as usize)
                        .and_then(|s| s.take())
                        .ok_or(Errno::Inval)?
                }
            }
            Store::SockHash(slab, v) => {
                let s = slab.remove(key).ok_or(Errno::NoEnt)?;
                v[s as usize].take().expect("live sockhash slot")
            }
            Store::MapArray(v) => {
                let i = index_of(key);
                if i >= max {
                    return Err(Errno::TooBig);
                }
                v[i as usize].take().map(|_| ()).ok_or(Errno::NoEnt)?;
                return Ok(());
            }
            Store::MapHash(slab, v) => {
                let s = slab.remove(key).ok_or(Errno::NoEnt)?;
                v[s as usize] = None;
                return Ok(());
            }
        };
        self.unlink(id, removed);
        Ok(())
    }

    fn unlink(&mut self, id: MapId, sk: SockHandle) {
        if self.def(id).map_type == MapType::ReuseportSockarray {
            self.in_sockarray.remove(&sk);
        } else if let Some(n) = self.psock_links.get_mut(&sk) {
            *n -= 1;
            if *n == 0 {
                self.psock_links.remove(&sk);
            }
        }
    }

    /// Puts socket `sk` into a socket map, with the checks of
    /// `bpf_fd_reuseport_array_update_elem` (reuseport array) or
    /// `sock_map_update_common`/`sock_hash_update_common` (sockmap,
    /// sockhash). `info` is the socket (`None`: not a socket, `EBADF`).
    pub(crate) fn update_sock(
        &mut self,
        id: MapId,
        key: &[u8],
        sk: SockHandle,
        info: Option<SockInfo>,
        flags: u64,
    ) -> Result<(), Errno> {
        let m = &self.maps[id.0 as usize];
        let max = m.def.max_entries;
        if m.def.map_type == MapType::ReuseportSockarray {
            if flags > BPF_EXIST {
                return Err(Errno::Inval);
            }
            let i = index_of(key);
            if i >= max {
                return Err(Errno::TooBig);
            }
            let info = info.ok_or(Errno::BadF)?;
            let Store::SockArray(v) = &m.store else {
                unreachable!("reuseport array store")
            };
            let old = v[i as usize];
            exist_check(old.is_some(), flags)?;
            if info.protocol != IPPROTO_TCP && info.protocol != 17 {
                return Err(Errno::NotSupp);
            }
            if info.family != AF_INET && info.family != AF_INET6 {
                return Err(Errno::NotSupp);
            }
            if info.sock_type != SOCK_STREAM && info.sock_type != 2 {
                return Err(Errno::NotSupp);
            }
            if !info.full_sock || !info.hashed || info.reuseport_id.is_none() {
                return Err(Errno::Inval);
            }
            // `sk_user_data` is taken by this or another array, or a psock.
            if self.in_sockarray.contains_key(&sk) || self.psock_links.contains_key(&sk) {
                return Err(Errno::Busy);
            }
            if let Some(o) = old {
                self.in_sockarray.remove(&o);
            }
            let Store::SockArray(v) = &mut self.maps[id.0 as usize].store else {
                unreachable!("reuseport array store")
            };
            v[i as usize] = Some(sk);
            self.in_sockarray.insert(sk, (id, i));
            return Ok(());
        }
        // sockmap / sockhash (`sock_map_update_elem_sys` then `*_update_common`).
        let info = info.ok_or(Errno::BadF)?;
        if !info.full_sock {
            return Err(Errno::Inval);
        }
        let state_ok = info.protocol != IPPROTO_TCP
            || info.state == crate::ctx::tcp_state::ESTABLISHED
            || info.state == crate::ctx::tcp_state::LISTEN;
        if !state_ok {
            return Err(Errno::OpNotSupp);
        }
        check_flags(flags)?;
        if flags & BPF_F_LOCK != 0 {
            return Err(Errno::Inval);
        }
        let key_index = index_of(key);
        if m.def.map_type == MapType::SockMap && key_index >= max {
            return Err(Errno::TooBig);
        }
        // `sk_psock_init`: a socket in a reuseport array has sk_user_data.
        if self.in_sockarray.contains_key(&sk) {
            return Err(Errno::Busy);
        }
        let old = match &mut self.maps[id.0 as usize].store {
            Store::SockArray(v) => {
                let old = v[key_index as usize];
                exist_check(old.is_some(), flags)?;
                v[key_index as usize] = Some(sk);
                old
            }
            Store::SockHash(slab, v) => {
                let found = slab.find(key);
                exist_check(found.is_some(), flags)?;
                match found {
                    Some(s) => v[s as usize].replace(sk),
                    None => {
                        if slab.len() >= max as usize {
                            return Err(Errno::TooBig);
                        }
                        let s = slab.insert(key) as usize;
                        if v.len() <= s {
                            v.resize(s + 1, None);
                        }
                        v[s] = Some(sk);
                        None
                    }
                }
            }
            _ => unreachable!("socket map store"),
        };
        *self.psock_links.entry(sk).or_insert(0) += 1;
        if let Some(o) = old {
            self.unlink(id, o);
        }
        Ok(())
    }

    /// Removes a socket from every socket map: `bpf_sk_reuseport_detach`
    /// (reuseport arrays, when a listener stops: `reuseport_stop_listen_sock`
    /// and `reuseport_detach_sock`) and `sock_map_unhash`/`sock_map_close`
    /// (sockmap and sockhash, when the socket is unhashed or closed).
    /// Returns the number of entries removed.
    pub fn remove_socket(&mut self, sk: SockHandle) -> usize {
        let mut removed = 0;
        for m in &mut self.maps {
            match &mut m.store {
                Store::SockArray(v) => {
                    for slot in v.iter_mut().filter(|s| **s == Some(sk)) {
                        *slot = None;
                        removed += 1;
                    }
                }
                Store::SockHash(slab, v) => {
                    let dead: Vec<u32> = slab
                        .slots()
                        .filter(|&s| v[s as usize] == Some(sk))
                        .collect();
                    for s in dead {
                        let key = slab.key(s).to_vec();
                        slab.remove(&key);
                        v[s as usize] = None;
                        removed += 1;
                    }
                }
                _ => {}
            }
        }
        self.in_sockarray.remove(&sk);
        self.psock_links.remove(&sk);
        removed
    }

    pub(crate) fn entries(&self, id: MapId) -> Vec<(Vec<u8>, Entry)> {
        let m = &self.maps[id.0 as usize];
        let vs = m.def.value_size as usize;
        match &m.store {
            Store::Array(v) => (0..m.def.max_entries)
                .map(|i| {
                    let at = i as usize * vs;
                    (
                        i.to_le_bytes().to_vec(),
                        Entry::Bytes(v[at..at + vs].to_vec()),
                    )
                })
                .collect(),
            Store::Hash(slab, v) => slab
                .slots()
                .map(|s| {
                    let at = s as usize * vs;
                    (slab.key(s).to_vec(), Entry::Bytes(v[at..at + vs].to_vec()))
                })
                .collect(),
            Store::SockArray(v) => v
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|s| ((i as u32).to_le_bytes().to_vec(), Entry::Sock(s))))
                .collect(),
            Store::SockHash(slab, v) => slab
                .slots()
                .filter_map(|s| v[s as usize].map(|h| (slab.key(s).to_vec(), Entry::Sock(h))))
                .collect(),
            Store::MapArray(v) => v
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|s| ((i as u32).to_le_bytes().to_vec(), Entry::Map(s))))
                .collect(),
            Store::MapHash(slab, v) => slab
                .slots()
                .filter_map(|s| v[s as usize].map(|m| (slab.key(s).to_vec(), Entry::Map(m))))
                .collect(),
        }
    }
}

/// One element's value, for dumps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Bytes(Vec<u8>),
    Sock(SockHandle),
    Map(MapId),
}
