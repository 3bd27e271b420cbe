//! Timeline actions, carried out by the timeline thread at their time, in
//! order, directly on the sockets (under the listeners' mutex) so that
//! actions at one instant keep their order.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crate::bpf;
use crate::policy::{self, LoadedPolicy};
use crate::runner::Live;
use crate::spec::{Action, KernelSpec, MapDatum, MapEntry};
use crate::sys;
use crate::sysctl;
use crate::worker::{self, Listeners, SockState};

/// A human-readable label of an action.
pub fn label(spec: &KernelSpec, a: &Action) -> String {
    let w = |i: &usize| spec.workers[*i].name.as_str();
    match a {
        Action::Listen(i) => format!("listen {}", w(i)),
        Action::Shutdown(i) => format!("shutdown {}", w(i)),
        Action::Close(i) => format!("close {}", w(i)),
        Action::Relisten { worker, backlog } => format!("relisten {} {backlog}", w(worker)),
        Action::StopAccepting(i) => format!("stop_accepting {}", w(i)),
        Action::ResumeAccepting(i) => format!("resume_accepting {}", w(i)),
        Action::Kill(i) => format!("kill {}", w(i)),
        Action::Handover { from, to } => format!("handover {}->{}", w(from), w(to)),
        Action::SetSysctl { host, name, value } => {
            format!(
                "set_sysctl {} {name}={value}",
                spec.hosts[host.0 as usize].name
            )
        }
        Action::AttachPolicy { policy, via } => {
            format!(
                "attach_policy {} via {}",
                spec.policies[*policy].name,
                w(via)
            )
        }
        Action::DetachPolicy { via } => format!("detach_policy via {}", w(via)),
        Action::MapUpdate { policy, entry, .. } => {
            format!("map_update {}:{}", spec.policies[*policy].name, entry.map)
        }
        Action::MapDelete { policy, map, .. } => {
            format!("map_delete {}:{map}", spec.policies[*policy].name)
        }
    }
}

fn errno(e: std::io::Error) -> String {
    e.to_string()
}

/// Bumps the generation of every worker holding listener slot `c` and
/// wakes it.
fn touch(l: &mut Listeners, live: &Live, c: usize) {
    for (i, ctl) in l.ctl.iter_mut().enumerate() {
        if ctl.current == Some(c) {
            ctl.generation += 1;
            sys::eventfd_signal(live.worker_wakes[i].as_raw_fd());
        }
    }
}

fn wake(live: &Live, w: usize) {
    if let Some(fd) = live.worker_wakes.get(w) {
        sys::eventfd_signal(fd.as_raw_fd());
    }
}

/// Carries out `a`; `Err` with the system error if it failed (the run
/// goes on, as a real orchestrator's would).
pub fn execute(spec: &KernelSpec, live: &Live, a: &Action) -> Result<(), String> {
    let shared = live.shared.as_ref().expect("listeners").clone();
    let (lock, _) = &*shared;
    let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
    let own = |l: &Listeners, w: usize| -> Result<RawFd, String> {
        l.socks[w]
            .as_ref()
            .map(|s| s.as_raw_fd())
            .ok_or_else(|| "the socket is closed".to_owned())
    };
    match a {
        Action::Listen(w) => {
            let fd = own(&l, *w)?;
            let backlog = i32::try_from(spec.workers[*w].backlog).unwrap_or(i32::MAX);
            // SAFETY: plain syscall on a socket we own.
            sys::cvt(unsafe { libc::listen(fd, backlog) }).map_err(errno)?;
            l.states[*w] = SockState::Listen;
            touch(&mut l, live, *w);
        }
        Action::Relisten { worker, backlog } => {
            let c = l.ctl[*worker]
                .current
                .ok_or("the worker holds no listener")?;
            let fd = own(&l, c)?;
            let backlog = i32::try_from(*backlog).unwrap_or(i32::MAX);
            // SAFETY: plain syscall on a socket we own.
            sys::cvt(unsafe { libc::listen(fd, backlog) }).map_err(errno)?;
        }
        Action::Shutdown(w) => {
            let c = l.ctl[*w].current.ok_or("the worker holds no listener")?;
            let fd = own(&l, c)?;
            // SAFETY: plain syscall on a socket we own.
            sys::cvt(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }).map_err(errno)?;
            l.states[c] = SockState::Shutdown;
            touch(&mut l, live, c);
        }
        Action::Close(w) | Action::Kill(w) => {
            if let Some(c) = l.ctl[*w].current.take() {
                l.ctl[*w].generation += 1;
                touch(&mut l, live, c);
                for ctl in l.ctl.iter_mut().filter(|x| x.current == Some(c)) {
                    ctl.current = None;
                }
                // The last reference: the kernel closes the listener now.
                drop(l.socks[c].take());
                l.states[c] = SockState::Closed;
            }
            if let Action::Kill(w) = a {
                l.ctl[*w].killed = true;
                l.ctl[*w].accepting = false;
                drop(l);
                wake(live, *w);
                if !worker::wait_killed(&shared, *w, Duration::from_secs(2)) {
                    return Err("the worker did not close its connections within 2 s".into());
                }
                return Ok(());
            }
            wake(live, *w);
        }
        Action::StopAccepting(w) => {
            l.ctl[*w].accepting = false;
            wake(live, *w);
        }
        Action::ResumeAccepting(w) => {
            l.ctl[*w].accepting = true;
            wake(live, *w);
        }
        Action::Handover { from, to } => {
            let Some(c) = l.ctl[*from].current.take() else {
                return Err("the giving worker holds no listener".into());
            };
            l.ctl[*from].accepting = false;
            l.ctl[*from].generation += 1;
            l.ctl[*to].current = Some(c);
            l.ctl[*to].accepting = true;
            l.ctl[*to].generation += 1;
            wake(live, *from);
            wake(live, *to);
        }
        Action::SetSysctl { host, name, value } => {
            drop(l);
            live.hosts[host.0 as usize]
                .ns
                .run_in(|| sysctl::write_sysctl(name, *value))
                .map_err(|e| e.to_string())?;
        }
        Action::AttachPolicy { policy, via } => {
            let fd = own(&l, *via)?;
            policy::attach(fd, live.policies[*policy].prog_fd()).map_err(errno)?;
        }
        Action::DetachPolicy { via } => {
            let fd = own(&l, *via)?;
            policy::detach(fd).map_err(errno)?;
        }
        Action::MapUpdate {
            policy,
            entry,
            flags,
        } => {
            drop(l);
            map_update(live, &live.policies[*policy], entry, *flags)?;
        }
        Action::MapDelete { policy, map, key } => {
            let m = live.policies[*policy]
                .object
                .map(map)
                .ok_or_else(|| format!("no map `{map}`"))?;
            let k = resolve(&l, key, m.key_size)?;
            bpf::map_delete(m.fd.as_raw_fd(), &k).map_err(errno)?;
        }
    }
    Ok(())
}

/// Writes one entry into a policy's map with `flags` (`BPF_ANY`, ...).
pub fn map_update(live: &Live, p: &LoadedPolicy, e: &MapEntry, flags: u64) -> Result<(), String> {
    let shared = live.shared.as_ref().expect("listeners");
    let l = shared.0.lock().unwrap_or_else(|p| p.into_inner());
    let m = p
        .object
        .map(&e.map)
        .ok_or_else(|| format!("no map `{}`", e.map))?;
    let k = resolve(&l, &e.key, m.key_size)?;
    let v = resolve(&l, &e.value, m.value_size)?;
    bpf::map_update_flags(m.fd.as_raw_fd(), &k, &v, flags)
        .map_err(|err| format!("map `{}`: {err}", e.map))
}

/// The bytes of a key or value of `size` bytes.
fn resolve(l: &Listeners, d: &MapDatum, size: u32) -> Result<Vec<u8>, String> {
    let size = size as usize;
    let sock = |w: usize| {
        l.socks[w]
            .as_ref()
            .map(|s| s.as_raw_fd())
            .ok_or_else(|| format!("worker #{w}'s socket is closed"))
    };
    let bytes = match d {
        MapDatum::Bytes(b) => b.clone(),
        MapDatum::U32(v) => v.to_ne_bytes().to_vec(),
        MapDatum::U64(v) => v.to_ne_bytes().to_vec(),
        MapDatum::ListenerFd(w) => {
            let fd = sock(*w)?;
            if size == 4 {
                (fd as u32).to_ne_bytes().to_vec()
            } else {
                (fd as u64).to_ne_bytes().to_vec()
            }
        }
        MapDatum::ListenerCookie(w) => sys::socket_cookie(sock(*w)?)
            .map_err(errno)?
            .to_ne_bytes()
            .to_vec(),
    };
    if bytes.len() != size {
        return Err(format!(
            "{} bytes given where the map needs {size}",
            bytes.len()
        ));
    }
    Ok(bytes)
}
