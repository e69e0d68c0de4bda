# Sourced by the GPU machine's bench scripts (bench/gpu/*.sh; $root = repo,
# $OUT set): builds the pinned llama.cpp with CUDA and Cerebellum against it
# into $B (build-cuda/, kept while the machine stays warm; later calls rebuild
# only what changed) and lays the carried copies of the shared files out in
# ../shared. Needs (carried, ignored): .device/common/{llama-src.tar.xz,
# deps/usr, cb-dense-12l-F16.gguf, docs-en-calib.txt, wiki.test.raw}.
D="$root/.device/common"
B="$root/build-cuda"
mkdir -p "$B"
export CEREBELLUM_CACHE="$B/cache"
# RE2 comes as a carried Debian package (its re2.pc made relative to itself).
export PKG_CONFIG_PATH="$D/deps/usr/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader; nproc; df -h "$root" | tail -1
if [ ! -x "$B/cb/cerebellum" ] || [ ! -x "$B/cb/cb-gen-model" ]; then
  t=$(date +%s)
  [ -f "$B/llama-src/CMakeLists.txt" ] || { mkdir -p "$B/llama-src" && tar -xJf "$D/llama-src.tar.xz" -C "$B/llama-src"; }
  CB_SKIP_APT=1 BUILD_DIR="$B/cb" JOBS="$(nproc)" \
    CB_CMAKE_ARGS="-DCB_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH=$D/deps/usr" \
    bash scripts/setup.sh --cuda --cuda-arch 90 --source "$B/llama-src" >"$OUT/build.log" 2>&1 || {
      tail -40 "$OUT/build.log"; tail -40 "$CEREBELLUM_CACHE"/.work-*/build.log 2>/dev/null; exit 1; }
  echo "build: $(( $(date +%s) - t )) s"
else
  # The tree is re-sent each call: rebuild only what changed.
  cmake --build "$B/cb" -j "$(nproc)" >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
fi
export LD_LIBRARY_PATH="$D/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# memory_scaling.sh reads ../shared: lay out the carried copies there.
mkdir -p "$root/../shared/models" "$root/../shared/data/wikitext-2-raw"
cp -n "$D/cb-dense-12l-F16.gguf" "$root/../shared/models/" 2>/dev/null
cp -n "$D/docs-en-calib.txt" "$root/../shared/data/" 2>/dev/null
cp -n "$D/wiki.test.raw" "$root/../shared/data/wikitext-2-raw/" 2>/dev/null
