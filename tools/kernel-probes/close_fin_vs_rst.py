#!/usr/bin/env python3
"""What the client sees when the server application closes an accepted socket.

Spec §5.10 (FIN if the receive queue is empty, RST + TCPAbortOnClose if data
is unread) and §5.7 (children still in the accept queue when the listener
closes get a RST).  Kernel: __tcp_close() (net/ipv4/tcp.c: unread data ->
TCPAbortOnClose + tcp_send_active_reset(), else tcp_close_state() +
tcp_send_fin()), tcp_rcv_state_process() (data after our close ->
TCPAbortOnData + reset), inet_csk_listen_stop() -> inet_child_forget() ->
tcp_disconnect().

Setup: client and server namespaces joined by a logging TUN relay (nothing
dropped).  Each case uses a fresh pair.  The server "worker" is a forked
child process that inherits the listener, accept()s and then exits
(os._exit, so the kernel closes its fds):
  a  worker reads the 100-byte request, then exits
  a2 as a, then the client sends a second request on the same connection
  b  worker exits without reading the request
  c  listener closed (last reference) with the connection still in the
     accept queue (request sent, never accepted)
  d  as c, but the client sent no data
Printed: server segments after the request (FIN/RST), what the client's
recv() returns, and the server's counter deltas.

Usage: sudo python3 tools/kernel-probes/close_fin_vs_rst.py [--runs N]
"""
import errno
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probelib as P  # noqa: E402

COUNTERS = ["TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnData", "TcpOutRsts",
            "TcpExtTCPAbortOnLinger", "TcpEstabResets"]


def client_view(k, timeout=2.0):
    k.settimeout(timeout)
    try:
        d = k.recv(100)
        return "EOF (recv returned b'')" if d == b"" else f"data {d!r}"
    except ConnectionResetError:
        return "ECONNRESET"
    except socket.timeout:
        return "nothing (timeout)"


def run_case(lab, relay_links, tag, kind):
    c = lab.netns(f"cl{tag}c")
    s = lab.netns(f"cl{tag}s")
    fc, fs = P.tun_pair(lab, c, s)
    relay = P.Relay({fc: fs, fs: fc})
    relay.start()
    lsock = s.socket()
    lsock.bind(("10.0.0.2", 80))
    lsock.listen(8)
    before = s.counters()
    k = c.socket()
    k.connect(("10.0.0.2", 80))
    res = {"kind": kind}
    if kind in ("a", "a2", "b"):
        pid = os.fork()
        if pid == 0:
            try:
                conn, _ = lsock.accept()
                if kind in ("a", "a2"):
                    got = b""
                    while len(got) < 100:
                        got += conn.recv(100 - len(got))
                else:
                    time.sleep(0.3)   # request arrives, stays unread
            finally:
                os._exit(0)
        k.sendall(b"q" * 100)
        os.waitpid(pid, 0)
        t_exit = time.monotonic_ns()
        res["client"] = client_view(k)
        if kind == "a2":
            try:
                k.sendall(b"second request")
            except OSError as e:
                res["client_send2"] = f"send error {e.errno}"
            res["client2"] = client_view(k)
            time.sleep(0.2)
            try:
                k.send(b"third")
                res["client3"] = "third send() succeeded"
            except OSError as e:
                res["client3"] = f"third send() fails with {errno.errorcode.get(e.errno, e.errno)}"
        lsock.close()
    else:
        if kind == "c":
            k.sendall(b"q" * 100)
        time.sleep(0.3)
        t_exit = time.monotonic_ns()
        lsock.close()
        res["client"] = client_view(k)
    time.sleep(0.3)
    relay.stop()
    res["server_segs"] = [f"{(t - t_exit) / 1e6:+.1f} ms [{p.fl}]{' len=' + str(p.plen) if p.plen else ''}"
                          for (t, fd, p, v) in relay.log if fd == fs and t >= t_exit - 400_000_000
                          and (p.flags & 0x05 or p.plen)]
    res["client_segs"] = [f"[{p.fl}]{' len=' + str(p.plen) if p.plen else ''}"
                          for (t, fd, p, v) in relay.log if fd == fc and (p.plen or p.flags & 0x05)]
    res["counters"] = P.counter_delta(before, s.counters(), COUNTERS)
    k.close()
    return res


def main():
    runs = 2
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    P.out(P.header("close_fin_vs_rst"))
    desc = {
        "a": "worker read the request, then exited",
        "a2": "worker read the request and exited; client then sent a 2nd request",
        "b": "worker exited with the request unread",
        "c": "listener closed with the connection (request sent) still in the accept queue",
        "d": "listener closed with the connection (no data) still in the accept queue",
    }
    results = []
    with P.Lab() as lab:
        i = 0
        for kind in ("a", "a2", "b", "c", "d"):
            for r in range(runs):
                results.append(run_case(lab, None, i, kind))
                i += 1
    summary = {}
    for res in results:
        P.out("")
        P.out(f"== case {res['kind']}: {desc[res['kind']]}")
        P.out(f"   client sent:   {' '.join(res['client_segs'])}")
        P.out(f"   server sent (FIN/RST/data, relative to the exit/close): {', '.join(res['server_segs']) or 'nothing'}")
        P.out(f"   client recv(): {res['client']}" +
              (f"; second request: {res.get('client_send2', 'sent')}, then recv(): {res['client2']}; "
               f"{res['client3']}"
               if res["kind"] == "a2" else ""))
        P.out(f"   server counters: {res['counters']}")
        flags = sorted({s.split('[')[1].split(']')[0] for s in res["server_segs"]})
        summary.setdefault(res["kind"], []).append(
            (tuple(flags), res["client"], res.get("client3"), tuple(sorted(res["counters"].items()))))
    P.out("")
    P.out("== summary")
    for kind, rows in summary.items():
        same = len(set(rows)) == 1
        fl, cv, c2, cn = rows[0]
        P.out(f"  {kind}: server flags {list(fl)}; client {cv}" + (f" / 2nd request -> {c2}" if c2 else "") +
              f"; counters {dict(cn)}; {'identical in all runs' if same else 'RUNS DIFFER'}")


if __name__ == "__main__":
    main()
