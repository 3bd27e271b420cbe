"""Shared helpers for the kernel probes (Python 3.11 standard library only).

Every probe builds its own network namespaces (prefix ``probe-``), removes
them in ``finally`` and sweeps leftovers of earlier runs at start.  Packets
between namespaces go through TUN devices read and written by a relay thread
in the probe process (``Relay``), so a probe can drop, delay and timestamp
individual segments without netem or iptables.

Times are ``time.monotonic_ns()`` (CLOCK_MONOTONIC, the clock the kernel's
``ktime_get()`` reads).  ``JiffyClock`` maps them to jiffies using
/proc/timer_list, and ``wheel_bucket`` is the timer-wheel rounding of
kernel/time/timer.c (``calc_wheel_index``/``calc_index``), so a probe can
compare each measured instant with the exact tick the wheel model predicts.
"""
import contextlib
import ctypes
import datetime
import fcntl
import gzip
import heapq
import os
import platform
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

PREFIX = "probe-"
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

_libc = ctypes.CDLL(None, use_errno=True)


# --------------------------------------------------------------------------
# processes, namespaces, sysctls, counters
# --------------------------------------------------------------------------

def sh(*args, check=True):
    """Run a command, return its stdout (text)."""
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: rc={r.returncode}: {r.stderr.strip()}")
    return r.stdout


def sweep():
    """Delete namespaces left over by an earlier (killed) probe run.

    Names are ``probe-<pid>-<tag>``; those of a probe still running (its pid
    alive) are left alone, so probes can run side by side."""
    for line in sh("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        m = re.match(PREFIX + r"(\d+)-", name)
        if m and os.path.exists(f"/proc/{m.group(1)}") and int(m.group(1)) != os.getpid():
            try:
                with open(f"/proc/{m.group(1)}/cmdline", "rb") as f:
                    if b"python" in f.read():
                        continue
            except OSError:
                pass
        sh("ip", "netns", "del", name, check=False)


def setns_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({path}): {os.strerror(e)}")
    finally:
        os.close(fd)


class Netns:
    """One network namespace /run/netns/<name>."""

    def __init__(self, name):
        self.name = f"{PREFIX}{os.getpid()}-{name}"
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")

    def delete(self):
        sh("ip", "netns", "del", self.name, check=False)

    @contextlib.contextmanager
    def entered(self):
        """Run the body with the calling thread inside this namespace.

        Sockets and TUN devices created in the body belong to it for life."""
        orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            setns_path(f"/run/netns/{self.name}")
            yield self
        finally:
            if _libc.setns(orig, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
            os.close(orig)

    def socket(self, *args, **kw):
        with self.entered():
            return socket.socket(*args, **kw)

    def ip(self, *args):
        return sh("ip", "-n", self.name, *args)

    def exec(self, *args, check=True):
        return sh("ip", "netns", "exec", self.name, *args, check=check)

    def sysctl(self, key, value):
        self.exec("sysctl", "-qw", f"{key}={value}")

    def get_sysctl(self, key):
        return self.exec("sysctl", "-n", key).strip()

    def counters(self):
        """All counters of /proc/net/netstat and /proc/net/snmp, e.g.
        ``TcpExtTCPAbortOnClose``, ``TcpRetransSegs``."""
        out = {}
        for f in ("/proc/net/netstat", "/proc/net/snmp"):
            lines = self.exec("cat", f).splitlines()
            for hdr, val in zip(lines[0::2], lines[1::2]):
                hk, hv = hdr.split(":", 1)
                vk, vv = val.split(":", 1)
                for k, v in zip(hv.split(), vv.split()):
                    try:
                        out[hk + k] = int(v)
                    except ValueError:
                        pass
        return out


def counter_delta(before, after, names=None):
    keys = names if names is not None else sorted(after)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys
            if names is not None or after.get(k, 0) != before.get(k, 0)}


class Lab:
    """Context manager owning namespaces (and fds) of one probe run.

    Sweeps ``probe-*`` leftovers at start; deletes everything it created at
    exit, also on an exception, Ctrl-C or SIGTERM."""

    def __init__(self):
        self.nss = []
        self.fds = []

    def __enter__(self):
        if os.geteuid() != 0:
            sys.exit("this probe needs root (network namespaces, TUN): run it with sudo")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit("SIGTERM"))
        sweep()
        return self

    def netns(self, name):
        ns = Netns(name)
        self.nss.append(ns)
        return ns

    def __exit__(self, *exc):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        for ns in self.nss:
            ns.delete()
        return False


# --------------------------------------------------------------------------
# TUN devices and the relay
# --------------------------------------------------------------------------

def open_tun(lab, ns, ifname, addr, peer, mtu=1500):
    """A TUN device (IFF_TUN|IFF_NO_PI) in ``ns`` with a point-to-point
    address; returns its fd (raw IPv4 packets)."""
    with ns.entered():
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", ifname.encode(), IFF_TUN | IFF_NO_PI))
    lab.fds.append(fd)
    os.set_blocking(fd, False)
    ns.ip("addr", "add", addr, "peer", peer, "dev", ifname)
    ns.ip("link", "set", ifname, "mtu", str(mtu), "up")
    return fd


FLAG_NAMES = [(0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "A"), (0x20, "U")]


class Pkt:
    """A parsed IPv4 packet (TCP fields when it is TCP)."""
    __slots__ = ("raw", "src", "dst", "proto", "sport", "dport", "seq", "ack",
                 "flags", "win", "plen", "tsval", "tsecr", "has_fo")

    def __init__(self, raw):
        self.raw = raw
        ihl = (raw[0] & 0x0F) * 4
        self.proto = raw[9]
        self.src = socket.inet_ntoa(raw[12:16])
        self.dst = socket.inet_ntoa(raw[16:20])
        total = struct.unpack("!H", raw[2:4])[0]
        self.sport = self.dport = self.seq = self.ack = self.flags = self.win = 0
        self.plen = 0
        self.tsval = self.tsecr = None
        self.has_fo = False
        if self.proto != 6 or len(raw) < ihl + 20:
            return
        t = raw[ihl:]
        (self.sport, self.dport, self.seq, self.ack, off, self.flags,
         self.win) = struct.unpack("!HHIIBBH", t[:16])
        doff = (off >> 4) * 4
        self.plen = total - ihl - doff
        opts = t[20:doff]
        i = 0
        while i < len(opts):
            kind = opts[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= len(opts):
                break
            ln = opts[i + 1]
            if ln < 2:
                break
            if kind == 8 and ln == 10:
                self.tsval, self.tsecr = struct.unpack("!II", opts[i + 2:i + 10])
            if kind == 34:
                self.has_fo = True
            i += ln

    @property
    def fl(self):
        return "".join(n for b, n in FLAG_NAMES if self.flags & b)

    def is_syn(self):
        return self.flags & 0x12 == 0x02

    def is_synack(self):
        return self.flags & 0x12 == 0x12

    def is_pure_ack(self):
        return self.flags & 0x17 == 0x10 and self.plen == 0

    def is_rst(self):
        return bool(self.flags & 0x04)

    def __str__(self):
        s = f"{self.src}:{self.sport} > {self.dst}:{self.dport} [{self.fl}] seq={self.seq}"
        if self.flags & 0x10:
            s += f" ack={self.ack}"
        if self.plen:
            s += f" len={self.plen}"
        return s


class Relay(threading.Thread):
    """Moves packets between TUN fds in user space.

    ``links`` maps an fd to the fd its packets go to (or None: a sink).
    ``rule(src_fd, pkt, t_ns)`` returns None to drop the packet or a delay in
    seconds (0 = forward now).  Every packet read is logged as
    (t_ns, src_fd, Pkt, verdict) in ``self.log``."""

    def __init__(self, links, rule=None):
        super().__init__(daemon=True)
        self.links = dict(links)
        self.rule = rule or (lambda fd, p, t: 0)
        self.log = []
        self.lock = threading.Lock()
        self.stopping = False
        self.heap = []
        self.n = 0
        self.listeners = []

    def stop(self):
        self.stopping = True
        self.join(2)

    def packets(self, pred=lambda e: True):
        with self.lock:
            return [e for e in self.log if pred(e)]

    def run(self):
        fds = list(self.links)
        while not self.stopping:
            now = time.monotonic_ns()
            while self.heap and self.heap[0][0] <= now:
                _, _, fd, raw = heapq.heappop(self.heap)
                try:
                    os.write(fd, raw)
                except OSError:
                    pass
            timeout = 0.05
            if self.heap:
                timeout = max(0.0, min(timeout, (self.heap[0][0] - now) / 1e9))
            r, _, _ = select.select(fds, [], [], timeout)
            for fd in r:
                while True:
                    try:
                        raw = os.read(fd, 65536)
                    except (BlockingIOError, OSError):
                        break
                    t = time.monotonic_ns()
                    p = Pkt(raw)
                    dst = self.links.get(fd)
                    verdict = self.rule(fd, p, t) if dst is not None else None
                    with self.lock:
                        self.log.append((t, fd, p, verdict))
                    if verdict is None:
                        continue
                    if verdict <= 0:
                        try:
                            os.write(dst, raw)
                        except OSError:
                            pass
                    else:
                        self.n += 1
                        heapq.heappush(self.heap, (t + int(verdict * 1e9), self.n, dst, raw))


def tun_pair(lab, ns_a, ns_b, addr_a="10.0.0.1", addr_b="10.0.0.2", name_a="ptun0", name_b="ptun0"):
    """Two namespaces joined by TUN devices (relay not started)."""
    fa = open_tun(lab, ns_a, name_a, addr_a, addr_b)
    fb = open_tun(lab, ns_b, name_b, addr_b, addr_a)
    return fa, fb


# --------------------------------------------------------------------------
# jiffies and the timer wheel
# --------------------------------------------------------------------------

def config_hz():
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            m = re.search(r"^CONFIG_HZ=(\d+)$", f.read(), re.M)
            if m:
                return int(m.group(1))
    except OSError:
        pass
    return None


class JiffyClock:
    """Maps CLOCK_MONOTONIC to jiffies.

    /proc/timer_list prints ``now at <ktime_get ns>`` and ``jiffies: <n>``;
    jiffies advance on tick boundaries a fixed phase apart (tick_do_update_jiffies64
    moves ``last_jiffies_update`` in whole TICK_NSEC steps), so a few hundred
    samples pin the phase to some microseconds."""

    def __init__(self, samples=300):
        self.hz = config_hz()
        if self.hz is None:
            raise RuntimeError("CONFIG_HZ unknown (/proc/config.gz missing)")
        self.tick = 1_000_000_000 // self.hz
        # A sample (now, j) means jiffies had reached j by `now` (jiffies is
        # printed after `now`, so a delayed read can only make j too high):
        # the boundary of jiffy j+1 lies after `now`.  The latest such lower
        # bound is robust to delayed reads; it approaches the instant jiffies
        # really increments (tick_do_update_jiffies64) from below.
        lows, highs, k = [], [], None
        for _ in range(samples):
            s = open("/proc/timer_list").read()
            now = int(re.search(r"now at (\d+) nsecs", s).group(1))
            j = int(re.search(r"\njiffies: (\d+)", s).group(1))
            if k is None:
                k = j
            lows.append(now - (j - k + 1) * self.tick)
            highs.append(now - (j - k) * self.tick)
            time.sleep(0.0007)
        self.k = k
        self.off = max(lows)
        # samples contradicting the estimate (read delayed across a tick)
        self.conflicts = sum(1 for h in highs if h < self.off)
        self.uncertainty_ns = min(h for h in highs if h >= self.off) - self.off

    def jiffy_at(self, t_ns):
        return self.k + (t_ns - self.off) // self.tick

    def time_of(self, j):
        return self.off + (j - self.k) * self.tick


LVL_CLK_SHIFT = 3
LVL_BITS = 6
LVL_SIZE = 1 << LVL_BITS


def lvl_start(n):
    return (LVL_SIZE - 1) << ((n - 1) * LVL_CLK_SHIFT)


def wheel_level(delta, hz=250):
    depth = 9 if hz > 100 else 8
    for lvl in range(depth - 1):
        if delta < lvl_start(lvl + 1):
            return lvl
    return depth - 1


def wheel_bucket(expires, clk, hz=250):
    """Jiffy at which a timer with ``expires`` armed when base->clk == ``clk``
    fires (calc_wheel_index + calc_index, kernel/time/timer.c)."""
    delta = expires - clk
    if delta < 0:
        return clk
    lvl = wheel_level(delta, hz)
    sh_ = lvl * LVL_CLK_SHIFT
    return ((expires >> sh_) + 1) << sh_


def predict_fire(jc, arm_t_ns, timeout_jiffies, in_timer_callback):
    """Time (ns) at which the wheel fires a timer armed at ``arm_t_ns`` with
    ``jiffies + timeout_jiffies``.  In a timer callback base->clk is one ahead
    of the expired bucket (__run_timers); elsewhere forward_timer_base() has
    brought it to jiffies."""
    ja = jc.jiffy_at(arm_t_ns)
    clk = ja + 1 if in_timer_callback else ja
    b = wheel_bucket(ja + timeout_jiffies, clk, jc.hz)
    return jc.time_of(b), b


# --------------------------------------------------------------------------
# TCP_INFO and reporting
# --------------------------------------------------------------------------

def tcp_info(s):
    """A few tcp_info fields (include/uapi/linux/tcp.h); times in us."""
    b = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    u8 = struct.unpack_from("8B", b, 0)
    u32 = struct.unpack_from("24I", b, 8)
    return {
        "state": u8[0], "retransmits": u8[2], "probes": u8[3], "backoff": u8[4],
        "options": u8[5], "rto": u32[0], "ato": u32[1], "unacked": u32[4],
        "lost": u32[6], "retrans": u32[7], "rtt": u32[15], "rttvar": u32[16],
        "snd_cwnd": u32[18], "total_retrans": u32[23],
    }


def mmm(xs, fmt="{:.3f}"):
    xs = list(xs)
    if not xs:
        return "n/a"
    return "min " + fmt.format(min(xs)) + " / med " + fmt.format(statistics.median(xs)) + \
        " / max " + fmt.format(max(xs))


def header(probe, argv=None):
    hz = config_hz()
    lines = [
        f"probe: {probe}",
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"uname -r: {platform.release()}",
        f"HZ: {hz} (CONFIG_HZ from /proc/config.gz)",
        f"cpus: {os.cpu_count()}   python: {platform.python_version()}",
        f"command: sudo python3 tools/kernel-probes/{probe}.py {' '.join(argv or sys.argv[1:])}".rstrip(),
        "load: " + open("/proc/loadavg").read().strip(),
        "",
    ]
    return "\n".join(lines)


def out(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------
# /proc/net/tcp inside a namespace
# --------------------------------------------------------------------------

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1",
              5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT",
              9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


def _addr(h):
    ip, port = h.split(":")
    return socket.inet_ntoa(struct.pack("<I", int(ip, 16))) + ":" + str(int(port, 16))


def proc_tcp(ns):
    """Rows of /proc/net/tcp read inside ``ns`` (request sockets appear as
    SYN_RECV with their timer and ``retrnsmt`` = req->num_timeout,
    get_openreq4(); TIME_WAIT sockets as TIME_WAIT, get_timewait4_sock())."""
    with ns.entered():
        with open("/proc/thread-self/net/tcp") as f:
            text = f.read()
    rows = []
    for line in text.splitlines()[1:]:
        f = line.split()
        tr, when = f[5].split(":")
        rows.append({"local": _addr(f[1]), "remote": _addr(f[2]),
                     "state": TCP_STATES.get(int(f[3], 16), f[3]),
                     "timer": int(tr, 16), "when_ticks": int(when, 16),
                     "retrnsmt": int(f[6], 16), "inode": int(f[9])})
    return rows


# --------------------------------------------------------------------------
# crafting segments (to inject into a TUN as if from the peer)
# --------------------------------------------------------------------------

def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def build_tcp(src, dst, sport, dport, seq, ack=0, flags="S", win=64240, options=b"", payload=b""):
    """A complete IPv4+TCP packet with valid checksums.  ``flags`` uses the
    letters F S R P A U."""
    fl = sum(b for b, n in FLAG_NAMES if n in flags)
    while len(options) % 4:
        options += b"\x01"
    doff = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      doff << 4, fl, win, 0, 0) + options + payload
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    pseudo = s + d + struct.pack("!BBH", 0, 6, len(tcp))
    c = _csum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    total = 20 + len(tcp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0x1234, 0x4000, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ip + tcp


def opt_mss(mss=1460):
    return struct.pack("!BBH", 2, 4, mss)


def opt_ts(tsval, tsecr=0):
    return struct.pack("!BBBBII", 1, 1, 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF)
