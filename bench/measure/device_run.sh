#!/usr/bin/env bash
# bench/measure_vs_original.sh on the device machine's CPUs (16 uncontended
# cores; the GPU is not used): one call of the `run` device tool, repo root, $OUT set.
#
#   bash bench/measure/device_run.sh prep  SECONDS   # build; sample sweep; truth (resumable)
#   bash bench/measure/device_run.sh truth SECONDS   # build; truth only (resumable)
#   bash bench/measure/device_run.sh split SECONDS K # bench/measure/original_split.sh
#   bash bench/measure/device_run.sh bench THREADS   # truth (finish) + ours vs original, timed
#
# Needs (carried, ignored): .device/common/{llama-src.tar.xz, deps/usr, docs-en-calib.txt},
# .device/m-dense/cb-dense-12l-F16.gguf, optionally .device/truth.jsonl (a truth journal
# from an earlier call, resumed). Builds in build-dev/ (kept while the machine is warm).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"; cd "$root"
OUT="${OUT:-/tmp/cb-out}"; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
T0=$(date +%s)
D="$root/.device/common" B="$root/build-dev"
export CEREBELLUM_CACHE="$B/cache"
mkdir -p "$B/work"
echo "== machine: $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo)"
if [ ! -f "$B/llama-src/CMakeLists.txt" ]; then
  mkdir -p "$B/llama-src" && tar -xJf "$D/llama-src.tar.xz" -C "$B/llama-src" || exit 1
fi
t=$(date +%s)
CB_SKIP_APT=1 BUILD_DIR="$B/cb" JOBS="$(nproc)" \
  CB_CMAKE_ARGS="-DCB_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH=$D/deps/usr" \
  bash scripts/setup.sh --source "$B/llama-src" >"$B/setup.log" 2>&1 || { tail -40 "$B/setup.log"; exit 1; }
echo "build: $(( $(date +%s) - t )) s"
LLAMA_PREFIX=$(ls -d "$CEREBELLUM_CACHE"/llama.cpp-*-cpu-* | head -1)
export LD_LIBRARY_PATH="$D/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LLAMA_BIN="$LLAMA_PREFIX/bin" MODEL="$root/.device/m-dense/cb-dense-12l-F16.gguf" TEXT="$D/docs-en-calib.txt"
W="$B/work"
[ -f "$root/.device/truth.jsonl" ] && [ ! -f "$W/truth.jsonl" ] && cp "$root/.device/truth.jsonl" "$W/truth.jsonl"
left() { echo $(( $2 - ($(date +%s) - T0) )); }
truth() {  # finish (or continue) the truth within $1 seconds
  timeout "$1" bash bench/measure_vs_original.sh --truth-only --truth-threads "$(nproc)" \
    --build "$B/cb" --work "$W"
  tail -c 600 "$W/truth.log"; echo
  echo "truth: $(grep -c '"measurement"' "$W/truth.jsonl") of 86 tensors"
  cp "$W/truth.jsonl" "$OUT/truth.jsonl"
}
case "${1:-}" in
  truth) truth "$(left x "${2:-560}")" ;;
  split)  # ours vs the original's serial cost on K tensors + its PPLs for the rest in parallel
    timeout "$(left x "${2:-560}")" bash bench/measure/original_split.sh "$B/cb/cerebellum" "$LLAMA_BIN" \
      "$MODEL" "$TEXT" "$W/split" 2 "${3:-8}" "$(( $(nproc) / 2 - 1 ))"
    for f in ours.jsonl original.txt timing.json base.ppl.log; do cp "$W/split/$f" "$OUT/" 2>/dev/null; done ;;
  prep)
    rm -f "$W"/samples.jsonl*
    t=$(date +%s)
    "$B/cb/cerebellum" measure --source "$MODEL" --base Q4_K_M --text "$TEXT" --domain en \
      --plan tensors --targets q2_K --min-chunks 16 --max-chunks 16 --blocks 4 --first-scored 64 \
      --threads 4 --out "$W/samples.jsonl" >/dev/null 2>"$W/samples.log" || tail -5 "$W/samples.log"
    echo "samples: $(( $(date +%s) - t )) s"
    cp "$W/samples.jsonl" "$OUT/"
    truth "$(left x "${2:-560}")" ;;
  bench)
    truth "$(left x 200)"
    grep -q . "$W/truth.jsonl" || exit 1
    bash bench/measure_vs_original.sh --threads "${2:-4}" --build "$B/cb" --work "$W/run" \
      --truth "$W/truth.jsonl" 2>&1 | tee "$OUT/bench.txt"
    cp "$W/run/ours.jsonl" "$W/run/original.json" "$OUT/" 2>/dev/null ;;
  *) echo "usage: $0 prep SECONDS | bench THREADS"; exit 2 ;;
esac
echo "total $(( $(date +%s) - T0 )) s"
