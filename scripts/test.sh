#!/usr/bin/env bash
# Runs the whole test suite (unit + integration on ../shared) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
# The suite includes the MPI sweep (mpirun -np 2): it asks the setup for OpenMPI.
if [ ! -x "$BUILD_DIR/cerebellum_tests" ] || ! grep -q '^CB_MPI:BOOL=ON' "$BUILD_DIR/CMakeCache.txt"; then
  CB_MPI=1 bash scripts/setup.sh
fi
cmake --build "$BUILD_DIR" -j "$(nproc)" >/dev/null
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
