#!/usr/bin/env bash
# Measures what a SK_REUSEPORT program sees in the running kernel, on the
# listener-selection and close-migration paths, IPv4 and IPv6, in a fresh
# network namespace. Needs root, clang, gcc and libbpf-dev. Not run by CI;
# results: docs/linux-semantics/sk-reuseport-program-context.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"; ip netns del simbpfprobe 2>/dev/null || true' EXIT
triple="$(gcc -dumpmachine)"
cp "$here/../fixtures/ctx_probe.o" "$tmp/ctx_probe.bpf.o"  # built by fixtures/build.sh
gcc -O2 -Wall -o "$tmp/ctx_probe" "$here/ctx_probe_user.c" -lbpf -lelf -lz
uname -r
ip netns add simbpfprobe
ip netns exec simbpfprobe ip link set lo up
echo "== IPv4"; ip netns exec simbpfprobe "$tmp/ctx_probe" "$tmp/ctx_probe.bpf.o"
echo "== IPv6"; ip netns exec simbpfprobe "$tmp/ctx_probe" "$tmp/ctx_probe.bpf.o" 6
