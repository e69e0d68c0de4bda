#!/usr/bin/env bash
# Issue 16 on the GPU machine (kind nvidia-h200-x2; the `run` device tool,
# repo root, $OUT set): one sweep as one process on GPU 0 and as N shards,
# shard K on GPU K, on a generated model of realistic shape (random weights:
# time and memory only), through bench/shards_scaling.sh. Every process gets
# all of the host's CPUs (--threads and --shard-threads $(nproc)), as
# `measure` takes by default; `--shard-threads N` after TENSORS confines each
# shard to N threads instead (what a Slurm task with --cpus-per-task=N gets).
#   bash bench/gpu/shards_run.sh [PRESET=8b] [SHARDS=2] [TENSORS] [shards_scaling.sh options...]
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"; cd "$root"
OUT="${OUT:-/tmp/cb-out}"; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
PRESET="${1:-8b}"; SHARDS="${2:-2}"; TENSORS="${3:-blk\.[0-3]\.}"; shift 3 2>/dev/null; EXTRA=("$@")
source "$root/bench/gpu/setup_cuda.sh"
WORK="$B/work-shards"; mkdir -p "$WORK"
CB_BUILD="$B/cb" bash bench/shards_scaling.sh --model "gen:$PRESET" --shards "$SHARDS" --threads "$(nproc)" \
  --shard-threads "$(nproc)" --gpu-layers 999 --tensors "$TENSORS" --work "$WORK" "${EXTRA[@]}"
cp "$WORK"/shards_scaling.json "$WORK"/*.jsonl "$OUT/" 2>/dev/null
nvidia-smi --query-gpu=index,memory.used --format=csv,noheader
df -h "$root" | tail -1
