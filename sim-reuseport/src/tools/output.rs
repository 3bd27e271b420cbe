//! Atomic output files: written to a temporary file beside the target and
//! renamed into place only when complete, so a failed run never leaves a
//! half-written file over a good one.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written atomically.
pub struct AtomicFile {
    target: PathBuf,
    writer: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `target` (through a temporary file in the same directory).
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".reuseport-sim-")
            .tempfile_in(dir)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create a file in {}: {e}", dir.display()),
                )
            })?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            writer: BufWriter::new(tmp),
        })
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut BufWriter<tempfile::NamedTempFile> {
        &mut self.writer
    }

    /// Flushes and renames into place.
    pub fn commit(self) -> io::Result<()> {
        let tmp = self.writer.into_inner().map_err(|e| e.into_error())?;
        // Temporary files are created 0600; a report is an ordinary file that
        // other users (e.g. a `merge` on a shared volume) must read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&self.target).map_err(|e| {
            io::Error::new(
                e.error.kind(),
                format!("cannot write {}: {}", self.target.display(), e.error),
            )
        })?;
        Ok(())
    }
}

/// Writes `contents` to `target` atomically.
pub fn write_atomic(target: &Path, contents: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(target)?;
    f.writer().write_all(contents)?;
    f.commit()
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}
