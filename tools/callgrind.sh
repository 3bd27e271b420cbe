#!/usr/bin/env bash
# Instruction count (valgrind --tool=callgrind) of one run of a scenario:
# deterministic, so it is the A/B measure on a shared, noisy machine.
# Usage: tools/callgrind.sh BIN SCENARIO.json [OUT.callgrind] [run options...]
# Prints "<instructions> <scenario>"; keeps the profile in OUT (or a temp file)
# for callgrind_annotate.
set -euo pipefail
bin=$1; scn=$2; out=${3:-$(mktemp /tmp/callgrind.XXXXXX)}; shift $(( $# < 3 ? $# : 3 ))
valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" run "$scn" --format json "$@" \
  >/dev/null 2>"$out.log"
ir=$(grep -m1 '^summary:\|^totals:' "$out" | awk '{print $2}')
echo "$ir $scn"
