#!/usr/bin/env bash
# Obtain, build and cache the pinned llama.cpp (ggml engine + stock tools).
#
# The pin: llama.cpp commit de3ff815 as shipped inside the npm package
# node-llama-cpp@3.22.1 (llama/gitRelease.bundle). Built once per
# (commit, backend, CPU features) into $CEREBELLUM_CACHE and reused.
#
# Usage: scripts/setup-llama.sh [--cuda] [--cuda-arch 90] [--source DIR] [--prefix DIR]
#   --source DIR   build this llama.cpp source tree instead of the pinned one
#   --prefix DIR   use an installed llama.cpp (include/llama.h, lib/libllama.so) as is
# Prints the install prefix on the last line of stdout.
set -euo pipefail

PIN_NPM="node-llama-cpp@3.22.1"
PIN_COMMIT="de3ff815ea7d559ee917f063901b8986f038abc6"
CACHE="${CEREBELLUM_CACHE:-$HOME/.cache/cerebellum}"
BACKEND=cpu
CUDA_ARCH="${CUDA_ARCH:-native}"
SOURCE=""
PREFIX=""
JOBS="${JOBS:-$(nproc)}"

while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) BACKEND=cuda ;;
    --cuda-arch) CUDA_ARCH="$2"; shift ;;
    --source) SOURCE="$(cd "$2" && pwd)"; shift ;;
    --prefix) PREFIX="$(cd "$2" && pwd)"; shift ;;
    *) echo "setup-llama: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[setup-llama] $*" >&2; }

if [ -n "$PREFIX" ]; then
  [ -f "$PREFIX/include/llama.h" ] || { log "no include/llama.h under $PREFIX"; exit 1; }
  echo "$PREFIX"; exit 0
fi

# Key the cache by what changes the binaries: source, backend, and CPU
# features (a GGML_NATIVE build is only valid on a CPU with the same flags).
cpu_key=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-8)
if [ -n "$SOURCE" ]; then
  src_key="src-$(echo "$SOURCE" | sha256sum | cut -c1-8)"
else
  src_key="${PIN_COMMIT:0:8}"
fi
key="llama.cpp-${src_key}-${BACKEND}"
[ "$BACKEND" = cuda ] && key="${key}-${CUDA_ARCH}"
key="${key}-${cpu_key}"
DEST="$CACHE/$key"

if [ -f "$DEST/.complete" ]; then
  log "cached build: $DEST"
  echo "$DEST"; exit 0
fi

mkdir -p "$CACHE"
WORK="$CACHE/.work-$key"
rm -rf "$WORK"; mkdir -p "$WORK"

if [ -z "$SOURCE" ]; then
  log "fetching $PIN_NPM with npm pack"
  (cd "$WORK" && npm pack --silent "$PIN_NPM" >/dev/null)
  tar -xzf "$WORK"/node-llama-cpp-*.tgz -C "$WORK" package/llama/gitRelease.bundle
  git clone -q "$WORK/package/llama/gitRelease.bundle" "$WORK/src" 2>/dev/null
  got=$(git -C "$WORK/src" rev-parse HEAD)
  [ "$got" = "$PIN_COMMIT" ] || { log "bundle is at $got, expected $PIN_COMMIT"; exit 1; }
  SOURCE="$WORK/src"
fi

cmake_args=(
  -S "$SOURCE" -B "$WORK/build" -G Ninja
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DGGML_NATIVE=ON
  -DGGML_CCACHE=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
  -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON
  -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON
)
if [ "$BACKEND" = cuda ]; then
  cmake_args+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH")
fi
command -v ninja >/dev/null || { log "ninja not found"; exit 1; }
log "configuring ($BACKEND) in $WORK/build"
cmake "${cmake_args[@]}" >"$WORK/configure.log" 2>&1 || { tail -30 "$WORK/configure.log" >&2; exit 1; }
log "building llama, ggml and stock tools with $JOBS jobs (several minutes on a cold cache)"
cmake --build "$WORK/build" -j "$JOBS" --target llama llama-quantize llama-perplexity llama-imatrix \
  >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; exit 1; }

STAGE="$DEST.tmp"
rm -rf "$STAGE"; mkdir -p "$STAGE/lib" "$STAGE/bin" "$STAGE/include"
# Libraries and tools share lib/ because the tools' build rpath is $ORIGIN;
# bin/ holds symlinks ($ORIGIN resolves through them).
find "$WORK/build" -name '*.so*' \( -type f -o -type l \) -exec cp -a {} "$STAGE/lib/" \;
for t in llama-quantize llama-perplexity llama-imatrix; do
  cp "$WORK/build/bin/$t" "$STAGE/lib/"; ln -s "../lib/$t" "$STAGE/bin/$t"
done
cp "$SOURCE"/include/*.h "$SOURCE"/ggml/include/*.h "$STAGE/include/"
git -C "$SOURCE" rev-parse HEAD >"$STAGE/COMMIT" 2>/dev/null || echo unknown >"$STAGE/COMMIT"
echo "$BACKEND" >"$STAGE/BACKEND"
touch "$STAGE/.complete"
rm -rf "$DEST"; mv "$STAGE" "$DEST"
rm -rf "$WORK"
log "installed into $DEST"
echo "$DEST"
