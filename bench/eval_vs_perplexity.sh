#!/usr/bin/env bash
# Throughput of `cerebellum eval` vs stock `llama-perplexity` on the same
# model, text, context, chunks and threads, run alternately (ABAB...) so
# machine noise hits both. Prints PPL and tokens/s of each run side by side.
#
#   bench/eval_vs_perplexity.sh [MODEL] [TEXT] [CHUNKS] [THREADS] [REPEATS] [CTX]
# Env: CB_BUILD (build dir with the cerebellum binary, default build),
#      LLAMA_BIN (stock tools, default the llama.cpp that build links).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:-$here/../shared/models/cb-dense-12l-F16.gguf}"
text="${2:-$here/../shared/data/wikitext-2-raw/wiki.test.raw}"
chunks="${3:-16}"
threads="${4:-2}"
repeats="${5:-2}"
ctx="${6:-512}"
cb="${CB_BUILD:-$here/build}/cerebellum"
source "$here/bench/llama_bin.sh"
llama_bin="$(stock_bin "${CB_BUILD:-$here/build}")" || exit 2
tokens=$((chunks * ctx))

now() { date +%s.%N; }
printf "%-18s %4s %12s %10s %10s\n" tool run PPL seconds tok/s
declare -A total=([cerebellum]=0 [llama-perplexity]=0)
for r in $(seq 1 "$repeats"); do
  t0=$(now)
  ppl_cb=$("$cb" eval --model "$model" --text "$text" --ctx "$ctx" --chunks "$chunks" \
             --threads "$threads" --json 2>/dev/null | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["ppl"])')
  t1=$(now)
  ppl_st=$("$llama_bin/llama-perplexity" -m "$model" -f "$text" -c "$ctx" --chunks "$chunks" \
             -t "$threads" -nr 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  t2=$(now)
  for pair in "cerebellum $ppl_cb $t0 $t1" "llama-perplexity $ppl_st $t1 $t2"; do
    set -- $pair
    s=$(python3 -c "print('%.2f' % ($4 - $3))")
    total[$1]=$(python3 -c "print(${total[$1]} + $s)")
    printf "%-18s %4d %12s %10s %10.0f\n" "$1" "$r" "$2" "$s" "$(python3 -c "print($tokens / $s)")"
  done
done
cb_s=${total[cerebellum]}; st_s=${total[llama-perplexity]}
python3 -c "print('total: cerebellum %.2f s, llama-perplexity %.2f s, cerebellum/stock time = %.3f (process wall time incl. model load)' % ($cb_s, $st_s, $cb_s / $st_s))"
