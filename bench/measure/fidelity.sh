#!/usr/bin/env bash
# The full per-tensor q2_K sweep of cb-dense-12l (defaults: base Q4_K_M, ctx
# 512, adaptive stopping) in each --mode given, timed, and ranked against the
# committed 100-chunk exact truth (Spearman on ΔKLD).
#
#   bash bench/measure/fidelity.sh [--modes "resident simulated"] [--threads 2] [--work DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODES="resident simulated"; THREADS=2; WORK="${TMPDIR:-/tmp}/cb-fidelity"
while [ $# -gt 0 ]; do
  case "$1" in
    --modes) MODES="$2"; shift ;; --threads) THREADS="$2"; shift ;; --work) WORK="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac; shift
done
SHARED="$(cd .. && pwd)/shared"
TRUTH=bench/results/measure_truth_dense_q4km_q2k_100x512.jsonl
mkdir -p "$WORK"
for mode in $MODES; do
  rm -rf "$WORK/$mode"; mkdir -p "$WORK/$mode"
  /usr/bin/time -f "%M %e" -o "$WORK/$mode/time" ./build/cerebellum measure \
    --source "$SHARED/models/cb-dense-12l-F16.gguf" --base Q4_K_M --text "$SHARED/data/docs-en-calib.txt" \
    --domain en --plan tensors --targets q2_K --threads "$THREADS" --mode "$mode" \
    --out "$WORK/$mode/sweep.jsonl" >"$WORK/$mode/summary.json" 2>"$WORK/$mode/log"
  read -r rss_kb secs <"$WORK/$mode/time"
  python3 - "$WORK/$mode/sweep.jsonl" "$TRUTH" "$mode" "$secs" "$rss_kb" <<'PY'
import sys
sys.path.insert(0, "bench/measure")
from ranking import journal, spearman
ours, truth = journal(sys.argv[1]), journal(sys.argv[2])
ids = sorted(set(ours) & set(truth))
chunks = sum(ours[i]["n_chunks"] for i in ids) / len(ids)
rho = spearman([ours[i]["delta_kld"] for i in ids], [truth[i]["delta_kld"] for i in ids])
print(f"{sys.argv[3]:<10} tensors {len(ids)}  {float(sys.argv[4]):7.1f} s  peak RSS {int(sys.argv[5])//1024} MB  "
      f"{chunks:.2f} chunks/tensor  Spearman vs truth ΔKLD {rho:+.3f}")
PY
done
