#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: an end-to-end quantization
# of MODEL (default: the shared cb-dense-12l-F16) to the byte size of its stock
# Q4_K_M mix. Outputs go to OUT (default: out/). Extra arguments go to setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="$(cd .. && pwd)/shared"
MODEL="${MODEL:-$SHARED/models/cb-dense-12l-F16.gguf}"
CALIB="${CALIB:-$SHARED/data/docs-en-calib.txt}"
EVAL_TEXT="${EVAL_TEXT:-$SHARED/data/wikitext-2-raw/wiki.test.raw}"
CODE_TEXT="${CODE_TEXT:-$SHARED/data/docs-code-calib.txt}"
BUDGET="${BUDGET:-Q4_K_M}"
OUT="${OUT:-out}"
bash scripts/setup.sh "$@"
mkdir -p "$OUT"
name=$(basename "$MODEL" .gguf)
# The gate's second held-out domain: the second half of the code text, cut at
# the first newline from its middle byte (where bench's code-identifiers cuts;
# never calibrated on).
size=$(stat -c %s "$CODE_TEXT")
tail -c +$((size / 2 + 1)) "$CODE_TEXT" | tail -n +2 >"$OUT/code-heldout.txt"
./build/cerebellum quantize --source "$MODEL" --budget "$BUDGET" --text "$CALIB" \
  --eval-text "$EVAL_TEXT" --eval-text "$OUT/code-heldout.txt" --eval-domain prose,code \
  --out "$OUT/$name-cerebellum.gguf" \
  --curve Q2_K --curve Q3_K_M --curve Q6_K --card
