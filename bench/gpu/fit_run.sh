#!/usr/bin/env bash
# The GPU machine's deployment-budget bench (issue 17; one `run` call of the
# device tool, repo root, $OUT set): builds Cerebellum with CUDA (cached in
# build-cuda/ while the machine stays warm), generates the 8B-shaped model
# (random weights: memory only), then bench/fit_vram.sh for each --fit spec.
#
#   bash bench/gpu/fit_run.sh [PRESET] [SPEC ...]     (default: 8b 8GiB@8192)
# CARD=1: also render each run's card on the GPU (pp/tg of ours next to the
# stock mix, with the deployment's -ngl; memory at 8K and 16K).
# Needs (carried, ignored): .device/common/{llama-src.tar.xz, deps/usr,
# cb-dense-12l-F16.gguf, docs-en-calib.txt, wiki.test.raw}. docs/gpu.md.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"; cd "$root"
OUT="${OUT:-/tmp/cb-out}"; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
PRESET="${1:-8b}"; shift || true
specs=("$@"); [ ${#specs[@]} -gt 0 ] || specs=("8GiB@8192")
T0=$(date +%s)
source "$root/bench/gpu/setup_cuda.sh"  # D, B, the CUDA build in $B/cb, ../shared laid out
echo "setup: $(( $(date +%s) - T0 )) s"
WORK="$B/work"; mkdir -p "$WORK"
M="$WORK/gen-$PRESET-F16.gguf"
if [ ! -f "$M" ]; then
  t=$(date +%s)
  "$B/cb/cb-gen-model" --preset "$PRESET" --vocab-from "$root/../shared/models/cb-dense-12l-F16.gguf" --out "$M" || exit 1
  echo "generated $M in $(( $(date +%s) - t )) s"
fi
LLAMA_PREFIX=$(ls -d "$CEREBELLUM_CACHE"/llama.cpp-*-cuda-90-* | head -1)
for spec in "${specs[@]}"; do
  tag="$PRESET-$(echo "$spec" | tr -c 'A-Za-z0-9' '-' | sed 's/-*$//')"
  t=$(date +%s)
  bash bench/fit_vram.sh --model "$M" --fit "$spec" --no-measure --cb "$B/cb/cerebellum" \
    --llama-bin "$LLAMA_PREFIX/bin" --work "$WORK/fit" --tag "$tag" \
    --text "$root/../shared/data/docs-en-calib.txt" --eval-text "$root/../shared/data/wikitext-2-raw/wiki.test.raw"
  echo "$spec: $(( $(date +%s) - t )) s"
  cp "$WORK/fit/fit_vram-$tag.json" "$OUT/" 2>/dev/null
  for f in quantize.log ours.ppl.log stock.ppl.log; do cp "$WORK/fit/$tag/$f" "$OUT/$tag.$f" 2>/dev/null; done
  cp "$WORK/fit/$tag/run/fit.json" "$OUT/$tag.fit.json" 2>/dev/null
  if [ "${CARD:-0}" = 1 ] && [ -f "$WORK/fit/$tag/run/fit.json" ]; then
    ngl=$(python3 -c "import json; n = json.load(open('$WORK/fit/$tag/run/fit.json'))['projection']['n_gpu_layers']; print(999 if n < 0 else n)")
    t=$(date +%s)
    "$B/cb/cerebellum" card --run "$WORK/fit/$tag/run" --out "$OUT/$tag.CARD.md" --gpu-layers "$ngl" \
      --threads "$(nproc)" --reps 3 --memory-ctx 8192 16384 --no-bundle 2>&1 | grep -v '^{'
    echo "card: $(( $(date +%s) - t )) s"
  fi
done
echo "total $(( $(date +%s) - T0 )) s"
