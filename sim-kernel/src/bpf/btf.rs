//! Just enough BTF to read libbpf-style map definitions
//! (`struct { __uint(type, ...); __type(key, ...); ... } name SEC(".maps")`):
//! the `.maps` `DATASEC`, each variable's struct, and the values encoded in
//! its members (`__uint(x, N)` is `int (*x)[N]`, `__type(x, T)` is
//! `T *x`).

/// A map definition read from BTF.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BtfMapDef {
    /// Variable (and map) name.
    pub name: String,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size.
    pub key_size: u32,
    /// Value size.
    pub value_size: u32,
    /// Entries.
    pub max_entries: u32,
    /// Flags.
    pub map_flags: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name_off: u32,
    kind: u32,
    vlen: u32,
    size_or_type: u32,
    /// Kind-specific data (members, array info...).
    extra: Vec<u32>,
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Parsed BTF types and strings.
pub struct Btf<'a> {
    types: Vec<Type>,
    strings: &'a [u8],
}

fn u32_at(b: &[u8], o: usize) -> Result<u32, String> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| "BTF: truncated".to_owned())
}

impl<'a> Btf<'a> {
    /// Parses a `.BTF` section.
    pub fn parse(b: &'a [u8]) -> Result<Self, String> {
        if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != 0xeb9f {
            return Err("BTF: bad magic (only little-endian objects are supported)".into());
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let types_b = b
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or("BTF: type section out of bounds")?;
        let strings = b
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or("BTF: string section out of bounds")?;
        // Type id 0 is void.
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            vlen: 0,
            size_or_type: 0,
            extra: vec![],
        }];
        let mut o = 0;
        while o < types_b.len() {
            let name_off = u32_at(types_b, o)?;
            let info = u32_at(types_b, o + 4)?;
            let size_or_type = u32_at(types_b, o + 8)?;
            o += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = info & 0xffff;
            let words = match kind {
                KIND_INT | KIND_VAR | 17 => 1,
                KIND_ARRAY => 3,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 3 * vlen,
                KIND_ENUM | 13 => 2 * vlen,
                _ => 0,
            } as usize;
            let mut extra = Vec::with_capacity(words);
            for i in 0..words {
                extra.push(u32_at(types_b, o + 4 * i)?);
            }
            o += 4 * words;
            types.push(Type {
                name_off,
                kind,
                vlen,
                size_or_type,
                extra,
            });
        }
        Ok(Btf { types, strings })
    }

    fn name(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    fn get(&self, id: u32) -> Result<&Type, String> {
        self.types
            .get(id as usize)
            .ok_or_else(|| format!("BTF: unknown type id {id}"))
    }

    /// Skips typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Result<&Type, String> {
        for _ in 0..32 {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Ok(t),
            }
        }
        Err("BTF: type chain too long".into())
    }

    /// `sizeof` a type.
    fn size_of(&self, id: u32) -> Result<u32, String> {
        let t = self.resolve(id)?;
        Ok(match t.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT
            | KIND_DATASEC => t.size_or_type,
            KIND_PTR => 8,
            KIND_ARRAY => t.extra[2] * self.size_of(t.extra[0])?,
            k => return Err(format!("BTF: no size for kind {k}")),
        })
    }

    /// The map definitions of the `.maps` section.
    pub fn map_defs(&self) -> Result<Vec<BtfMapDef>, String> {
        let Some(sec) = self
            .types
            .iter()
            .find(|t| t.kind == KIND_DATASEC && self.name(t.name_off) == ".maps")
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for v in 0..sec.vlen as usize {
            let var = self.get(sec.extra[3 * v])?;
            if var.kind != KIND_VAR {
                continue;
            }
            let mut def = BtfMapDef {
                name: self.name(var.name_off).to_owned(),
                ..Default::default()
            };
            let st = self.resolve(var.size_or_type)?;
            if st.kind != KIND_STRUCT {
                return Err(format!("map `{}`: not a struct", def.name));
            }
            for m in 0..st.vlen as usize {
                let mname = self.name(st.extra[3 * m]);
                let mtype = st.extra[3 * m + 1];
                // Every member is a pointer: to an array (a number) or to a type.
                let ptr = self.resolve(mtype)?;
                if ptr.kind != KIND_PTR {
                    return Err(format!(
                        "map `{}`: member `{mname}` is not a pointer",
                        def.name
                    ));
                }
                let number = || -> Result<u32, String> {
                    let arr = self.resolve(ptr.size_or_type)?;
                    if arr.kind != KIND_ARRAY {
                        return Err(format!("map `{}`: `{mname}` is not __uint()", def.name));
                    }
                    Ok(arr.extra[2])
                };
                match mname {
                    "type" => def.map_type = number()?,
                    "max_entries" => def.max_entries = number()?,
                    "map_flags" => def.map_flags = number()?,
                    "key_size" => def.key_size = number()?,
                    "value_size" => def.value_size = number()?,
                    "key" => def.key_size = self.size_of(ptr.size_or_type)?,
                    "value" => def.value_size = self.size_of(ptr.size_or_type)?,
                    "pinning" | "numa_node" => {}
                    other => {
                        return Err(format!(
                            "map `{}`: unsupported attribute `{other}`",
                            def.name
                        ))
                    }
                }
            }
            out.push(def);
        }
        Ok(out)
    }
}
