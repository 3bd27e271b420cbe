//! Private network namespaces, made with system calls and named like
//! `ip netns` names them, so `ip netns list` shows them while a run is on.
//!
//! Creation: a short-lived thread calls `unshare(CLONE_NEWNET)` (which
//! moves only that thread), opens `/proc/thread-self/ns/net`, and
//! bind-mounts it onto `/run/netns/<name>`, as `ip netns add` does. Syscalls
//! rather than `ip`: no dependency on iproute2 being installed, and every
//! failure comes back as an errno with its context. The caller's own thread
//! never changes namespace, so the host's namespace is never touched.
//!
//! Names: `rpsim-<pid>.<start>-<seq>-<host>`, where `<start>` is the
//! process start time (field 22 of `/proc/<pid>/stat`), so a leftover of a
//! crashed run is recognized even if its pid has been reused.
//! [`remove_leftovers`] unmounts and unlinks every `rpsim-` name whose
//! process is gone.
//!
//! [`Netns`] is an RAII guard: dropping it unmounts and unlinks the name
//! and closes the namespace fd; the kernel frees the namespace once no
//! socket, device fd or thread refers to it any more.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{KernelError, Result};
use crate::sys::{cvt, owned};

/// Where named namespaces live (as for `ip netns`).
pub const NETNS_DIR: &str = "/run/netns";
/// Prefix of every namespace name this crate makes.
pub const PREFIX: &str = "rpsim-";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A named private network namespace; dropped = removed.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
    fd: OwnedFd,
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), `None` if the process does not exist.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The `rpsim-<pid>.<start>` tag of this process.
pub fn process_tag() -> String {
    let pid = std::process::id();
    format!("{PREFIX}{pid}.{}", process_start(pid).unwrap_or(0))
}

fn sanitize(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    if s.is_empty() {
        "h".to_owned()
    } else {
        s
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

impl Netns {
    /// Creates a namespace for `host` with a fresh unique name.
    pub fn create(host: &str) -> Result<Netns> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{seq}-{}", process_tag(), sanitize(host));
        Self::create_named(&name)
    }

    /// Creates a namespace named exactly `name` (tests use this to plant a
    /// fake leftover).
    pub fn create_named(name: &str) -> Result<Netns> {
        std::fs::create_dir_all(NETNS_DIR)
            .map_err(|e| KernelError::sys(format!("creating {NETNS_DIR}"), e))?;
        let path = Path::new(NETNS_DIR).join(name);
        let ctx = format!("creating network namespace {name}");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| KernelError::sys(format!("{ctx}: creating {}", path.display()), e))?;
        let p2 = path.clone();
        let made = std::thread::Builder::new()
            .name("rpsim-unshare".into())
            .spawn(move || -> io::Result<OwnedFd> {
                // SAFETY: plain syscall; affects only this thread.
                cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
                let fd = owned(unsafe {
                    libc::open(
                        c"/proc/thread-self/ns/net".as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    )
                })?;
                let target = cpath(&p2)?;
                // SAFETY: valid C strings; a bind mount of this thread's
                // namespace file onto the empty file.
                cvt(unsafe {
                    libc::mount(
                        c"/proc/thread-self/ns/net".as_ptr(),
                        target.as_ptr(),
                        c"none".as_ptr(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    )
                })?;
                Ok(fd)
            })
            .map_err(|e| KernelError::sys(ctx.clone(), e))?
            .join()
            .map_err(|_| KernelError::ThreadPanicked(ctx.clone()))?;
        match made {
            Ok(fd) => Ok(Netns {
                name: name.to_owned(),
                path,
                fd,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(KernelError::sys(ctx, e))
            }
        }
    }

    /// Its name under `/run/netns`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves the calling thread into this namespace. Only for threads the
    /// run itself created.
    pub fn enter(&self) -> io::Result<()> {
        // SAFETY: valid namespace fd.
        cvt(unsafe { libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWNET) }).map(|_| ())
    }

    /// A duplicate of the namespace fd, for a thread that outlives the
    /// borrow (see [`enter_fd`]).
    pub fn dup_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Runs `f` on a scoped thread inside this namespace and returns its
    /// result: sockets it creates belong to the namespace, and files under
    /// `/proc/thread-self/net` and `/proc/sys/net` are the namespace's.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter()
                    .map_err(|e| KernelError::sys(format!("entering {}", self.name), e))?;
                f()
            })
            .join()
            .map_err(|p| KernelError::ThreadPanicked(panic_message(&p)))?
        })
    }
}

/// Moves the calling thread into the namespace of `fd` (from
/// [`Netns::dup_fd`]).
pub fn enter_fd(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: valid namespace fd.
    cvt(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }).map(|_| ())
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

fn remove_name(path: &Path) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string. Detach: works even while something still
    // uses the namespace; EINVAL means it was not mounted.
    let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
            return Err(e);
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = remove_name(&self.path) {
            eprintln!("warning: removing {}: {e}", self.path.display());
        }
    }
}

/// Names under `/run/netns` made by this crate (any process).
pub fn list_ours() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    v.sort();
    v
}

/// Names made by this process.
pub fn list_mine() -> Vec<String> {
    let tag = format!("{}-", process_tag());
    list_ours()
        .into_iter()
        .filter(|n| n.starts_with(&tag))
        .collect()
}

/// `(pid, start)` of a name `rpsim-<pid>.<start>-...`.
fn owner_of(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix(PREFIX)?;
    let tag = rest.split('-').next()?;
    let (pid, start) = tag.split_once('.')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Removes the namespaces of earlier runs whose process is gone (crashed or
/// killed), and returns their names. Names of live processes, and names not
/// in this crate's format, are left alone.
pub fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    for name in list_ours() {
        let alive = match owner_of(&name) {
            Some((pid, start)) => process_start(pid) == Some(start),
            // Not our format: leave it.
            None => true,
        };
        if !alive && remove_name(&Path::new(NETNS_DIR).join(&name)).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Removes every namespace this process made that is still mounted, and
/// returns their names: the last resort of an interrupt handler that exits
/// before a run's own guard could drop (the normal path is the guard).
pub fn remove_mine() -> Vec<String> {
    list_mine()
        .into_iter()
        .filter(|name| remove_name(&Path::new(NETNS_DIR).join(name)).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sanitize("server-1/x"), "server_1_x");
        assert_eq!(sanitize(""), "h");
        assert_eq!(owner_of("rpsim-123.456-0-lo"), Some((123, 456)));
        assert_eq!(owner_of("rpsim-abc-0-lo"), None);
        assert_eq!(owner_of("other"), None);
        let me = std::process::id();
        assert!(process_start(me).is_some());
        assert!(process_tag().starts_with(&format!("rpsim-{me}.")));
    }
}
