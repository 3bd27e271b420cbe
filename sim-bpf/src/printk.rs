//! `bpf_trace_printk` formatting, with the checks of `bpf_bprintf_prepare`
//! (`kernel/bpf/helpers.c`): a NUL-terminated format within `fmt_size`,
//! printable ASCII, at most 3 conversions, and only `%d %i %u %x %X %c %s
//! %p %pK %px %pI4 %pi4 %pI6 %pi6 %%` with `l`/`ll` and `[0 +-][width]`.

use std::fmt::Write as _;

/// An argument the formatter may need to dereference (`%s`, `%pI4`).
pub(crate) trait ReadMem {
    /// Reads `len` bytes at `addr`, or `None` if not readable.
    fn read_mem(&mut self, addr: u64, len: usize) -> Option<Vec<u8>>;
}

/// Formats; `Err(())` is `-EINVAL`.
pub(crate) fn format(fmt: &[u8], args: &[u64; 3], mem: &mut dyn ReadMem) -> Result<String, ()> {
    let end = fmt.iter().position(|&c| c == 0).ok_or(())?;
    let fmt = &fmt[..end];
    let mut out = String::new();
    let mut n = 0usize;
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        if c.is_ascii() && !(c.is_ascii_graphic() || c.is_ascii_whitespace()) {
            return Err(());
        }
        if c != b'%' {
            out.push(c as char);
            i += 1;
            continue;
        }
        if fmt.get(i + 1) == Some(&b'%') {
            out.push('%');
            i += 2;
            continue;
        }
        if n >= 3 {
            return Err(());
        }
        i += 1;
        // Flags and width.
        let mut zero = false;
        let mut left = false;
        let mut plus = false;
        while let Some(&f) = fmt.get(i) {
            match f {
                b'0' => zero = true,
                b'-' => left = true,
                b'+' => plus = true,
                b' ' => {}
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        while let Some(&d) = fmt.get(i).filter(|d| d.is_ascii_digit()) {
            width = width * 10 + (d - b'0') as usize;
            i += 1;
        }
        let arg = args[n];
        n += 1;
        let mut longs = 0;
        while fmt.get(i) == Some(&b'l') {
            longs += 1;
            i += 1;
        }
        let conv = *fmt.get(i).ok_or(())?;
        i += 1;
        let body = match conv {
            b'd' | b'i' => {
                let v = if longs == 0 {
                    arg as i32 as i64
                } else {
                    arg as i64
                };
                if plus && v >= 0 {
                    format!("+{v}")
                } else {
                    v.to_string()
                }
            }
            b'u' => (if longs == 0 { arg as u32 as u64 } else { arg }).to_string(),
            b'x' => format!("{:x}", if longs == 0 { arg as u32 as u64 } else { arg }),
            b'X' => format!("{:X}", if longs == 0 { arg as u32 as u64 } else { arg }),
            b'c' => ((arg as u8) as char).to_string(),
            b's' => read_string(mem, arg),
            b'p' => match (fmt.get(i), fmt.get(i + 1)) {
                (Some(b'i' | b'I'), Some(b'4')) => {
                    i += 2;
                    let b = mem.read_mem(arg, 4).unwrap_or(vec![0; 4]);
                    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
                }
                (Some(b'i' | b'I'), Some(b'6')) => {
                    let compact = fmt[i] == b'I';
                    i += 2;
                    let b = mem.read_mem(arg, 16).unwrap_or(vec![0; 16]);
                    let mut s = String::new();
                    for k in 0..8 {
                        if k > 0 && compact {
                            s.push(':');
                        }
                        let _ = write!(s, "{:02x}{:02x}", b[2 * k], b[2 * k + 1]);
                    }
                    s
                }
                (Some(b'K' | b'x' | b's' | b'S'), _) => {
                    i += 1;
                    format!("{arg:016x}")
                }
                (Some(b'k' | b'u'), Some(b's')) => {
                    i += 2;
                    read_string(mem, arg)
                }
                (next, _) => {
                    if next.is_some_and(|c| !(c.is_ascii_whitespace() || c.is_ascii_punctuation()))
                    {
                        return Err(());
                    }
                    format!("{arg:016x}")
                }
            },
            _ => return Err(()),
        };
        if body.len() < width {
            let pad = width - body.len();
            if left {
                out.push_str(&body);
                out.extend(std::iter::repeat_n(' ', pad));
            } else {
                let c = if zero { '0' } else { ' ' };
                out.extend(std::iter::repeat_n(c, pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    Ok(out)
}

fn read_string(mem: &mut dyn ReadMem, addr: u64) -> String {
    let mut s = String::new();
    for k in 0..1024u64 {
        match mem.read_mem(addr.wrapping_add(k), 1) {
            Some(b) if b[0] != 0 => s.push(b[0] as char),
            Some(_) => return s,
            None => return if k == 0 { "(efault)".into() } else { s },
        }
    }
    s
}
