#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job on MODEL (default: the
# shared cb-dense-12l-F16). Outputs go to OUT (default: out/).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:-../shared/models/cb-dense-12l-F16.gguf}"
OUT="${OUT:-out}"
bash scripts/setup.sh "$@"
mkdir -p "$OUT"
./build/cerebellum inspect "$MODEL" --json > "$OUT/inspect.json"
./build/cerebellum inspect "$MODEL" --no-tensors
echo "[run] wrote $OUT/inspect.json" >&2
