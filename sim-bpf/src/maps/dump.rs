//! Map dumps at the end of a run: a `bpftool map dump`-like text and JSON.
//!
//! Order: arrays by index, hash-based maps in element-slot order (the
//! order of insertion, freed slots reused last-freed first). `bpftool`
//! walks the kernel's buckets, whose order depends on a per-boot seed; the
//! simulator's order is deterministic instead.

use super::{Entry, MapId, MapSet, MapType};
use crate::env::Sockets;
use serde::Serialize;
use std::fmt::Write as _;

/// One map's contents, serializable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapDump {
    /// Map id in the object.
    pub id: u32,
    /// Name.
    pub name: String,
    /// bpftool type name.
    #[serde(rename = "type")]
    pub map_type: &'static str,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub flags: u32,
    /// Elements.
    pub entries: Vec<DumpEntry>,
    /// Global variables of a data section, by name, as little-endian
    /// integers when 1, 2, 4 or 8 bytes long.
    pub globals: Vec<DumpGlobal>,
}

/// One element.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DumpEntry {
    /// Key bytes, hex.
    pub key: String,
    /// Value bytes, hex (arrays, hashes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Socket handle (socket maps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sock: Option<u64>,
    /// Socket cookie (socket maps), what user space reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<u64>,
    /// Inner map id (map-in-map).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_map: Option<u32>,
}

/// One global variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DumpGlobal {
    /// Symbol.
    pub name: String,
    /// Bytes, hex.
    pub bytes: String,
    /// Value as an unsigned little-endian integer, when it has 1–8 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn le_value(b: &[u8]) -> Option<u64> {
    (matches!(b.len(), 1 | 2 | 4 | 8)).then(|| {
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(v)
    })
}

impl MapSet {
    /// Dumps every map. Arrays list every index (as bpftool does); zero
    /// elements are included.
    pub fn dump(&self, sockets: &mut dyn Sockets) -> Vec<MapDump> {
        self.iter()
            .map(|(id, m)| {
                let d = m.def();
                let entries = self
                    .entries(id)
                    .into_iter()
                    .map(|(k, e)| {
                        let mut out = DumpEntry {
                            key: hex(&k),
                            value: None,
                            sock: None,
                            cookie: None,
                            inner_map: None,
                        };
                        match e {
                            Entry::Bytes(v) => out.value = Some(hex(&v)),
                            Entry::Sock(s) => {
                                out.sock = Some(s.0);
                                out.cookie = Some(sockets.socket_cookie(s));
                            }
                            Entry::Map(MapId(i)) => out.inner_map = Some(i),
                        }
                        out
                    })
                    .collect();
                let globals = d
                    .globals
                    .iter()
                    .filter_map(|g| {
                        let v = self.value(id, 0)?;
                        let b = v.get(g.offset as usize..(g.offset + g.size) as usize)?;
                        Some(DumpGlobal {
                            name: g.name.clone(),
                            bytes: hex(b),
                            value: le_value(b),
                        })
                    })
                    .collect();
                MapDump {
                    id: id.0,
                    name: d.name.clone(),
                    map_type: d.map_type.name(),
                    key_size: d.key_size,
                    value_size: d.value_size,
                    max_entries: d.max_entries,
                    flags: d.flags,
                    entries,
                    globals,
                }
            })
            .collect()
    }

    /// The dump as text, map by map, like `bpftool map show` followed by
    /// `bpftool map dump` (non-zero array elements only, to stay short).
    pub fn dump_text(&self, sockets: &mut dyn Sockets) -> String {
        let mut s = String::new();
        for d in self.dump(sockets) {
            let _ = writeln!(
                s,
                "{}: {}  name {}  flags {:#x}\n\tkey {}B  value {}B  max_entries {}",
                d.id, d.map_type, d.name, d.flags, d.key_size, d.value_size, d.max_entries
            );
            let is_array = matches!(d.map_type, "array" | "percpu_array");
            let mut shown = 0;
            for e in &d.entries {
                if is_array
                    && e.value
                        .as_deref()
                        .is_some_and(|v| v.split(' ').all(|b| b == "00"))
                {
                    continue;
                }
                shown += 1;
                let _ = write!(s, "key: {}  ", e.key);
                if let Some(v) = &e.value {
                    let _ = writeln!(s, "value: {v}");
                } else if let (Some(h), Some(c)) = (e.sock, e.cookie) {
                    let _ = writeln!(s, "value: sock {h} (cookie {c})");
                } else if let Some(m) = e.inner_map {
                    let _ = writeln!(s, "value: map {m}");
                }
            }
            for g in &d.globals {
                match g.value {
                    Some(v) => {
                        let _ = writeln!(s, "\t{} = {v}", g.name);
                    }
                    None => {
                        let _ = writeln!(s, "\t{} = [{}]", g.name, g.bytes);
                    }
                }
            }
            let total = d.entries.len();
            if is_array {
                let _ = writeln!(s, "Found {total} elements ({shown} non-zero shown)");
            } else {
                let _ = writeln!(
                    s,
                    "Found {total} element{}",
                    if total == 1 { "" } else { "s" }
                );
            }
        }
        s
    }

    /// The dump as JSON.
    pub fn dump_json(&self, sockets: &mut dyn Sockets) -> serde_json::Value {
        serde_json::to_value(self.dump(sockets)).expect("dump serializes")
    }
}

impl MapType {
    /// True for the maps a program reads values from directly.
    pub fn has_values(self) -> bool {
        matches!(self, MapType::Array | MapType::PercpuArray | MapType::Hash)
    }
}
