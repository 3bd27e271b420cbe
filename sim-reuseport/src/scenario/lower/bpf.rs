//! Lowering of `bpf` policies: the object is read and loaded here (an ELF
//! the loader refuses, an unknown program or a helper the simulator does
//! not offer is a lowering error naming the file), and map elements are
//! checked against the maps' definitions.

use super::{Cx, Result, K};
use crate::policy::PolicyKind;
use crate::scenario::format::{BpfSpec, MapBytesSpec, PolicySpec, RuleSpec};
use crate::scenario::plan::*;
use crate::scenario::LowerError;
use sim_bpf::{AttachType, BpfObject, LoadError, MapId, MapType};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest object file read (clang's objects are a few KiB).
const MAX_OBJECT_BYTES: u64 = 16 << 20;

/// Whether a key or value is a map's key or its value.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Key,
    Value,
}

fn read_object(file: &Path) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(file)?;
    if f.metadata()?.is_dir() {
        return Err(std::io::Error::other("is a directory, expected a file"));
    }
    let mut buf = Vec::new();
    f.take(MAX_OBJECT_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_OBJECT_BYTES {
        return Err(std::io::Error::other("larger than 16 MiB"));
    }
    Ok(buf)
}

impl Cx<'_> {
    /// Where the object of a `bpf` policy is: relative to the scenario file.
    fn object_file(&self, object: &str) -> PathBuf {
        match &self.scn.base_dir {
            Some(dir) => dir.join(object),
            None => PathBuf::from(object),
        }
    }

    /// `policies[i].bpf`: loads the object and checks the program, the
    /// attach type and the initial map elements.
    pub(super) fn bpf(&self, i: usize, p: &PolicySpec, spec: &BpfSpec) -> Result<BpfPlan> {
        let base = format!("policies[{i}]");
        for (field, rule) in [("on_syn", &p.on_syn), ("on_migrate", &p.on_migrate)] {
            if *rule != RuleSpec::Pass {
                return Err(LowerError::new(
                    K::BpfWithRules,
                    format!("{base}.{field}"),
                    "a `bpf` policy's program decides: leave out the declarative rules",
                ));
            }
        }
        if !p.cancel_for.is_empty() {
            return Err(LowerError::new(
                K::BpfWithRules,
                format!("{base}.cancel_for"),
                "a `bpf` policy's program decides: leave out `cancel_for`",
            ));
        }
        let file = self.object_file(&spec.object);
        let path = format!("{base}.bpf.object");
        let bytes = read_object(&file).map_err(|e| {
            LowerError::new(
                K::BpfObjectUnreadable,
                &path,
                format!("cannot read eBPF object {}: {e}", file.display()),
            )
        })?;
        let obj = BpfObject::load(&bytes).map_err(|e| {
            LowerError::new(
                K::BpfLoad,
                &path,
                format!("eBPF object {} refused: {e}", file.display()),
            )
        })?;
        let prog = obj.program(&spec.program).map_err(|e| {
            let kind = match e {
                LoadError::Program { .. } => K::BpfUnknownProgram,
                _ => K::BpfLoad,
            };
            LowerError::new(
                kind,
                format!("{base}.bpf.program"),
                format!("in eBPF object {}: {e}", file.display()),
            )
        })?;
        let program = &obj.programs()[prog.0];
        let want = match p.kind {
            PolicyKind::Select => AttachType::Select,
            PolicyKind::SelectOrMigrate => AttachType::SelectOrMigrate,
        };
        if program.attach_type() != want {
            return Err(LowerError::new(
                K::BpfAttachType,
                format!("{base}.kind"),
                format!(
                    "program `{}` is in section `{}`, so its attach type is {}; set \"kind\" to that",
                    program.name(),
                    program.section(),
                    match program.attach_type() {
                        AttachType::Select => "\"select\" (sk_reuseport)",
                        AttachType::SelectOrMigrate =>
                            "\"select_or_migrate\" (sk_reuseport/migrate)",
                    }
                ),
            ));
        }
        let program = program.name().to_string();
        let mut init = Vec::new();
        for (j, e) in spec.maps.iter().enumerate() {
            let at = format!("{base}.bpf.maps[{j}]");
            let map = map_id(&obj, &e.map, &format!("{at}.map"))?;
            let key = self.map_bytes(&obj, map, Part::Key, &e.key, &format!("{at}.key"))?;
            let value = self.map_bytes(&obj, map, Part::Value, &e.value, &format!("{at}.value"))?;
            if matches!(value, MapBytes::Worker(..)) {
                return Err(LowerError::new(
                    K::BpfMapBytes,
                    format!("{at}.value"),
                    "no listener exists when the object is loaded: put sockets into the map with a `map_update` action after the worker listens",
                ));
            }
            init.push(MapWrite {
                map,
                map_name: e.map.clone(),
                key,
                value,
            });
        }
        Ok(BpfPlan {
            object: spec.object.clone(),
            elf: bytes.into(),
            loaded: Arc::new(obj),
            prog,
            program,
            init,
        })
    }

    /// The key or value `spec` of map `map`, checked against its definition.
    pub(super) fn map_bytes(
        &self,
        obj: &BpfObject,
        map: MapId,
        part: Part,
        spec: &MapBytesSpec,
        path: &str,
    ) -> Result<MapBytes> {
        let def = obj.maps().get(map).expect("a map of the object").def();
        let size = match part {
            Part::Key => def.key_size,
            Part::Value => def.value_size,
        } as usize;
        let sock_value = part == Part::Value
            && matches!(
                def.map_type,
                MapType::ReuseportSockarray | MapType::SockMap | MapType::SockHash
            );
        let bad = |m: String| Err(LowerError::new(K::BpfMapBytes, path, m));
        let what = match part {
            Part::Key => "key",
            Part::Value => "value",
        };
        match spec {
            MapBytesSpec::Worker { worker } => {
                let w = self.worker(worker, &format!("{path}.worker"))?;
                if !sock_value || !(size == 4 || size == 8) {
                    return bad(format!(
                        "a socket goes only into the value of a socket map (REUSEPORT_SOCKARRAY, SOCKMAP, SOCKHASH); map `{}` is {} with a {size}-byte {what}",
                        def.name,
                        def.map_type.name()
                    ));
                }
                Ok(MapBytes::Worker(w, size as u8))
            }
            _ if sock_value => bad(format!(
                "the value of {} map `{}` is a socket: give {{\"worker\": name}}",
                def.map_type.name(),
                def.name
            )),
            MapBytesSpec::Cookie { cookie } => {
                let w = self.worker(cookie, &format!("{path}.cookie"))?;
                if size != 8 {
                    return bad(format!(
                        "a socket cookie is 8 bytes; the {what} of map `{}` is {size}",
                        def.name
                    ));
                }
                Ok(MapBytes::Cookie(w))
            }
            MapBytesSpec::Int(v) => {
                let fits = match size {
                    1 | 2 | 4 => *v < 1u64 << (8 * size),
                    8 => true,
                    _ => false,
                };
                if !fits {
                    return bad(format!(
                        "{v} does not fit the {size}-byte {what} of map `{}` (an integer is 1, 2, 4 or 8 bytes; use {{\"hex\": ...}} or {{\"u32\": [...]}})",
                        def.name
                    ));
                }
                Ok(MapBytes::Bytes(v.to_le_bytes()[..size].to_vec()))
            }
            MapBytesSpec::U32s { u32: words } => {
                if words.len() * 4 != size {
                    return bad(format!(
                        "{} u32 values are {} bytes; the {what} of map `{}` is {size}",
                        words.len(),
                        words.len() * 4,
                        def.name
                    ));
                }
                Ok(MapBytes::Bytes(
                    words.iter().flat_map(|w| w.to_le_bytes()).collect(),
                ))
            }
            MapBytesSpec::Hex { hex } => match parse_hex(hex) {
                Some(b) if b.len() == size => Ok(MapBytes::Bytes(b)),
                Some(b) => bad(format!(
                    "{} bytes given; the {what} of map `{}` is {size}",
                    b.len(),
                    def.name
                )),
                None => bad("expected hex digits, two per byte".into()),
            },
        }
    }

    /// The `bpf` policy `name` of a map action, with its plan.
    pub(super) fn bpf_policy<'p>(
        &self,
        policies: &'p [PolicyPlan],
        name: &str,
        path: &str,
    ) -> Result<(PolicyIx, &'p BpfPlan)> {
        let pi = self.policy(name, path)?;
        match &policies[pi.index()].bpf {
            Some(b) => Ok((pi, b)),
            None => Err(LowerError::new(
                K::NotBpfPolicy,
                path,
                format!("policy `{name}` is declarative: only a `bpf` policy has maps"),
            )),
        }
    }
}

/// A map of the object by name, or an error listing its maps.
pub(super) fn map_id(obj: &BpfObject, name: &str, path: &str) -> Result<MapId> {
    obj.map(name).ok_or_else(|| {
        let known: Vec<&str> = obj
            .maps()
            .iter()
            .map(|(_, m)| m.def().name.as_str())
            .collect();
        LowerError::new(
            K::BpfUnknownMap,
            path,
            format!(
                "the object has no map `{name}` (maps: {})",
                known.join(", ")
            ),
        )
    })
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect()
}
