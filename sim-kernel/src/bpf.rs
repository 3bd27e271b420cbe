//! A small BPF object loader and the `bpf()` commands the run needs.
//!
//! Why not `aya`: aya 0.13 (the current release) rejects any program section
//! it does not know, and it does not know `sk_reuseport` /
//! `sk_reuseport/migrate` (`aya_obj::ProgramSection` has no such variant), so
//! it cannot open an `SK_REUSEPORT` object at all; libbpf-rs needs the C
//! libbpf. The ELF is read with the `object` crate; this module does what
//! libbpf does for simple objects:
//! - maps from BTF (`.maps`, libbpf style) or the legacy `maps` section
//!   (`struct bpf_map_def`), and global data (`.bss`, `.data`, `.rodata*`)
//!   as one-entry arrays;
//! - map relocations of `ld_imm64` (`BPF_PSEUDO_MAP_FD`, and
//!   `BPF_PSEUDO_MAP_VALUE` for global data);
//! - `BPF_PROG_LOAD` with the given type and `expected_attach_type`, the
//!   verifier log in the error when it fails.
//!
//! Not supported (clear error): bpf-to-bpf calls, CO-RE relocations,
//! map-in-map, kfuncs.

mod btf;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

use crate::sys;

/// `BPF_XDP` attach type.
pub const BPF_XDP: u32 = 37;
/// `BPF_SK_REUSEPORT_SELECT`.
pub const BPF_SK_REUSEPORT_SELECT: u32 = 39;
/// `BPF_SK_REUSEPORT_SELECT_OR_MIGRATE`.
pub const BPF_SK_REUSEPORT_SELECT_OR_MIGRATE: u32 = 40;
/// `BPF_MAP_TYPE_ARRAY`.
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_MAP_TYPE_REUSEPORT_SOCKARRAY`.
pub const BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: u32 = 20;

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_MAP_DELETE_ELEM: i32 = 3;
const BPF_PROG_LOAD: i32 = 5;
const BPF_MAP_FREEZE: i32 = 22;
const BPF_LINK_CREATE: i32 = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_PROG_TYPE_SK_REUSEPORT: u32 = 21;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_PSEUDO_MAP_VALUE: u8 = 2;
const BPF_PSEUDO_CALL: u8 = 1;
const LD_IMM64: u8 = 0x18;
const JMP_CALL: u8 = 0x85;

/// The program type to load a function as.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProgType {
    /// `BPF_PROG_TYPE_SK_REUSEPORT` with this expected attach type.
    SkReuseport {
        /// `BPF_SK_REUSEPORT_SELECT` or `..._OR_MIGRATE`.
        attach: u32,
    },
    /// `BPF_PROG_TYPE_XDP`.
    Xdp,
}

/// A created map.
#[derive(Debug)]
pub struct MapInfo {
    /// Name in the object.
    pub name: String,
    /// Its fd.
    pub fd: OwnedFd,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size.
    pub key_size: u32,
    /// Value size.
    pub value_size: u32,
}

/// Maps and programs of one object; dropping it closes them (a program
/// attached to a group stays until detached or the group goes).
#[derive(Debug)]
pub struct LoadedObject {
    /// Maps by name.
    pub maps: Vec<MapInfo>,
    /// Loaded programs: function name and fd.
    pub programs: Vec<(String, OwnedFd)>,
}

fn bpf(cmd: i32, attr: &mut [u8]) -> std::io::Result<i32> {
    // SAFETY: attr is a zero-padded union bpf_attr of the given size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

fn put32(a: &mut [u8], o: usize, v: u32) {
    a[o..o + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8], o: usize, v: u64) {
    a[o..o + 8].copy_from_slice(&v.to_ne_bytes());
}

fn obj_name(a: &mut [u8], o: usize, name: &str) {
    // BPF_OBJ_NAME_LEN 16 with the NUL; letters, digits, '_' and '.'.
    for (i, c) in name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .take(15)
        .enumerate()
    {
        a[o + i] = c as u8;
    }
}

/// `BPF_MAP_CREATE`.
pub fn map_create(
    name: &str,
    map_type: u32,
    key: u32,
    value: u32,
    max: u32,
    flags: u32,
) -> std::io::Result<OwnedFd> {
    let mut a = [0u8; 72];
    put32(&mut a, 0, map_type);
    put32(&mut a, 4, key);
    put32(&mut a, 8, value);
    put32(&mut a, 12, max);
    put32(&mut a, 16, flags);
    obj_name(&mut a, 28, name);
    sys::owned(bpf(BPF_MAP_CREATE, &mut a)?)
}

fn elem(
    cmd: i32,
    fd: RawFd,
    key: &[u8],
    value: Option<*const u8>,
    flags: u64,
) -> std::io::Result<()> {
    let mut a = [0u8; 32];
    put32(&mut a, 0, fd as u32);
    put64(&mut a, 8, key.as_ptr() as u64);
    if let Some(v) = value {
        put64(&mut a, 16, v as u64);
    }
    put64(&mut a, 24, flags);
    bpf(cmd, &mut a).map(|_| ())
}

/// `bpf_map_update_elem(fd, key, value, BPF_ANY)`.
pub fn map_update(fd: RawFd, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    elem(BPF_MAP_UPDATE_ELEM, fd, key, Some(value.as_ptr()), 0)
}

/// `bpf_map_update_elem(fd, key, value, flags)`.
pub fn map_update_flags(fd: RawFd, key: &[u8], value: &[u8], flags: u64) -> std::io::Result<()> {
    elem(BPF_MAP_UPDATE_ELEM, fd, key, Some(value.as_ptr()), flags)
}

/// `bpf_map_delete_elem`.
pub fn map_delete(fd: RawFd, key: &[u8]) -> std::io::Result<()> {
    elem(BPF_MAP_DELETE_ELEM, fd, key, None, 0)
}

/// `bpf_map_lookup_elem` into `value` (which must have the value size).
pub fn map_lookup(fd: RawFd, key: &[u8], value: &mut [u8]) -> std::io::Result<()> {
    elem(BPF_MAP_LOOKUP_ELEM, fd, key, Some(value.as_mut_ptr()), 0)
}

/// `BPF_LINK_CREATE` of an XDP program on interface `ifindex` (generic
/// mode on devices without native XDP, such as `lo`). The program stays
/// attached while the returned link fd is open.
pub fn xdp_link(prog: RawFd, ifindex: u32) -> std::io::Result<OwnedFd> {
    let mut a = [0u8; 64];
    put32(&mut a, 0, prog as u32);
    put32(&mut a, 4, ifindex);
    put32(&mut a, 8, BPF_XDP);
    sys::owned(bpf(BPF_LINK_CREATE, &mut a)?)
}

fn prog_load(
    name: &str,
    t: ProgType,
    insns: &[u8],
    license: &str,
    log: Option<&mut Vec<u8>>,
) -> std::io::Result<OwnedFd> {
    let (ptype, attach) = match t {
        ProgType::SkReuseport { attach } => (BPF_PROG_TYPE_SK_REUSEPORT, attach),
        ProgType::Xdp => (BPF_PROG_TYPE_XDP, BPF_XDP),
    };
    let lic = std::ffi::CString::new(license).unwrap_or_else(|_| c"GPL".to_owned());
    let mut a = [0u8; 128];
    put32(&mut a, 0, ptype);
    put32(&mut a, 4, (insns.len() / 8) as u32);
    put64(&mut a, 8, insns.as_ptr() as u64);
    put64(&mut a, 16, lic.as_ptr() as u64);
    if let Some(buf) = log {
        put32(&mut a, 24, 1);
        put32(&mut a, 28, buf.len() as u32);
        put64(&mut a, 32, buf.as_mut_ptr() as u64);
    }
    obj_name(&mut a, 48, name);
    put32(&mut a, 68, attach);
    sys::owned(bpf(BPF_PROG_LOAD, &mut a)?)
}

/// A map to create, from whichever definition the object has.
struct MapDef {
    name: String,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    /// Initial contents of a global-data map.
    data: Option<Vec<u8>>,
    /// The ELF section it comes from (global data).
    section: Option<object::SectionIndex>,
    freeze: bool,
}

impl LoadedObject {
    /// Creates the object's maps and loads the listed programs.
    pub fn load(elf: &[u8], progs: &[(&str, ProgType)]) -> Result<Self, String> {
        // The ELF reader wants 8-byte aligned data (include_bytes! is not).
        let mut words = vec![0u64; elf.len().div_ceil(8)];
        // SAFETY: the u64 buffer has at least elf.len() bytes.
        let aligned =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), elf.len()) };
        aligned.copy_from_slice(elf);
        let elf: &[u8] = aligned;
        let file = object::File::parse(elf).map_err(|e| format!("not an ELF object: {e}"))?;
        if file.architecture() != object::Architecture::Bpf {
            return Err(format!(
                "not a BPF object (architecture {:?})",
                file.architecture()
            ));
        }
        let license = file
            .section_by_name("license")
            .and_then(|s| s.data().ok())
            .map(|d| String::from_utf8_lossy(d).trim_end_matches('\0').to_owned())
            .unwrap_or_else(|| "GPL".to_owned());
        let defs = map_defs(&file)?;
        let mut maps = Vec::new();
        for d in &defs {
            let fd = map_create(
                &d.name,
                d.map_type,
                d.key_size,
                d.value_size,
                d.max_entries,
                d.flags,
            )
            .map_err(|e| format!("creating map `{}`: {e}", d.name))?;
            if let Some(data) = &d.data {
                map_update(fd.as_raw_fd(), &0u32.to_ne_bytes(), data)
                    .map_err(|e| format!("initializing map `{}`: {e}", d.name))?;
                if d.freeze {
                    let mut a = [0u8; 8];
                    put32(&mut a, 0, fd.as_raw_fd() as u32);
                    let _ = bpf(BPF_MAP_FREEZE, &mut a);
                }
            }
            maps.push(MapInfo {
                name: d.name.clone(),
                fd,
                map_type: d.map_type,
                key_size: d.key_size,
                value_size: d.value_size,
            });
        }
        let mut programs = Vec::new();
        for &(name, t) in progs {
            let insns = relocated_program(&file, name, &defs, &maps)?;
            let fd = match prog_load(name, t, &insns, &license, None) {
                Ok(fd) => fd,
                Err(e) => {
                    let mut log = vec![0u8; 1 << 20];
                    let _ = prog_load(name, t, &insns, &license, Some(&mut log));
                    let end = log.iter().position(|&c| c == 0).unwrap_or(0);
                    let text = String::from_utf8_lossy(&log[..end]);
                    return Err(format!(
                        "loading program `{name}`: {e}\nverifier log:\n{text}"
                    ));
                }
            };
            programs.push((name.to_owned(), fd));
        }
        Ok(LoadedObject { maps, programs })
    }

    /// The map called `name`.
    pub fn map(&self, name: &str) -> Option<&MapInfo> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// The program called `name`.
    pub fn program(&self, name: &str) -> Option<RawFd> {
        self.programs
            .iter()
            .find(|p| p.0 == name)
            .map(|p| p.1.as_raw_fd())
    }
}

fn is_data_section(name: &str) -> bool {
    name == ".bss" || name == ".data" || name.starts_with(".rodata") || name.starts_with(".data.")
}

/// Every map the object defines.
fn map_defs(file: &object::File<'_>) -> Result<Vec<MapDef>, String> {
    let mut out = Vec::new();
    if let Some(btf) = file.section_by_name(".BTF") {
        let data = btf.data().map_err(|e| e.to_string())?;
        for d in btf::Btf::parse(data)?.map_defs()? {
            out.push(MapDef {
                name: d.name,
                map_type: d.map_type,
                key_size: d.key_size,
                value_size: d.value_size,
                max_entries: d.max_entries,
                flags: d.map_flags,
                data: None,
                section: None,
                freeze: false,
            });
        }
    }
    if let Some(sec) = file.section_by_name("maps") {
        let data = sec.data().map_err(|e| e.to_string())?;
        for sym in file
            .symbols()
            .filter(|s| s.section_index() == Some(sec.index()))
        {
            let o = sym.address() as usize;
            let f = |i: usize| -> Result<u32, String> {
                data.get(o + 4 * i..o + 4 * i + 4)
                    .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
                    .ok_or_else(|| "legacy map definition truncated".to_owned())
            };
            out.push(MapDef {
                name: sym.name().unwrap_or("").to_owned(),
                map_type: f(0)?,
                key_size: f(1)?,
                value_size: f(2)?,
                max_entries: f(3)?,
                flags: f(4)?,
                data: None,
                section: None,
                freeze: false,
            });
        }
    }
    for sec in file.sections() {
        let name = sec.name().unwrap_or("");
        if !is_data_section(name) || sec.size() == 0 {
            continue;
        }
        let contents = if name == ".bss" {
            vec![0u8; sec.size() as usize]
        } else {
            sec.data().map_err(|e| e.to_string())?.to_vec()
        };
        out.push(MapDef {
            name: name.to_owned(),
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: sec.size() as u32,
            max_entries: 1,
            flags: 0,
            data: Some(contents),
            section: Some(sec.index()),
            freeze: name.starts_with(".rodata"),
        });
    }
    Ok(out)
}

/// The instructions of function `name`, with map references patched.
fn relocated_program(
    file: &object::File<'_>,
    name: &str,
    defs: &[MapDef],
    maps: &[MapInfo],
) -> Result<Vec<u8>, String> {
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(name) && s.kind() == object::SymbolKind::Text)
        .ok_or_else(|| format!("no program `{name}` in the object"))?;
    let sec_idx = sym.section_index().ok_or("program without a section")?;
    let sec = file.section_by_index(sec_idx).map_err(|e| e.to_string())?;
    let (start, size) = (sym.address() as usize, sym.size() as usize);
    let data = sec.data().map_err(|e| e.to_string())?;
    let mut insns = data
        .get(start..start + size)
        .ok_or("program out of its section")?
        .to_vec();
    for i in (0..insns.len()).step_by(8) {
        if insns[i] == JMP_CALL && insns[i + 1] >> 4 == BPF_PSEUDO_CALL {
            return Err(format!(
                "program `{name}`: bpf-to-bpf calls are not supported; mark the callee __always_inline"
            ));
        }
    }
    for (off, rel) in sec.relocations() {
        let off = off as usize;
        if off < start || off >= start + size {
            continue;
        }
        let i = off - start;
        let RelocationTarget::Symbol(si) = rel.target() else {
            return Err(format!("program `{name}`: unsupported relocation at {off}"));
        };
        let target = file.symbol_by_index(si).map_err(|e| e.to_string())?;
        if insns[i] != LD_IMM64 {
            return Err(format!(
                "program `{name}`: relocation on a non-ld_imm64 instruction at {off} (calls into .text are not supported)"
            ));
        }
        let tsec = target.section_index();
        let tsec_name = tsec
            .and_then(|s| file.section_by_index(s).ok())
            .and_then(|s| s.name().ok().map(str::to_owned))
            .unwrap_or_default();
        let (map_i, pseudo, value_off) = if tsec_name == ".maps" || tsec_name == "maps" {
            let tname = target.name().unwrap_or("");
            let m = defs
                .iter()
                .position(|d| d.name == tname && d.section.is_none());
            (m, BPF_PSEUDO_MAP_FD, None)
        } else if is_data_section(&tsec_name) {
            let m = defs.iter().position(|d| d.section == tsec);
            let addend = i32::from_ne_bytes(insns[i + 4..i + 8].try_into().expect("4 bytes"));
            let sym_off = if target.kind() == object::SymbolKind::Section {
                0
            } else {
                target.address() as i64
            };
            (m, BPF_PSEUDO_MAP_VALUE, Some(sym_off + i64::from(addend)))
        } else {
            return Err(format!(
                "program `{name}`: relocation against `{}` in section `{tsec_name}` is not supported",
                target.name().unwrap_or("?")
            ));
        };
        let m = map_i.ok_or_else(|| {
            format!(
                "program `{name}`: unknown map `{}`",
                target.name().unwrap_or("?")
            )
        })?;
        insns[i + 1] = (insns[i + 1] & 0x0f) | (pseudo << 4);
        insns[i + 4..i + 8].copy_from_slice(&maps[m].fd.as_raw_fd().to_ne_bytes());
        if let Some(v) = value_off {
            insns[i + 12..i + 16].copy_from_slice(&(v as i32).to_ne_bytes());
        }
    }
    Ok(insns)
}
