#!/usr/bin/env bash
# The original method's cost and ranking on a machine with many cores, when
# running it serially for every tensor does not fit the time at hand:
#   1. ours: `cerebellum measure` with its defaults, THREADS threads (timed);
#   2. the original method (stock llama-quantize --tensor-type NAME=q2_k on Q4_K_M +
#      llama-perplexity -nr -c 512 --chunks 40), THREADS threads, serially on the first
#      K tensors of our order (timed: its cost per tensor does not depend on the tensor —
#      the whole file is re-quantized and the same 40 chunks are evaluated);
#   3. the same for the remaining tensors, JOBS at a time (PPLs only, not timed).
# Writes ours.jsonl, original.json (tensor -> PPL), timing.json under WORK.
# usage: bench/measure/original_split.sh CLI LLAMA_BIN MODEL TEXT WORK [THREADS=2] [K=8] [JOBS=7]
set -euo pipefail
CLI=$1 BIN=$2 MODEL=$3 TEXT=$4 WORK=$5 THREADS=${6:-2} K=${7:-8} JOBS=${8:-7}
mkdir -p "$WORK"; cd "$WORK"
now() { date +%s.%N; }
sub() { python3 -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 2))" "$@"; }
rm -f ours.jsonl*
t0=$(now)
"$CLI" measure --source "$MODEL" --base Q4_K_M --text "$TEXT" --domain en --plan tensors \
  --targets q2_K --threads "$THREADS" --out ours.jsonl >/dev/null 2>ours.log
t_ours=$(sub "$(now)" "$t0")
python3 -c "
import json
for l in open('ours.jsonl'):
    r = json.loads(l)
    if r.get('kind') == 'measurement': print(r['unit']['id'])" > tensors.txt
echo "{\"ours_s\": $t_ours, \"n\": $(wc -l < tensors.txt)}" > timing.json
echo "ours: $(wc -l < tensors.txt) tensors in ${t_ours}s"
one() {  # $1 = tensor, $2 = tag
  "$BIN/llama-quantize" --tensor-type "$1=q2_k" "$MODEL" "cand.$2.gguf" Q4_K_M "$THREADS" >/dev/null 2>&1
  "$BIN/llama-perplexity" -m "cand.$2.gguf" -f "$TEXT" -c 512 --chunks 40 -nr -t "$THREADS" > "ppl.$2.log" 2>&1
  rm -f "cand.$2.gguf"
  echo "$1 $(grep -o 'Final estimate: PPL = [0-9.]*' "ppl.$2.log" | awk '{print $NF}')" >> original.txt
}
rm -f original.txt
t0=$(now)
"$BIN/llama-quantize" "$MODEL" base.gguf Q4_K_M "$THREADS" >/dev/null 2>&1
"$BIN/llama-perplexity" -m base.gguf -f "$TEXT" -c 512 --chunks 40 -nr -t "$THREADS" > base.ppl.log 2>&1
t_base=$(sub "$(now)" "$t0")
t0=$(now)
head -n "$K" tensors.txt | while read -r n; do one "$n" s; done
t_k=$(sub "$(now)" "$t0")
echo "{\"ours_s\": $t_ours, \"n\": $(wc -l < tensors.txt), \"original_base_s\": $t_base, \"original_serial_k\": $K, \"original_serial_s\": $t_k, \"threads\": $THREADS}" > timing.json
cat timing.json
export -f one; export BIN MODEL TEXT THREADS
tail -n +"$((K + 1))" tensors.txt | nl -ba | xargs -P "$JOBS" -L1 bash -c 'one "$1" "p$0"'
echo "original PPLs: $(wc -l < original.txt)"
