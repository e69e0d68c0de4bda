#!/usr/bin/env bash
# ASan + UBSan (clang) build of the library, the unit tests and the libFuzzer
# targets in $CB_SAN_BUILD (default build-san); then the model-free unit tests
# under the sanitizers and a short fuzz smoke run (bench/fuzz.sh, 10 s a target).
#   scripts/sanitize.sh [--build-only]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${CB_SAN_BUILD:-build-san}"
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${CB_SKIP_APT:-0}" != 1 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
LLAMA_PREFIX=$(bash scripts/setup-llama.sh | tail -n1)
# -O1: the sanitizers' usual speed/visibility trade-off.
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 \
  -DCMAKE_C_FLAGS_RELEASE=-O1 -DLLAMA_PREFIX="$LLAMA_PREFIX" -DCB_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
[ "${1:-}" = --build-only ] && exit 0

# Unit tests: the suites of src/**/*_test.cc (no CLI runs, no stock tools).
suites=$(grep -rhoE '^TEST(_F)?\([A-Za-z0-9_]+' src --include='*_test.cc' | sed -E 's/.*\(//' | sort -u |
         sed 's/$/.*/' | paste -sd: -)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp"
"$BUILD/cerebellum_tests" --gtest_filter="$suites" --gtest_brief=1
echo "[sanitize] unit tests clean under ASan + UBSan" >&2
bash bench/fuzz.sh --seconds "${CB_FUZZ_SECONDS:-10}" --build "$BUILD"
echo "[sanitize] fuzz smoke clean" >&2
