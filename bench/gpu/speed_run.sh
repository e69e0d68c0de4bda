#!/usr/bin/env bash
# The GPU machine's decode-speed bench (issue 17 item 4; one `run` call of the
# device tool, repo root, $OUT set): the speed table and --min-decode-speed
# where decode is weight-bandwidth-bound, a generated 8B-shaped model (random
# weights: speed only, its KLD means nothing and is not taken) with every layer
# on the GPU. bench/speed_floor.sh with --gpu-layers 999, the bpw proxy
# (--quant-error none) and the k-quants from q3_K up as candidates.
#
#   bash bench/gpu/speed_run.sh [PRESET]      (default 8b)
# Needs what bench/gpu/setup_cuda.sh needs. docs/gpu.md.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"; cd "$root"
OUT="${OUT:-/tmp/cb-out}"; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
PRESET="${1:-8b}"
T0=$(date +%s)
source "$root/bench/gpu/setup_cuda.sh"
echo "setup: $(( $(date +%s) - T0 )) s"
WORK="$B/work"; mkdir -p "$WORK"
M="$WORK/gen-$PRESET-F16.gguf"
if [ ! -f "$M" ]; then
  "$B/cb/cb-gen-model" --preset "$PRESET" --vocab-from "$root/../shared/models/cb-dense-12l-F16.gguf" --out "$M" || exit 1
fi
echo '{"schema":"cerebellum.constraints/1","allowed_types":["q3_K","q4_K","q5_K","q6_K","q8_0"]}' >"$WORK/speed-constraints.json"
bash bench/speed_floor.sh --model "$M" --proxy --quant-error none --constraints "$WORK/speed-constraints.json" \
  --gpu-layers 999 --threads "$(nproc)" --reps 5 --no-kld --cb "$B/cb/cerebellum" --work "$WORK/speed-$PRESET"
cp "$WORK/speed-$PRESET/speed_floor.json" "$OUT/speed_floor_gpu_$PRESET.json" 2>/dev/null
cp "$WORK/speed-$PRESET"/*.allocate.log "$OUT/" 2>/dev/null
cp "$CEREBELLUM_CACHE"/speed/*.json "$OUT/" 2>/dev/null
echo "total $(( $(date +%s) - T0 )) s"
