#!/usr/bin/env bash
# Fingerprints of every bundled scenario's run: for each scenario (and the
# W benchmark workloads), seeds 1-3, migration on and off, and the exact
# timer mode once: the run digest, the event count and a hash of the whole
# JSON report. A pure speed change must leave this output byte-identical:
#   tools/digests.sh > /tmp/before.txt   (old build)
#   tools/digests.sh > /tmp/after.txt    (new build); diff the two.
# Usage: [BIN=target/release/reuseport-sim] tools/digests.sh [SCENARIO...]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/reuseport-sim}
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(scenarios/*.json bench/W/W-1k.json bench/W/W-10k.json bench/W/W-50k.json)
fingerprint() {
  local out
  out=$("$BIN" run "$@" --format json)
  printf '%s %s %s\n' \
    "$(printf '%s' "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["digest"], r["events"])')" \
    "$(printf '%s' "$out" | sha256sum | cut -c1-16)" "$*"
}
for f in "${files[@]}"; do
  for seed in 1 2 3; do
    for m in on off; do
      fingerprint "$f" --seed "$seed" --migrate "$m"
    done
  done
  fingerprint "$f" --seed 1 --timers exact
done
