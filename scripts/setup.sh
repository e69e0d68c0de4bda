#!/usr/bin/env bash
# Installs what the project needs (Debian packages), builds/caches the pinned
# llama.cpp (scripts/setup-llama.sh) and builds Cerebellum into ./build.
# Options are passed to setup-llama.sh (--cuda, --cuda-arch N, --source DIR, --prefix DIR).
# GPU: bash scripts/setup.sh --cuda --cuda-arch 90   (docs/gpu.md)
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools: checked by command (they may come from elsewhere, e.g. npm with node).
declare -A TOOLS=([cmake]=cmake [ninja]=ninja-build [g++]=g++ [git]=git [npm]=npm
                  [python3]=python3 [patchelf]=patchelf)
LIBS=(nlohmann-json3-dev libcli11-dev libfmt-dev libgtest-dev libbenchmark-dev libssl-dev libre2-dev pkg-config)
# CB_MPI=1: also Debian's OpenMPI, and the build gets MPI sweeps (`mpirun -np N
# cerebellum measure`, docs/measure.md). The default build does not need it.
if [ "${CB_MPI:-0}" = 1 ]; then
  LIBS+=(libopenmpi-dev openmpi-bin)
  CB_CMAKE_ARGS="${CB_CMAKE_ARGS:-} -DCB_MPI=ON"
fi
missing=()
# CB_SKIP_APT=1: check nothing, install nothing (machines without a registry;
# pass dependency prefixes through CB_CMAKE_ARGS="-DCMAKE_PREFIX_PATH=...").
[ "${CB_SKIP_APT:-0}" = 1 ] && { TOOLS=(); LIBS=(); }
for t in "${!TOOLS[@]}"; do command -v "$t" >/dev/null || missing+=("${TOOLS[$t]}"); done
for p in "${LIBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

LLAMA_PREFIX=$(bash scripts/setup-llama.sh "$@" | tail -n1)
echo "[setup] llama.cpp: $LLAMA_PREFIX" >&2
BUILD_DIR="${BUILD_DIR:-build}"
# shellcheck disable=SC2086  # CB_CMAKE_ARGS: extra cmake arguments, word-split
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_PREFIX="$LLAMA_PREFIX" \
  ${CB_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "[setup] built $BUILD_DIR/cerebellum" >&2
