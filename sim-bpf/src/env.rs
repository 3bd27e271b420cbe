//! What the host (the simulator, a test) provides to programs and to the
//! user-space map API: socket facts, time, randomness and a trace sink.

use crate::ctx::{SockHandle, SockInfo};
use std::collections::BTreeMap;

/// Socket facts, for `struct bpf_sock`, `bpf_sk_select_reuseport`'s group
/// checks and the socket maps' update checks.
pub trait Sockets {
    /// The socket behind a handle, or `None` if the handle is unknown (a
    /// bad fd: `EBADF` for user space).
    fn sock(&self, h: SockHandle) -> Option<SockInfo>;

    /// The socket cookie (`__sock_gen_cookie`): a non-zero `u64`, stable
    /// for the socket's life. The kernel assigns it lazily from a global
    /// counter at first use; [`CookieJar`] does the same.
    fn socket_cookie(&mut self, h: SockHandle) -> u64;
}

/// Everything a running program can reach outside its maps.
pub trait Env: Sockets {
    /// `bpf_ktime_get_ns` (and `bpf_ktime_get_boot_ns`): the virtual clock
    /// in nanoseconds.
    fn ktime_ns(&mut self) -> u64;

    /// `bpf_ktime_get_coarse_ns` (`ktime_get_coarse_ns`: the time of the
    /// last tick). The default is the precise clock.
    fn ktime_coarse_ns(&mut self) -> u64 {
        self.ktime_ns()
    }

    /// `bpf_get_prandom_u32`: the next value of the run's seeded stream.
    fn prandom_u32(&mut self) -> u32;

    /// `bpf_trace_printk`: one formatted line from program `program`.
    fn trace_printk(&mut self, program: &str, line: &str);
}

/// Lazily assigned socket cookies, from 1 upwards in order of first use,
/// like `gen_cookie_next` in `sock_gen_cookie`.
#[derive(Clone, Debug, Default)]
pub struct CookieJar {
    cookies: BTreeMap<SockHandle, u64>,
    next: u64,
}

impl CookieJar {
    /// The cookie of `h`, assigning the next one at first use.
    pub fn cookie(&mut self, h: SockHandle) -> u64 {
        let next = &mut self.next;
        *self.cookies.entry(h).or_insert_with(|| {
            *next += 1;
            *next
        })
    }
}

/// A simple [`Env`] for tests, benchmarks and tools: a table of sockets, a
/// settable clock, a SplitMix64 random stream and a collected trace.
#[derive(Clone, Debug, Default)]
pub struct StaticEnv {
    /// Sockets by handle.
    pub socks: BTreeMap<SockHandle, SockInfo>,
    /// Cookies.
    pub cookies: CookieJar,
    /// `bpf_ktime_get_ns`.
    pub now_ns: u64,
    /// Random stream state.
    pub rng_state: u64,
    /// Lines written by `bpf_trace_printk`, with the program name.
    pub trace: Vec<(String, String)>,
}

impl Sockets for StaticEnv {
    fn sock(&self, h: SockHandle) -> Option<SockInfo> {
        self.socks.get(&h).copied()
    }

    fn socket_cookie(&mut self, h: SockHandle) -> u64 {
        self.cookies.cookie(h)
    }
}

impl Env for StaticEnv {
    fn ktime_ns(&mut self) -> u64 {
        self.now_ns
    }

    fn prandom_u32(&mut self) -> u32 {
        // SplitMix64.
        self.rng_state = self.rng_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }

    fn trace_printk(&mut self, program: &str, line: &str) {
        self.trace.push((program.to_string(), line.to_string()));
    }
}
