#!/usr/bin/env bash
# One call on the GPU machine (the `run` device tool, repo root, $OUT set):
# builds the pinned llama.cpp with CUDA and Cerebellum against it through
# scripts/setup.sh --cuda, then runs bench/gpu_bench.sh and leaves the
# summary, the log, the journals and the comparison under $OUT.
#
#   bash bench/gpu/device_run.sh [MODEL_NAME ...]
# Needs (carried, ignored): .device/common/{llama-src.tar.xz, deps/usr (nlohmann,
# CLI11, fmt headers + libfmt + CMake configs), docs-en-calib.txt} and
# .device/m-*/NAME-F16.gguf. Builds in build-cuda/ (ignored, kept while the
# machine stays warm, so a second call skips the build). docs/gpu.md.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"; cd "$root"
OUT="${OUT:-/tmp/cb-out}"; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
D="$root/.device/common"
B="$root/build-cuda"
mkdir -p "$B"
export CEREBELLUM_CACHE="$B/cache"
ts() { date +%s; }
T0=$(ts)
echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nvcc --version | tail -2; cmake --version | head -1; g++ --version | head -1; nproc

echo "== llama.cpp source"
if [ ! -f "$B/llama-src/CMakeLists.txt" ]; then
  mkdir -p "$B/llama-src" && tar -xJf "$D/llama-src.tar.xz" -C "$B/llama-src" || exit 1
fi
echo "== setup.sh --cuda --cuda-arch 90 (cached after the first call)"
t=$(ts)
CB_SKIP_APT=1 BUILD_DIR="$B/cb" JOBS="$(nproc)" \
  CB_CMAKE_ARGS="-DCB_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH=$D/deps/usr" \
  bash scripts/setup.sh --cuda --cuda-arch 90 --source "$B/llama-src" || {
    tail -50 "$CEREBELLUM_CACHE"/.work-*/build.log 2>/dev/null; exit 1; }
echo "build: $(( $(ts) - t )) s"
LLAMA_PREFIX=$(ls -d "$CEREBELLUM_CACHE"/llama.cpp-*-cuda-90-* | head -1)
export LD_LIBRARY_PATH="$D/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ls "$LLAMA_PREFIX/lib"; cat "$LLAMA_PREFIX/BACKEND"
ldd "$B/cb/cerebellum" | grep -E 'ggml|llama|fmt|cuda' || true

mkdir -p "$B/models"
for f in "$root"/.device/m-*/*.gguf; do [ -f "$f" ] && ln -sf "$f" "$B/models/"; done
ls -la "$B/models"

echo "== bench"
CB="$B/cb/cerebellum" LLAMA_BIN="$LLAMA_PREFIX/bin" MODELS_DIR="$B/models" \
  TEXT="$D/docs-en-calib.txt" WORK="$B/work" SUMMARY="$OUT/summary.txt" \
  bash bench/gpu_bench.sh "$@"
echo "== results"
for n in "$@"; do
  for tag in gpu cpu; do
    j="$B/work/$n/sweep-$tag/$n.$tag.jsonl"; [ -f "$j" ] && cp "$j" "$OUT/"
  done
  [ -f "$B/work/$n/compare.json" ] && cp "$B/work/$n/compare.json" "$OUT/$n.compare.json"
done
(cd "$B/work" && tar -czf "$OUT/logs.tgz" --exclude='*.gguf' --exclude='*.jsonl' --exclude='*.refstore*' --exclude='*.bin' . 2>/dev/null)
echo "total $(( $(ts) - T0 )) s"
