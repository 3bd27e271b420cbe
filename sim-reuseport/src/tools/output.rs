//! Output files that never destroy what is at their path by accident.
//!
//! Rules (documented in the README, "Output files"):
//! - `-` and `/dev/stdout` mean standard output (streamed).
//! - A character device (`/dev/null`, a terminal) or a FIFO is written
//!   directly, streaming, never replaced by a regular file.
//! - A regular file (or a path that does not exist yet) is written to a
//!   temporary file beside it and renamed into place only when complete, so
//!   a failed or interrupted run never leaves a half-written file over a good
//!   one. The temporary file is removed on error and on Ctrl-C/SIGTERM
//!   ([`crate::interrupt`]).
//! - Symbolic links are followed: the file a link points to is replaced (the
//!   link itself stays a link), also when the link dangles.
//! - Directories, block devices and sockets are refused.
//! - [`check_distinct`] refuses an output that is one of the run's inputs or
//!   another of its outputs (only `/dev/null` may repeat).

use crate::interrupt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Where an output path leads, after following symbolic links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Standard output (`-` or `/dev/stdout`).
    Stdout,
    /// A character device or FIFO: written directly.
    Stream(PathBuf),
    /// A regular file (existing or not), symlinks resolved: written through
    /// a temporary file and renamed.
    Atomic(PathBuf),
}

/// Most symbolic links followed for one path (as the kernel's `ELOOP`).
const MAX_LINKS: usize = 40;

fn is_stdout(path: &Path) -> bool {
    path == Path::new("-") || path == Path::new("/dev/stdout")
}

/// Follows `path`'s symbolic links, also a dangling last one: the path of the
/// file that writing `path` would create or replace.
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links to follow"
    )))
}

/// Classifies an output path (see the module documentation).
pub fn resolve(path: &Path) -> Result<Sink, String> {
    if is_stdout(path) {
        return Ok(Sink::Stdout);
    }
    let shown = path.display();
    let real = follow_links(path).map_err(|e| format!("{shown}: {e}"))?;
    match std::fs::metadata(&real) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let t = m.file_type();
            if t.is_file() {
                Ok(Sink::Atomic(real))
            } else if t.is_char_device() || t.is_fifo() {
                Ok(Sink::Stream(real))
            } else if t.is_dir() {
                Err(format!("{shown}: is a directory, expected a file"))
            } else {
                Err(format!(
                    "{shown}: is a block device or socket; expected a regular file, a character \
                     device, a FIFO or `-` (standard output)"
                ))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = match real.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(format!(
                    "{shown}: the directory {} does not exist",
                    dir.display()
                ));
            }
            Ok(Sink::Atomic(real))
        }
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// What makes two paths the same file: device and inode when it exists,
/// else the canonical directory and the name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Identity {
    Stdout,
    Inode { dev: u64, ino: u64, dev_null: bool },
    Path(PathBuf),
}

fn identity(path: &Path) -> Identity {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if is_stdout(path) {
        return Identity::Stdout;
    }
    let real = follow_links(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(m) = std::fs::metadata(&real) {
        // /dev/null is character device 1:3 on Linux.
        let dev_null = m.file_type().is_char_device() && m.rdev() == ((1 << 8) | 3);
        return Identity::Inode {
            dev: m.dev(),
            ino: m.ino(),
            dev_null,
        };
    }
    let dir = real
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Identity::Path(dir.join(real.file_name().unwrap_or_default()))
}

/// Refuses an output that is one of `inputs` or the same file as another
/// output. Each entry is (what it is, e.g. `--trace`, path).
pub fn check_distinct(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<(), String> {
    let ins: Vec<(&str, &Path, Identity)> =
        inputs.iter().map(|&(w, p)| (w, p, identity(p))).collect();
    let mut seen: Vec<(&str, &Path, Identity)> = Vec::new();
    for &(what, path) in outputs {
        let id = identity(path);
        if let Some((w, p, _)) = ins.iter().find(|(_, _, i)| *i == id) {
            return Err(format!(
                "{what} {} is the same file as the {w} {}: refusing to overwrite an input",
                path.display(),
                p.display()
            ));
        }
        let repeatable = matches!(id, Identity::Inode { dev_null: true, .. });
        if !repeatable {
            if let Some((w, p, _)) = seen.iter().find(|(_, _, i)| *i == id) {
                return Err(format!(
                    "{what} {} and {w} {} are the same file: each output needs its own path",
                    path.display(),
                    p.display()
                ));
            }
        }
        seen.push((what, path, id));
    }
    Ok(())
}

/// A file being written atomically: a temporary file beside the target,
/// renamed into place by [`AtomicFile::commit`]. Dropped without a commit,
/// the temporary file is removed.
pub struct AtomicFile {
    target: PathBuf,
    writer: BufWriter<tempfile::NamedTempFile>,
    _guard: interrupt::TempGuard,
}

impl AtomicFile {
    /// Starts writing `target` (through a temporary file in its directory).
    /// `target` must be a resolved path ([`Sink::Atomic`]).
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // Registered before it exists, so that an interruption between the
        // creation and the registration cannot leave it behind.
        let (tmp, guard) = interrupt::with_temp(|| {
            tempfile::Builder::new()
                .prefix(".reuseport-sim-")
                .tempfile_in(dir)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot create a file in {}: {e}", dir.display()),
                    )
                })
        })?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            writer: BufWriter::new(tmp),
            _guard: guard,
        })
    }

    /// Flushes, syncs and renames into place. The file keeps the mode of
    /// the file it replaces (0644 for a new one).
    pub fn commit(self) -> io::Result<()> {
        let AtomicFile {
            target,
            writer,
            _guard,
        } = self;
        let tmp = writer.into_inner().map_err(|e| e.into_error())?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o644);
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        tmp.as_file().sync_all()?;
        // An interruption before the rename removes the temporary file; one
        // after it finds nothing to remove (the name is gone): the rename is
        // atomic either way. The guard drops after the rename.
        tmp.persist(&target).map_err(|e| {
            io::Error::new(
                e.error.kind(),
                format!("cannot write {}: {}", target.display(), e.error),
            )
        })?;
        drop(_guard);
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// An output being written, whatever its [`Sink`].
pub enum OutputFile {
    /// Standard output.
    Stdout(BufWriter<io::Stdout>),
    /// A character device or FIFO.
    Stream(BufWriter<std::fs::File>),
    /// A regular file, written atomically.
    Atomic(AtomicFile),
}

impl OutputFile {
    /// Opens `sink` for writing.
    pub fn create(sink: &Sink) -> io::Result<Self> {
        Ok(match sink {
            Sink::Stdout => OutputFile::Stdout(BufWriter::new(io::stdout())),
            Sink::Stream(p) => {
                let f = std::fs::OpenOptions::new().write(true).open(p)?;
                OutputFile::Stream(BufWriter::new(f))
            }
            Sink::Atomic(p) => OutputFile::Atomic(AtomicFile::create(p)?),
        })
    }

    /// Opens the output at `path` ([`resolve`] first).
    pub fn open(path: &Path) -> Result<Self, String> {
        let sink = resolve(path)?;
        Self::create(&sink).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Finishes the output: flushes a stream, renames an atomic file into place.
    pub fn commit(self) -> io::Result<()> {
        match self {
            OutputFile::Stdout(mut w) => w.flush(),
            OutputFile::Stream(mut w) => w.flush(),
            OutputFile::Atomic(f) => f.commit(),
        }
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            OutputFile::Stdout(w) => w.write(buf),
            OutputFile::Stream(w) => w.write(buf),
            OutputFile::Atomic(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            OutputFile::Stdout(w) => w.flush(),
            OutputFile::Stream(w) => w.flush(),
            OutputFile::Atomic(f) => f.flush(),
        }
    }
}

/// Writes `contents` to the output at `target` (see [`resolve`]).
pub fn write_output(target: &Path, contents: &[u8]) -> Result<(), String> {
    let mut f = OutputFile::open(target)?;
    f.write_all(contents)
        .and_then(|_| f.commit())
        .map_err(|e| format!("{}: {e}", target.display()))
}

/// Writes `contents` to the regular file `target` atomically.
pub fn write_atomic(target: &Path, contents: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(target)?;
    f.write_all(contents)?;
    f.commit()
}

/// Reads a whole input file, refusing one larger than `limit` bytes (a
/// device such as `/dev/zero` would otherwise be read until memory runs out).
pub fn read_limited(path: &Path, limit: u64) -> io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    if f.metadata()?.is_dir() {
        return Err(io::Error::other("is a directory, expected a file"));
    }
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::other(format!(
            "larger than {} MiB: not a scenario file?",
            limit >> 20
        )));
    }
    String::from_utf8(buf).map_err(|_| io::Error::other("not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.json");
        assert_eq!(resolve(&f).unwrap(), Sink::Atomic(f.clone()));
        std::fs::write(&f, "x").unwrap();
        assert_eq!(resolve(&f).unwrap(), Sink::Atomic(f.clone()));
        assert_eq!(resolve(Path::new("-")).unwrap(), Sink::Stdout);
        assert_eq!(
            resolve(Path::new("/dev/null")).unwrap(),
            Sink::Stream("/dev/null".into())
        );
        assert!(resolve(dir.path()).unwrap_err().contains("is a directory"));
        assert!(resolve(&dir.path().join("no/such/x"))
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn symlinks_are_followed_also_dangling() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.svg");
        let link = dir.path().join("link.svg");
        std::os::unix::fs::symlink("real.svg", &link).unwrap();
        assert_eq!(resolve(&link).unwrap(), Sink::Atomic(target.clone()));
        write_output(&link, b"svg").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"svg");
    }

    #[test]
    fn refuses_inputs_and_repeated_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let scn = dir.path().join("x.json");
        std::fs::write(&scn, "{}").unwrap();
        let link = dir.path().join("l.json");
        std::os::unix::fs::symlink(&scn, &link).unwrap();
        let out = dir.path().join("t.jsonl");
        let e = check_distinct(&[("scenario", &scn)], &[("--trace", &link)]).unwrap_err();
        assert!(e.contains("refusing to overwrite an input"), "{e}");
        let e = check_distinct(&[], &[("--trace", &out), ("--pcap", &out)]).unwrap_err();
        assert!(e.contains("same file"), "{e}");
        let e = check_distinct(
            &[],
            &[("--trace", Path::new("-")), ("--pcap", Path::new("-"))],
        )
        .unwrap_err();
        assert!(e.contains("same file"), "{e}");
        let null = Path::new("/dev/null");
        check_distinct(
            &[("scenario", &scn)],
            &[("--trace", null), ("--pcap", null)],
        )
        .unwrap();
    }

    #[test]
    fn a_character_device_is_not_replaced() {
        write_output(Path::new("/dev/null"), b"data").unwrap();
        use std::os::unix::fs::FileTypeExt;
        let m = std::fs::metadata("/dev/null").unwrap();
        assert!(m.file_type().is_char_device());
        if Path::new("/dev/full").exists() {
            let e = write_output(Path::new("/dev/full"), &[0u8; 70_000]).unwrap_err();
            assert!(e.contains("/dev/full"), "{e}");
            let m = std::fs::metadata("/dev/full").unwrap();
            assert!(m.file_type().is_char_device());
        }
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.svg");
        std::fs::write(&f, "good").unwrap();
        {
            let mut a = AtomicFile::create(&f).unwrap();
            a.write_all(b"half").unwrap();
            // Dropped without commit: an error path.
        }
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "good");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file is removed");
    }

    #[test]
    fn input_size_is_bounded() {
        let e = read_limited(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
    }
}
