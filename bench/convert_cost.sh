#!/usr/bin/env bash
# What converting F16 weights to each type costs on one CPU core: the work a
# sweep's swaps do, and what `measure --shard` balances between shards
# (src/measure/units.cc, kConvertNsPerWeight). Stock `llama-quantize --pure`
# on one thread (read, convert, quantize, write: what our converter does,
# through the same ggml_quantize_chunk), best of --repeat runs, wall seconds
# over the model's weights, less the same run to f16 (reading, writing and
# starting up, which a swap does not pay per type).
#
#   bash bench/convert_cost.sh [--model PATH] [--types "q2_K q6_K ..."] [--repeat 3] [--out FILE.json]
# CB_BUILD=DIR: the build whose llama.cpp is used (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODEL="$(cd .. && pwd)/shared/models/cb-dense-12l-F16.gguf"
TYPES="q2_K q3_K q4_K q5_K q6_K q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl iq4_xs iq3_s iq3_xxs iq2_s"
REPEAT=3 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift ;;
    --types) TYPES="$2"; shift ;;
    --repeat) REPEAT="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "convert_cost.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$MODEL" ] || { echo "convert_cost.sh: no model $MODEL" >&2; exit 2; }
BUILD="${CB_BUILD:-$ROOT/build}"
source "$ROOT/bench/llama_bin.sh"
LLAMA_BIN="$(stock_bin "$BUILD")" || exit 2
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
N=$("$BUILD/cerebellum" inspect --json --no-tensors "$MODEL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["n_elements"])')
echo "model $(basename "$MODEL"): $N weights; llama-quantize --pure, 1 thread, best of $REPEAT"
rows=()
for t in f16 $TYPES; do
  best=""
  for ((r = 0; r < REPEAT; ++r)); do
    t0=$(date +%s.%N)
    "$LLAMA_BIN/llama-quantize" --pure "$MODEL" "$TMP/out.gguf" "$t" 1 >"$TMP/log" 2>&1 || {
      echo "$t: llama-quantize failed: $(tail -1 "$TMP/log")" >&2; best=""; break; }
    s=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$(date +%s.%N)")
    best=$(python3 -c "import sys; a=sys.argv[1]; print(min(float(a), float(sys.argv[2])) if a else sys.argv[2])" "$best" "$s")
  done
  [ -n "$best" ] && rows+=("$t $best")
done
printf '%s\n' "${rows[@]}" >"$TMP/rows"
python3 - "$N" "$TMP/rows" "$OUT" <<'PY'
import json, sys
n, rows_path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rows = [l.split() for l in open(rows_path) if l.strip()]
base = float(dict(rows)["f16"])
res = {t: {"seconds": float(s), "ns_per_weight": (float(s) - base) * 1e9 / n} for t, s in rows if t != "f16"}
print("f16 (copy only) %.3f s, subtracted" % base)
print("%-10s %8s %10s %7s" % ("type", "seconds", "ns/weight", "x q6_K"))
ref = res.get("q6_K", {}).get("ns_per_weight")
for t, r in res.items():
    rel = "%7.2f" % (r["ns_per_weight"] / ref) if ref else ""
    print("%-10s %8.3f %10.1f %s" % (t, r["seconds"], r["ns_per_weight"], rel))
if out:
    json.dump({"weights": n, "f16_copy_seconds": base, "types": res}, open(out, "w"), indent=2)
PY
