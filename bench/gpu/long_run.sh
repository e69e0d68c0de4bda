#!/usr/bin/env bash
# A command longer than one call of the device tool (10 minutes), run across
# back-to-back calls while the machine stays warm: `start` launches it in the
# background and waits; each `wait` waits again. Both return before the call's
# limit, printing the log's tail, and once the command has ended its exit
# status and log land in $OUT. (A machine left idle is given back, and the
# command with it: issue the next call at once.)
#
#   bash bench/gpu/long_run.sh start NAME [SECONDS] -- CMD...
#   bash bench/gpu/long_run.sh wait NAME [SECONDS]
# SECONDS: how long this call waits (default 540). State: build-cuda/long/NAME.*
#
# Example, the ~24B quantize row of bench/memory_scaling.sh on GPU 0 (docs/gpu.md):
#   call 1: CUDA_VISIBLE_DEVICES=0 bash bench/gpu/long_run.sh start q24 -- \
#             bash bench/gpu/scale_run.sh 24b "reference measure quantize" 24GiB
#   call 2, 3, ...: bash bench/gpu/long_run.sh wait q24
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"; cd "$root"
OUT="${OUT:-/tmp/cb-out}"; mkdir -p "$OUT"
[ $# -ge 2 ] || { echo "usage: long_run.sh start NAME [SECONDS] -- CMD... | wait NAME [SECONDS]" >&2; exit 2; }
verb="$1"; name="$2"; shift 2
wait_s=540
if [ $# -gt 0 ] && [ "$1" != -- ]; then wait_s="$1"; shift; fi
S="$root/build-cuda/long"; mkdir -p "$S"
case "$verb" in
  start)
    [ "${1:-}" = -- ] && shift
    [ $# -gt 0 ] || { echo "long_run.sh start: no command" >&2; exit 2; }
    rm -rf "$S/$name".*
    date +%s >"$S/$name.t0"
    # setsid: its own session, so the call's end does not take it down.
    OUT="$S/$name.out" setsid bash -c 'mkdir -p "$OUT"; "$@"; echo $? >"'"$S/$name.rc"'"' _ "$@" \
      >"$S/$name.log" 2>&1 </dev/null &
    echo $! >"$S/$name.pid" ;;
  wait) [ -f "$S/$name.pid" ] || { echo "long_run.sh: no run named $name" >&2; exit 2; } ;;
  *) echo "long_run.sh: unknown verb $verb" >&2; exit 2 ;;
esac
end=$(( $(date +%s) + wait_s ))
while [ ! -f "$S/$name.rc" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
elapsed=$(( $(date +%s) - $(cat "$S/$name.t0") ))
grep -v '"progress"' "$S/$name.log" | tail -25
grep '"progress"' "$S/$name.log" | tail -1  # where a long stage is
if [ -f "$S/$name.rc" ]; then
  echo "== $name ended: exit $(cat "$S/$name.rc") after ${elapsed} s"
  cp "$S/$name.log" "$OUT/$name.log"
  cp "$S/$name.out"/* "$OUT/" 2>/dev/null
  exit 0
fi
echo "== $name still running after ${elapsed} s: call 'bash bench/gpu/long_run.sh wait $name' now"
