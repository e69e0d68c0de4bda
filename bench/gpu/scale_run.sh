#!/usr/bin/env bash
# The GPU machine's scale bench (one `run` call of the device tool, repo root,
# $OUT set): builds the pinned llama.cpp with CUDA and Cerebellum against it
# (cached in build-cuda/ while the machine stays warm), generates a model of
# realistic shape with random weights, and runs bench/memory_scaling.sh on
# it with every layer offloaded (peak VRAM read from nvidia-smi).
#
#   bash bench/gpu/scale_run.sh PRESET "ROWS" [MAX_VRAM]
#   bash bench/gpu/scale_run.sh --swap-check
#     the same units measured with in-place swaps (resident) and with a model
#     built and loaded fresh per unit (exact), on the GPU, fixed chunks: the
#     per-unit ΔKLD must agree (the CUDA side of InPlaceRealSwapEqualsFreshLoad)
#     PRESET    cb-gen-model preset (8b, 14b, ...)
#     ROWS      memory_scaling.sh rows to run now (the rest in a later call)
#     MAX_VRAM  --max-vram for our rows (e.g. 24GiB): the F16 reference pass
#               then offloads only the layers that fit
# Needs (carried, ignored): .device/common/{llama-src.tar.xz, deps/usr,
# cb-dense-12l-F16.gguf, docs-en-calib.txt, wiki.test.raw}. docs/gpu.md.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"; cd "$root"
OUT="${OUT:-/tmp/cb-out}"; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
PRESET="${1:-8b}"; ROWS="${2:-}"; MAX_VRAM="${3:-}"
source "$root/bench/gpu/setup_cuda.sh"  # D, B, the CUDA build in $B/cb, ../shared laid out
WORK="$B/work"; mkdir -p "$WORK"
if [ "$PRESET" = --swap-check ]; then
  M="$root/../shared/models/cb-dense-12l-F16.gguf"
  for mode in resident exact; do
    rm -f "$WORK/swap-$mode.jsonl"*
    "$B/cb/cerebellum" measure --source "$M" --base Q4_K_M --text "$root/../shared/data/docs-en-calib.txt" \
      --targets q2_K --promote q8_0 --limit 6 --min-chunks 3 --max-chunks 3 --gpu-layers 999 --mode "$mode" \
      --out "$WORK/swap-$mode.jsonl" >"$OUT/swap-$mode.log" 2>&1 || { tail -20 "$OUT/swap-$mode.log"; exit 1; }
    cp "$WORK/swap-$mode.jsonl" "$OUT/"
  done
  python3 - "$WORK/swap-resident.jsonl" "$WORK/swap-exact.jsonl" <<'PY'
import json, sys
def recs(p):
    return {(r["direction"], r["unit"]["id"]): r for r in map(json.loads, open(p)) if r.get("kind") == "measurement"}
a, b = recs(sys.argv[1]), recs(sys.argv[2])
same = 0
for k in sorted(a):
    x, y = a[k]["delta_kld"], b[k]["delta_kld"]
    se = max(a[k]["delta_kld_se"], 1e-12)
    same += x == y
    print(f"{k[0]:<8} {k[1]:<26} resident {x:+.8f}  exact {y:+.8f}  diff/se {(x - y) / se:+.3f}")
print(f"{same} of {len(a)} units bit-identical")
PY
  exit 0
fi
args=(--models "gen:$PRESET" --threads "$(nproc)" --work "$WORK" --gpu-layers 999 --out "$OUT/memory-$PRESET.json")
[ -n "$ROWS" ] && args+=(--rows "$ROWS")
[ -n "$MAX_VRAM" ] && args+=(--max-vram "$MAX_VRAM")
CB_BUILD="$B/cb" bash bench/memory_scaling.sh "${args[@]}"
cp "$WORK"/*.run/*.jsonl "$WORK"/*.run/*.json "$WORK"/*.run/*.run/*.json "$OUT/" 2>/dev/null
for f in "$WORK"/*.log; do tail -400 "$f" >"$OUT/$(basename "$f")"; done 2>/dev/null
for f in "$WORK"/vram.*; do cp "$f" "$OUT/vram-trace.$(basename "$f")"; done 2>/dev/null  # one value per 0.2 s
df -h "$root" | tail -1
