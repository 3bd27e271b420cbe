//! Ctrl-C (SIGINT) and SIGTERM: nothing of the run is left behind.
//!
//! [`install`] starts a thread that waits for either signal. When one
//! arrives it takes the registry lock (so that no output line is half
//! written: writers hold it through [`critical`]), removes every registered
//! temporary file, runs the registered clean-up actions (e.g. a kernel run's
//! namespaces), prints the registered note (e.g. how to resume a sweep) and
//! exits with 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
//! Completed outputs are never touched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

type Cleanup = Box<dyn FnMut() + Send>;

#[derive(Default)]
struct Registry {
    next: u64,
    temps: BTreeMap<u64, PathBuf>,
    cleanups: BTreeMap<u64, Cleanup>,
    note: Option<String>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Registry>> {
    // A panic while holding the lock leaves the data usable.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut g = lock();
    f(g.get_or_insert_with(Registry::default))
}

/// Keeps a temporary file registered for removal on interruption; dropping
/// it ends the registration (the file was renamed into place or removed).
pub struct TempGuard {
    id: u64,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        with_registry(|r| r.temps.remove(&self.id));
    }
}

/// Creates a temporary file with `create` while holding the registry lock,
/// and registers its path: an interruption cannot fall between the two.
pub fn with_temp<E>(
    create: impl FnOnce() -> Result<tempfile::NamedTempFile, E>,
) -> Result<(tempfile::NamedTempFile, TempGuard), E> {
    with_registry(|r| {
        let tmp = create()?;
        let id = r.next;
        r.next += 1;
        r.temps.insert(id, tmp.path().to_path_buf());
        Ok((tmp, TempGuard { id }))
    })
}

/// Keeps a clean-up action registered; dropping it unregisters the action
/// without running it.
pub struct CleanupGuard {
    id: u64,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        with_registry(|r| r.cleanups.remove(&self.id));
    }
}

/// Registers `f` to run if the process is interrupted before the guard drops.
pub fn on_interrupt(f: impl FnMut() + Send + 'static) -> CleanupGuard {
    with_registry(|r| {
        let id = r.next;
        r.next += 1;
        r.cleanups.insert(id, Box::new(f));
        CleanupGuard { id }
    })
}

/// Sets the message printed on interruption (`None` clears it).
pub fn set_note(note: Option<String>) {
    with_registry(|r| r.note = note);
}

/// Runs `f` with the registry lock held: an interruption waits for it to
/// finish (e.g. a whole line of a results file). `f` must not call into
/// this module.
pub fn critical<T>(f: impl FnOnce() -> T) -> T {
    let _g = lock();
    f()
}

/// Installs the SIGINT/SIGTERM handler thread (once per process).
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if ONCE.get().is_some() {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let mut g = lock();
                let r = g.get_or_insert_with(Registry::default);
                for p in r.temps.values() {
                    let _ = std::fs::remove_file(p);
                }
                for f in r.cleanups.values_mut() {
                    f();
                }
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                eprintln!("\ninterrupted ({name}): temporary files removed");
                if let Some(n) = &r.note {
                    eprintln!("{n}");
                }
                std::process::exit(128 + sig);
            }
        })?;
    let _ = ONCE.set(());
    Ok(())
}
