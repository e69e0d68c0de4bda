#!/usr/bin/env bash
# GPU benchmark of Cerebellum (issue #7). For each model: stock-quantized
# Q4_K_M, then eval throughput and PPL of F16 and Q4_K_M (ours `cerebellum
# eval` and stock `llama-perplexity`, same device, ctx, chunks), the wall time
# of a full per-tensor sweep (`cerebellum measure --plan tensors --targets q2_K
# --base Q4_K_M`) with all layers offloaded, and the same sweep on the CPU
# (--gpu-layers 0, CUDA hidden) to compare (bench/gpu/compare.py: PPL, KLD,
# Spearman of the sensitivity ranking). Runs with a CPU-only build too
# (NGL=0 CPU_SWEEP=0: the logic test).
#
#   bench/gpu_bench.sh [MODEL_NAME ...]     (default: cb-dense-12l cb-hybrid-moe)
# Env:
#   CB          cerebellum binary (default build/cerebellum)
#   LLAMA_BIN   stock tools (llama-perplexity, llama-quantize)
#   MODELS_DIR  where NAME-F16.gguf lie (default ../shared/models)
#   TEXT        calibration text (default ../shared/data/docs-en-calib.txt)
#   CTX=512 CHUNKS=40 NGL=999 THREADS=$(nproc) REPEATS=2
#   CPU_SWEEP=1 also run the sweep on the CPU (CUDA_VISIBLE_DEVICES= , --gpu-layers 0)
#   CPU_JOURNAL_DIR  compare with NAME.cpu.jsonl journals from there instead
#   WORK        scratch and results dir (default /tmp/cb-gpu-bench); summary in $WORK/summary.txt
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
CB="${CB:-$here/build/cerebellum}"
source "$here/bench/llama_bin.sh"
LLAMA_BIN="$(stock_bin "$(dirname "$CB")")" || exit 2
MODELS_DIR="${MODELS_DIR:-$here/../shared/models}"
TEXT="${TEXT:-$here/../shared/data/docs-en-calib.txt}"
CTX="${CTX:-512}"; CHUNKS="${CHUNKS:-40}"; NGL="${NGL:-999}"
THREADS="${THREADS:-$(nproc)}"; REPEATS="${REPEATS:-2}"
CPU_SWEEP="${CPU_SWEEP:-1}"; CPU_JOURNAL_DIR="${CPU_JOURNAL_DIR:-}"
WORK="${WORK:-/tmp/cb-gpu-bench}"
mkdir -p "$WORK"
SUMMARY="${SUMMARY:-$WORK/summary.txt}"
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(cb-dense-12l cb-hybrid-moe)

now() { date +%s.%N; }
el() { python3 -c "print('%.2f' % ($2 - $1))"; }
say() { echo "$*" | tee -a "$SUMMARY"; }
jget() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

say "# gpu_bench $(date -u +%FT%TZ) host=$(hostname) threads=$THREADS ngl=$NGL ctx=$CTX chunks=$CHUNKS"
command -v nvidia-smi >/dev/null && say "# $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null)"
say "# text=$(basename "$TEXT") cb=$CB llama_bin=$LLAMA_BIN"

# Stock llama-perplexity: PPL, and evaluated tokens/s from its log timestamps
# (min.sec.ms.us) between "calculating perplexity over" and "Final estimate",
# the span that ours measures too (all decodes and scoring, no model load).
stock_ppl() {  # model ngl threads log
  "$LLAMA_BIN/llama-perplexity" -m "$1" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -ngl "$2" \
    -t "$3" -nr --log-timestamps >"$4" 2>&1
  python3 - "$4" "$CTX" <<'PY'
import re, sys
txt = open(sys.argv[1], errors="replace").read()
ctx = int(sys.argv[2])
ppl = re.search(r"Final estimate: PPL = ([0-9.]+)", txt)
def ts(pat):
    m = re.search(r"(\d+)\.(\d+)\.(\d+)\.(\d+) \S* ?[^\n]*" + pat, txt)
    return None if not m else int(m[1]) * 60 + int(m[2]) + int(m[3]) / 1e3 + int(m[4]) / 1e6
a, b = ts("calculating perplexity over"), ts("Final estimate")
n = re.search(r"calculating perplexity over (\d+) chunks", txt)
tps = "%.0f" % (int(n[1]) * ctx / (b - a)) if a is not None and b and n and b > a else "?"
print(ppl[1] if ppl else "?", tps)
PY
}

for name in "${models[@]}"; do
  f16="$MODELS_DIR/$name-F16.gguf"
  [ -f "$f16" ] || { say "## $name: $f16 missing, skipped"; continue; }
  W="$WORK/$name"; mkdir -p "$W"
  q4="$W/$name-Q4_K_M.gguf"
  [ -f "$q4" ] || "$LLAMA_BIN/llama-quantize" "$f16" "$q4" Q4_K_M "$THREADS" >"$W/quantize.log" 2>&1 ||
    { say "## $name: llama-quantize failed"; tail -5 "$W/quantize.log"; continue; }
  say "## $name"
  say "eval (ctx $CTX, $CHUNKS chunks, ngl $NGL; best of $REPEATS; tok/s = evaluated tokens / eval time)"
  say "$(printf '%-8s %-18s %10s %10s %9s' model tool PPL tok/s wall_s)"
  for q in F16 Q4_K_M; do
    m="$f16"; [ "$q" = Q4_K_M ] && m="$q4"
    best_cb=0; best_st=0; ppl_cb=?; ppl_st=?; w_cb=?; w_st=?
    for r in $(seq 1 "$REPEATS"); do
      t0=$(now)
      "$CB" eval --model "$m" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" --threads "$THREADS" \
        --gpu-layers "$NGL" --json >"$W/eval-$q.json" 2>"$W/eval-$q.err"
      t1=$(now)
      if [ -s "$W/eval-$q.json" ]; then
        ppl_cb=$(jget "$W/eval-$q.json" "'%.4f' % d['ppl']")
        tps=$(jget "$W/eval-$q.json" "'%.0f' % d['tokens_per_s']")
        if [ "$tps" -gt "$best_cb" ]; then best_cb=$tps; w_cb=$(el "$t0" "$t1"); fi
      else
        tail -3 "$W/eval-$q.err"
      fi
      t0=$(now)
      read -r p tps < <(stock_ppl "$m" "$NGL" "$THREADS" "$W/stock-$q.log")
      t1=$(now)
      ppl_st=$p
      if [ "$tps" != "?" ] && [ "$tps" -gt "$best_st" ]; then best_st=$tps; w_st=$(el "$t0" "$t1"); fi
    done
    say "$(printf '%-8s %-18s %10s %10s %9s' "$q" cerebellum "$ppl_cb" "$best_cb" "$w_cb")"
    say "$(printf '%-8s %-18s %10s %10s %9s' "$q" llama-perplexity "$ppl_st" "$best_st" "$w_st")"
    rel=$(python3 -c "a,b='$ppl_cb','$ppl_st'
try: print('%+.4f%%' % (100*(float(a)-float(b))/float(b)))
except Exception: print('?')")
    say "$q PPL cerebellum vs stock: $rel"
  done

  # The sweep with all layers offloaded, then on the CPU.
  sweep() {  # tag ngl [env...]
    local tag=$1 ngl=$2; shift 2
    rm -rf "$W/sweep-$tag"; mkdir -p "$W/sweep-$tag"
    local t0 t1
    t0=$(now)
    env "$@" "$CB" measure --source "$f16" --base Q4_K_M --text "$TEXT" --domain en \
      --plan tensors --targets q2_K --ctx "$CTX" --threads "$THREADS" --gpu-layers "$ngl" \
      --out "$W/sweep-$tag/$name.$tag.jsonl" >"$W/sweep-$tag/out.json" 2>"$W/sweep-$tag/err.log"
    local rc=$?
    t1=$(now)
    local n
    n=$(grep -c '"kind":"measurement"' "$W/sweep-$tag/$name.$tag.jsonl" 2>/dev/null || echo 0)
    say "sweep $tag (ngl $ngl, --plan tensors --targets q2_K --base Q4_K_M): rc $rc, $n units, $(el "$t0" "$t1") s wall (reference + baseline + units)"
    [ $rc -eq 0 ] || tail -5 "$W/sweep-$tag/err.log"
  }
  sweep gpu "$NGL"
  cpu_journal=""
  if [ -n "$CPU_JOURNAL_DIR" ] && [ -f "$CPU_JOURNAL_DIR/$name.cpu.jsonl" ]; then
    cpu_journal="$CPU_JOURNAL_DIR/$name.cpu.jsonl"
  elif [ "$CPU_SWEEP" = 1 ]; then
    sweep cpu 0 CUDA_VISIBLE_DEVICES=
    cpu_journal="$W/sweep-cpu/$name.cpu.jsonl"
  fi
  if [ -n "$cpu_journal" ] && [ -f "$cpu_journal" ]; then
    say "agreement gpu vs cpu ($cpu_journal):"
    python3 "$here/bench/gpu/compare.py" "$W/sweep-gpu/$name.gpu.jsonl" "$cpu_journal" \
      --json "$W/compare.json" 2>&1 | tee -a "$SUMMARY"
  fi
done
say "# done $(date -u +%FT%TZ)"
