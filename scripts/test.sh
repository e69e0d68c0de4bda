#!/usr/bin/env bash
# Runs the whole test suite (unit + integration on ../shared) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
[ -x "$BUILD_DIR/cerebellum_tests" ] || bash scripts/setup.sh
cmake --build "$BUILD_DIR" -j "$(nproc)" >/dev/null
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
