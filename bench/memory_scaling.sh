#!/usr/bin/env bash
# Peak memory of our stages next to stock llama-perplexity on the stock
# base-mix (Q4_K_M) file of the same model, on the cb models and on generated
# models of realistic shape (random weights: time and memory only).
#
#   bash bench/memory_scaling.sh [--models "dense hybrid gen:0.2b gen:0.8b"] [--threads 2]
#                                [--work DIR] [--gpu-layers N] [--max-vram 24GiB]
#                                [--rows "stock_quantize ... quantize"] [--out results.json]
# --rows runs only those rows (in a kept --work dir; results accumulate there).
# --limit-x R: every row but the stock Q4_K_M ones runs in a memory cgroup
# capped at R x the stock Q4_K_M perplexity run's peak RSS (bench/mem_limit.sh;
# needs root): page cache beyond the cap is evicted, not counted, so a row that
# completes under it fits a machine with that much RAM; an OOM kill fails it.
# The rows then carry limit_mb and oom_kills.
# CB_BUILD=DIR: the build directory to use (default build/).
#
# Peak RSS is the kernel's high-water mark (getrusage, as GNU time %M): it
# counts memory-mapped model pages too, for us and for stock alike; peak
# anonymous and file-backed RSS are sampled apart (bench/peak_mem.py). With
# --gpu-layers, peak VRAM is sampled from nvidia-smi every 0.2 s as well.
# Rows:
#   stock ppl Q4_K_M   llama-perplexity -nr on the stock Q4_K_M file (the bar: 1.0x)
#   stock ppl F16      llama-perplexity on the F16 file (what any F16 reference costs)
#   reference          cerebellum measure --reference-only (F16 pass alone)
#   measure            cerebellum measure, 3 units, reference already stored
#   measure_repack     the same with --cpu-repack (CPU runs only), next to stock
#                      llama-perplexity with its default repacking (stock_ppl_q4km_repack)
#   qerror             cerebellum qerror (all candidate types), with stock llama-quantize's time next to it
#   imatrix            cerebellum imatrix on the F16 (4 chunks), next to stock llama-imatrix -nr (stock_imatrix)
#   eval               cerebellum eval on the stock Q4_K_M file (PPL)
#   quantize           cerebellum quantize, short (groups plan, no search, no table)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED="$(cd .. && pwd)/shared"
MODELS="dense hybrid gen:0.2b gen:0.8b"
THREADS=2
WORK="${TMPDIR:-/tmp}/cb-memory-scaling"
NGL=0
OUT_JSON=""
MAX_VRAM=""
ROWS=""
LIMIT_X=""
while [ $# -gt 0 ]; do
  case "$1" in
    --models) MODELS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --work) WORK="$2"; shift ;;
    --gpu-layers) NGL="$2"; shift ;;
    --out) OUT_JSON="$2"; shift ;;
    --max-vram) MAX_VRAM="$2"; shift ;;
    --rows) ROWS="$2"; shift ;;
    --limit-x) LIMIT_X="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$LIMIT_X" ] && ! [[ "$LIMIT_X" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
  echo "--limit-x: '$LIMIT_X' is not a positive number" >&2; exit 2
fi
BUILD="${CB_BUILD:-$ROOT/build}"
CB="$BUILD/cerebellum"
GEN="$BUILD/cb-gen-model"
source "$ROOT/bench/llama_bin.sh"
LLAMA_BIN="$(stock_bin "$BUILD")" || exit 2
CALIB="$SHARED/data/docs-en-calib.txt"
EVAL="$SHARED/data/wikitext-2-raw/wiki.test.raw"
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
[ -z "$ROWS" ] && : >"$RESULTS"
touch "$RESULTS"
want() { [ -z "$ROWS" ] || [[ " $ROWS " == *" $1 "* ]]; }

# run NAME MODEL CMD...: records peak RSS (and VRAM) and wall seconds.
run() {
  local row="$1" model="$2"; shift 2
  want "$row" || return 0
  local vram_log="$WORK/vram.$$" sampler=""
  if [ "$NGL" != 0 ] && command -v nvidia-smi >/dev/null; then
    (while :; do nvidia-smi -i 0 --query-gpu=memory.used --format=csv,noheader,nounits || true; sleep 0.2; done) >"$vram_log" 2>/dev/null &
    sampler=$!
  fi
  local base_vram=0
  [ -n "$sampler" ] && base_vram=$(nvidia-smi -i 0 --query-gpu=memory.used --format=csv,noheader,nounits)
  local limit=()
  if [ -n "$LIMIT_X" ] && [[ "$row" != stock_ppl_q4km && "$row" != stock_quantize && "$row" != stock_imatrix ]]; then
    local bar_mb
    bar_mb=$(python3 -c 'import json,sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(max([r["rss_mb"] for r in rows if r["model"] == sys.argv[2] and r["row"] == "stock_ppl_q4km"] or [0]))' "$RESULTS" "$model")
    [ "$bar_mb" -gt 0 ] || { echo "--limit-x: no stock_ppl_q4km row for $model yet" >&2; return 1; }
    limit=(bash "$ROOT/bench/mem_limit.sh" "$(python3 -c 'import sys; print(int(float(sys.argv[1]) * float(sys.argv[2])))' "$bar_mb" "$LIMIT_X")" --)
    # Pages of the model files already cached were charged to whoever read them
    # first and would not count against the cap: drop them (clean pages only).
    python3 -c 'import os,sys
for p in sys.argv[1:]:
    if os.path.exists(p):
        fd = os.open(p, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$WORK"/*.gguf "$WORK"/*.run/*.gguf "$SHARED"/models/*.gguf
  fi
  if ! python3 "$ROOT/bench/peak_mem.py" "$WORK/mem.$$" -- "${limit[@]}" "$@" >"$WORK/$row.log" 2>&1; then
    echo "FAILED: $row on $model (log: $WORK/$row.log)" >&2; tail -5 "$WORK/$row.log" >&2
    [ -n "$sampler" ] && kill "$sampler"
    return 1
  fi
  local vram=null
  if [ -n "$sampler" ]; then
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    vram=$(( $(sort -n "$vram_log" | tail -1) - base_vram ))
  fi
  local lim
  lim=$(grep -o 'mem_limit: limit_mb=[0-9]* oom_kills=[0-9]*' "$WORK/$row.log" | tail -1 || true)
  python3 -c 'import json,re,sys; m=json.load(open(sys.argv[1])); m.update(model=sys.argv[2], row=sys.argv[3], vram_mb=None if sys.argv[4]=="null" else int(sys.argv[4]))
l = re.findall(r"\d+", sys.argv[5])
if l: m.update(limit_mb=int(l[0]), oom_kills=int(l[1]))
print(json.dumps(m))' \
    "$WORK/mem.$$" "$model" "$row" "$vram" "$lim" >>"$RESULTS"
}

bench_model() {
  local tag="$1" f16 name
  case "$tag" in
    dense) f16="$SHARED/models/cb-dense-12l-F16.gguf" ;;
    hybrid) f16="$SHARED/models/cb-hybrid-moe-F16.gguf" ;;
    gen:*) f16="$WORK/gen-${tag#gen:}-F16.gguf"
           [ -f "$f16" ] || "$GEN" --preset "${tag#gen:}" --vocab-from "$SHARED/models/cb-dense-12l-F16.gguf" \
                              --out "$f16" --threads "$THREADS" >/dev/null ;;
    *) echo "unknown model $tag" >&2; return 2 ;;
  esac
  name=$(basename "$f16" .gguf)
  local q4="$WORK/$name-Q4_K_M.gguf" d="$WORK/$name.run"
  want reference && rm -rf "$d"
  mkdir -p "$d"
  local ctx=128 chunks=4
  local common=(--ctx "$ctx" --threads "$THREADS")
  local gpu=(); [ "$NGL" != 0 ] && gpu=(--gpu-layers "$NGL")
  [ -n "$MAX_VRAM" ] && gpu+=(--max-vram "$MAX_VRAM")
  local sgpu=(); [ "$NGL" != 0 ] && sgpu=(-ngl "$NGL")
  run "stock_quantize" "$name" "$LLAMA_BIN/llama-quantize" "$f16" "$q4" Q4_K_M "$THREADS"
  run "stock_ppl_q4km" "$name" "$LLAMA_BIN/llama-perplexity" -m "$q4" -f "$CALIB" -c "$ctx" --chunks "$chunks" -nr -t "$THREADS" "${sgpu[@]}"
  run "stock_ppl_f16" "$name" "$LLAMA_BIN/llama-perplexity" -m "$f16" -f "$CALIB" -c "$ctx" --chunks "$chunks" -nr -t "$THREADS" "${sgpu[@]}"
  local m=(--source "$f16" --base Q4_K_M --text "$CALIB" --min-chunks 2 --max-chunks "$chunks" "${common[@]}" "${gpu[@]}" --out "$d/m.jsonl")
  run "reference" "$name" "$CB" measure "${m[@]}" --reference-only
  # A fresh sweep each time, with the base mix there as the reference pass
  # leaves it (a sweep removes it when done; the reference stores stay).
  fresh_sweep() { want "$1" || return 0; rm -f "$d/m.jsonl"; "$CB" measure "${m[@]}" --reference-only >/dev/null 2>&1; rm -f "$d/m.jsonl"; }
  fresh_sweep measure
  run "measure" "$name" "$CB" measure "${m[@]}" --limit 3
  if [ "$NGL" = 0 ]; then
    fresh_sweep measure_repack
    run "measure_repack" "$name" "$CB" measure "${m[@]}" --limit 3 --cpu-repack
    run "stock_ppl_q4km_repack" "$name" "$LLAMA_BIN/llama-perplexity" -m "$q4" -f "$CALIB" -c "$ctx" --chunks "$chunks" -t "$THREADS"
  fi
  run "qerror" "$name" "$CB" qerror --source "$f16" --threads "$THREADS" --out "$d/qerror.json"
  run "imatrix" "$name" "$CB" -q imatrix --model "$f16" --text "$CALIB" --chunks "$chunks" "${common[@]}" --out "$d/imatrix.gguf"
  run "stock_imatrix" "$name" "$LLAMA_BIN/llama-imatrix" -m "$f16" -f "$CALIB" -c "$ctx" --chunks "$chunks" -nr \
      -t "$THREADS" -o "$d/stock-imatrix.gguf"
  local egpu=(); [ "$NGL" != 0 ] && egpu=(--gpu-layers "$NGL")
  run "eval" "$name" "$CB" eval --model "$q4" --text "$CALIB" --chunks "$chunks" "${common[@]}" "${egpu[@]}"
  run "quantize" "$name" "$CB" quantize --source "$f16" --budget Q4_K_M --text "$CALIB" --eval-text "$EVAL" \
      --plan groups --targets q2_K --promote q6_K --min-chunks 2 --max-chunks "$chunks" --eval-chunks "$chunks" \
      --search-evals 0 --quant-error none --force "${common[@]}" "${gpu[@]}" --out "$d/out.gguf"
}

for tag in $MODELS; do bench_model "$tag"; done

python3 - "$RESULTS" "$OUT_JSON" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
models = list(dict.fromkeys(r["model"] for r in rows))
order = ["stock_ppl_q4km", "stock_ppl_q4km_repack", "stock_ppl_f16", "reference", "measure", "measure_repack", "qerror", "imatrix", "stock_imatrix", "eval",
         "quantize", "stock_quantize"]
by = {(r["model"], r["row"]): r for r in rows}
capped = any("limit_mb" in r for r in rows)
cap_head = f" {'cap MB':>7} {'OOM':>4}" if capped else ""
print(f"{'model':<22} {'row':<21} {'RSS MB':>7} {'x stock':>8} {'anon MB':>8} {'file MB':>8} {'VRAM MB':>8} {'x stock':>8} {'seconds':>8}" + cap_head)
for m in models:
    bar = by.get((m, "stock_ppl_q4km"), {}).get("rss_mb") or 1
    vbar = by.get((m, "stock_ppl_q4km"), {}).get("vram_mb")
    for k in order:
        r = by.get((m, k))
        if not r: continue
        v = "" if r["vram_mb"] is None else r["vram_mb"]
        vx = f"{r['vram_mb']/vbar:.2f}x" if r["vram_mb"] is not None and vbar else ""
        an, fi = r.get("anon_mb", ""), r.get("file_mb", "")
        cap = f" {r.get('limit_mb', ''):>7} {r.get('oom_kills', ''):>4}" if capped else ""
        print(f"{m:<22} {k:<21} {r['rss_mb']:>7} {r['rss_mb']/bar:>7.2f}x {an:>8} {fi:>8} {v:>8} {vx:>8} {r['seconds']:>8}" + cap)
    q, s = by.get((m, "qerror")), by.get((m, "stock_quantize"))
    if q and s:
        print(f"{m:<22} qerror / stock llama-quantize time: {float(q['seconds'])/max(0.01, float(s['seconds'])):.2f}x")
if sys.argv[2]:
    json.dump({"schema": "cerebellum.bench.memory/1", "rows": rows}, open(sys.argv[2], "w"), indent=1)
EOF
