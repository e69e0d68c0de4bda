#!/usr/bin/env bash
# Our ablation sweep vs the original project's method, on cb-dense-12l
# (base stock Q4_K_M, target q2_K, weight tensors), in one run:
#   ours:     cerebellum measure (simulated swaps, adaptive stopping, ΔKLD)
#   original: per tensor, stock llama-quantize --tensor-type NAME=q2_k on top of
#             Q4_K_M + stock llama-perplexity -nr -c 512 --chunks 40
#   truth:    a long high-precision ranking: our evaluator in EXACT mode (a model
#             built with the real types per tensor) on --ref-chunks chunks, no
#             early stopping: ΔKLD and Δln PPL.
# Prints wall time of each method and the Spearman correlation of each ranking
# with the truth. The full run (86 tensors) takes hours on 2 cores: use --limit N
# (the N tensors with the largest expected damage, same set for every method), or
# compute the truth once (--truth-only) and pass it to later runs (--truth FILE:
# the truth does not depend on the method being timed).
# Ours runs with `cerebellum measure`'s defaults (what a user gets).
# --repack: both sides with llama.cpp's CPU weight repacking, like for like:
# ours with --cpu-repack, the original's llama-perplexity without -nr (its
# default; the script refuses where the CPU offers AMX, whose repacking
# segfaults on quantized models).
#
# usage: bench/measure_vs_original.sh [--limit N] [--ref-chunks 100] [--threads 2]
#          [--build DIR (default build)] [--work DIR] [--text FILE] [--truth FILE | --truth-only] [--repack]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIMIT=0 REF_CHUNKS=100 THREADS=2 BUILD="${CB_BUILD:-$ROOT/build}" WORK="" TEXT=${TEXT:-} TRUTH="" TRUTH_ONLY=0
TRUTH_THREADS="" REPACK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --limit) LIMIT=$2; shift 2 ;;
    --ref-chunks) REF_CHUNKS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --text) TEXT=$2; shift 2 ;;
    --truth) TRUTH=$2; shift 2 ;;
    --truth-only) TRUTH_ONLY=1; shift ;;
    --repack) REPACK=1; shift ;;
    --truth-threads) TRUTH_THREADS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
SHARED=${SHARED:-"$ROOT/../shared"}
MODEL=${MODEL:-"$SHARED/models/cb-dense-12l-F16.gguf"}
TEXT=${TEXT:-"$SHARED/data/docs-en-calib.txt"}
CLI="$BUILD/cerebellum"
source "$ROOT/bench/llama_bin.sh"
BIN="$(stock_bin "$BUILD")" || exit 2
TRUTH_THREADS=${TRUTH_THREADS:-$THREADS}
WORK=${WORK:-$(mktemp -d /tmp/measure_vs_original.XXXXXX)}
mkdir -p "$WORK"
echo "work dir: $WORK" >&2
NR=(-nr) OURS_REPACK=()
if [[ $REPACK == 1 ]]; then
  grep -qw amx_int8 /proc/cpuinfo && { echo "--repack: this CPU has AMX (its repacking segfaults)" >&2; exit 2; }
  NR=() OURS_REPACK=(--cpu-repack)
fi
now() { date +%s.%N; }
sub() { python3 -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 2))" "$@"; }

truth_run() {  # $1 = tensor regex ("" = all)
  local sel=()
  [[ -n "$1" ]] && sel=(--tensors "$1")
  "$CLI" measure --source "$MODEL" --base Q4_K_M --text "$TEXT" --domain en --plan tensors \
    --targets q2_K --ctx 512 --first-scored 256 --top-k 1024 --min-chunks "$REF_CHUNKS" \
    --max-chunks "$REF_CHUNKS" --mode exact --threads "$TRUTH_THREADS" "${sel[@]}" --resume \
    --out "$WORK/truth.jsonl" >/dev/null 2>>"$WORK/truth.log"
}
if [[ $TRUTH_ONLY == 1 ]]; then
  t0=$(now); truth_run ""; echo "truth: $(grep -c '"measurement"' "$WORK/truth.jsonl") tensors in $(sub "$(now)" "$t0")s" >&2
  exit 0
fi

# --- ours -------------------------------------------------------------------
rm -f "$WORK"/ours.jsonl*
t0=$(now)
"$CLI" measure --source "$MODEL" --base Q4_K_M --text "$TEXT" --domain en --plan tensors \
  --targets q2_K --threads "$THREADS" "${OURS_REPACK[@]}" \
  --limit "$LIMIT" --out "$WORK/ours.jsonl" >/dev/null 2>"$WORK/ours.log"
t_ours=$(sub "$(now)" "$t0")
python3 - "$WORK/ours.jsonl" > "$WORK/tensors.txt" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("kind") == "measurement": print(r["unit"]["id"])
PY
N=$(wc -l < "$WORK/tensors.txt")
echo "ours: $N tensors in ${t_ours}s" >&2

# --- original ---------------------------------------------------------------
t0=$(now)
"$BIN/llama-quantize" "$MODEL" "$WORK/base.gguf" Q4_K_M "$THREADS" >/dev/null 2>&1
"$BIN/llama-perplexity" -m "$WORK/base.gguf" -f "$TEXT" -c 512 --chunks 40 "${NR[@]}" -t "$THREADS" \
  > "$WORK/base.ppl.log" 2>&1
echo "{}" > "$WORK/original.json"
while read -r name; do
  "$BIN/llama-quantize" --tensor-type "$name=q2_k" "$MODEL" "$WORK/cand.gguf" Q4_K_M "$THREADS" \
    >/dev/null 2>&1
  "$BIN/llama-perplexity" -m "$WORK/cand.gguf" -f "$TEXT" -c 512 --chunks 40 "${NR[@]}" -t "$THREADS" \
    > "$WORK/cand.ppl.log" 2>&1
  ppl=$(grep -o 'Final estimate: PPL = [0-9.]*' "$WORK/cand.ppl.log" | awk '{print $NF}')
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d[sys.argv[2]]=float(sys.argv[3]); json.dump(d,open(sys.argv[1],'w'))" \
    "$WORK/original.json" "$name" "$ppl"
done < "$WORK/tensors.txt"
rm -f "$WORK/cand.gguf"
t_orig=$(sub "$(now)" "$t0")
base_ppl=$(grep -o 'Final estimate: PPL = [0-9.]*' "$WORK/base.ppl.log" | awk '{print $NF}')
echo "original: $N tensors in ${t_orig}s (base PPL $base_ppl)" >&2

# --- truth: exact mode, many chunks, no early stop ---------------------------
# (top-1024 reference, llama-perplexity's chunk layout; reused with --truth)
t0=$(now)
if [[ -n "$TRUTH" ]]; then
  [[ "$(realpath "$TRUTH")" == "$(realpath -m "$WORK/truth.jsonl")" ]] || cp "$TRUTH" "$WORK/truth.jsonl"
else
  rm -f "$WORK"/truth.jsonl*
  truth_run "^($(sed 's/\./\\./g' "$WORK/tensors.txt" | paste -sd'|'))\$"
fi
t_truth=$(sub "$(now)" "$t0")

python3 - "$WORK" "$t_ours" "$t_orig" "$t_truth" "$base_ppl" "$ROOT/bench/measure" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[6])
from ranking import journal, spearman
work, t_ours, t_orig, t_truth, base_ppl = sys.argv[1], *map(float, sys.argv[2:6])
ours, truth = journal(f"{work}/ours.jsonl"), journal(f"{work}/truth.jsonl")
orig = json.load(open(f"{work}/original.json"))
names = sorted(set(ours) & set(truth) & set(orig))
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i]); r = [0.0] * len(v); i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]: j += 1
        for k in range(i, j + 1): r[order[k]] = (i + j) / 2
        i = j + 1
    return r
def spearman(a, b):
    ra, rb = ranks(a), ranks(b); n = len(a); ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** .5; vb = sum((y - mb) ** 2 for y in rb) ** .5
    return cov / (va * vb) if va and vb else float("nan")
o_kld = [ours[n]["delta_kld"] for n in names]
o_lnp = [ours[n]["delta_ln_ppl"] for n in names]
g_ppl = [orig[n] for n in names]
t_kld = [truth[n]["delta_kld"] for n in names]
t_lnp = [truth[n]["delta_ln_ppl"] for n in names]
chunks = sum(ours[n]["n_chunks"] for n in names)
stops = {}
for n in names: stops[ours[n]["stopped"]] = stops.get(ours[n]["stopped"], 0) + 1
print(f"tensors: {len(names)}   base PPL (stock, 40x512): {base_ppl}")
print(f"wall time  ours {t_ours:.1f} s   original {t_orig:.1f} s   speed-up {t_orig / t_ours:.1f}x"
      f"   (truth run {t_truth:.1f} s)")
print(f"ours: {chunks / len(names):.1f} chunks/tensor on average, stopped {stops}")
print("Spearman vs truth ΔKLD (exact, chunks=%s):" % truth[names[0]]["n_chunks"])
print(f"  ours ΔKLD      {spearman(o_kld, t_kld):+.3f}")
print(f"  ours Δln PPL   {spearman(o_lnp, t_kld):+.3f}")
print(f"  original PPL   {spearman(g_ppl, t_kld):+.3f}")
print("Spearman vs truth Δln PPL:")
print(f"  ours ΔKLD      {spearman(o_kld, t_lnp):+.3f}")
print(f"  original PPL   {spearman(g_ppl, t_lnp):+.3f}")
PY
