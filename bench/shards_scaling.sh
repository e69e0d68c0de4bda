#!/usr/bin/env bash
# Issue 16: one sweep as one process and as N shards (`measure --shard K/N`,
# what a Slurm job array runs, one per GPU), side by side in one run, on a
# generated model of realistic shape (random weights: time and memory only)
# or a cb model. The reference stores are made once (`--reference-only`) and
# read by every run (`--shared-reference`), as shards on a cluster would.
# Prints wall seconds and peak RSS per process, units per shard, the merge,
# and whether the merged ΔKLD equal the single process's (bit-equal expected:
# same stores, deterministic CPU path). JSON: WORK/shards_scaling.json.
#
#   bash bench/shards_scaling.sh [--model gen:0.2b|dense|PATH] [--shards 2] [--threads 2]
#                                [--tensors REGEX] [--work DIR] [--ctx 128] [--chunks 2-4]
#                                [--gpu-layers N] [--generate-only] [--share-single]
#                                [--shard-threads N] [--lanes N] [--prefetch-mib N]
# The single process gets --threads; each shard gets threads/shards (at least
# 1), so both use the same cores: on one machine the shards' gain is only
# what they save over threading; on a cluster each shard has its own GPU.
# --share-single: also one process with one shard's --threads, alone on the
# host (its converter and its scoring each take that many threads, so
# together they may use more cores), and the speedup of the shards over it. --shard-threads N: each
# shard's threads instead (e.g. all of the host's, as `measure` takes by
# default: the shards then share every core, each converting on the cores
# the others leave idle). --lanes N: every process's `measure --lanes N`
# (default: measure's own, two contexts on a GPU); --prefetch-mib N: every
# process's `measure --prefetch-mib N` (default: measure's own).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED="$(cd .. && pwd)/shared"
MODEL="gen:0.2b" SHARDS=2 THREADS=2 TENSORS='blk\.[0-3]\.' WORK="${TMPDIR:-/tmp}/cb-shards-scaling" NGL=0
GEN_ONLY=0 CTX=128 MIN_CHUNKS=2 MAX_CHUNKS=4 SHARE_SINGLE=0 SHARD_THREADS=0 LANES=0 PREFETCH_MIB=
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift ;;
    --shards) SHARDS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --tensors) TENSORS="$2"; shift ;;
    --work) WORK="$2"; shift ;;
    --gpu-layers) NGL="$2"; shift ;;  # every process offloads; shard K on GPU K, the rest on GPU 0
    --generate-only) GEN_ONLY=1 ;;
    --share-single) SHARE_SINGLE=1 ;;
    --shard-threads) SHARD_THREADS="$2"; shift ;;
    --lanes) LANES="$2"; shift ;;
    --prefetch-mib) PREFETCH_MIB="$2"; shift ;;
    --ctx) CTX="$2"; shift ;;
    --chunks) MIN_CHUNKS="${2%-*}"; MAX_CHUNKS="${2#*-}"; shift ;;  # MIN-MAX
    *) echo "shards_scaling.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
BUILD="${CB_BUILD:-$ROOT/build}"
CB="$BUILD/cerebellum"
mkdir -p "$WORK"
case "$MODEL" in
  dense) F16="$SHARED/models/cb-dense-12l-F16.gguf" ;;
  gen:*) F16="$WORK/gen-${MODEL#gen:}-F16.gguf"
         [ -f "$F16" ] || "$BUILD/cb-gen-model" --preset "${MODEL#gen:}" \
           --vocab-from "$SHARED/models/cb-dense-12l-F16.gguf" --out "$F16" --threads "$THREADS" >/dev/null ;;
  *) F16="$MODEL" ;;
esac
[ "$GEN_ONLY" = 1 ] && { ls -la "$F16"; exit 0; }
PER_SHARD=$(( THREADS / SHARDS )); [ "$PER_SHARD" -ge 1 ] || PER_SHARD=1
[[ "$SHARD_THREADS" =~ ^[0-9]+$ ]] || { echo "shards_scaling.sh: --shard-threads wants a number, not '$SHARD_THREADS'" >&2; exit 2; }
[ "$SHARD_THREADS" -gt 0 ] && PER_SHARD=$SHARD_THREADS
rm -f "$WORK"/*.jsonl "$WORK"/*.ref "$WORK"/*.mem "$WORK"/*.base.gguf "$WORK"/*.lock
sweep() {  # sweep OUT THREADS EXTRA...
  local out="$1" threads="$2"; shift 2
  "$CB" -q measure --source "$F16" --base Q4_K_M --text "$SHARED/data/docs-en-calib.txt" --domain en \
    --plan tensors --targets q2_K --promote q6_K --tensors "$TENSORS" --ctx "$CTX" --min-chunks "$MIN_CHUNKS" --max-chunks "$MAX_CHUNKS" \
    --threads "$threads" --gpu-layers "$NGL" --lanes "$LANES" ${PREFETCH_MIB:+--prefetch-mib "$PREFETCH_MIB"} --out "$out" "$@"
}
gpu() { [ "$NGL" = 0 ] && echo "" || echo "CUDA_VISIBLE_DEVICES=$1"; }
export -f sweep; export CB F16 SHARED TENSORS NGL CTX MIN_CHUNKS MAX_CHUNKS LANES PREFETCH_MIB
t0=$(date +%s.%N)
python3 bench/peak_mem.py "$WORK/reference.mem" -- bash -c "$(gpu 0) sweep '$WORK/ref.jsonl' $THREADS --reference-only" >"$WORK/reference.out" 
t1=$(date +%s.%N)
python3 bench/peak_mem.py "$WORK/single.mem" -- bash -c "$(gpu 0) sweep '$WORK/single.jsonl' $THREADS --shared-reference '$WORK/ref.jsonl'" >"$WORK/single.out" 
t2=$(date +%s.%N)
pids=()
for ((k = 0; k < SHARDS; k++)); do
  python3 bench/peak_mem.py "$WORK/shard$k.mem" -- bash -c \
    "$(gpu $k) sweep '$WORK/shard$k.jsonl' $PER_SHARD --shard $k/$SHARDS --shared-reference '$WORK/ref.jsonl'" >"$WORK/shard$k.out" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t3=$(date +%s.%N)
shard_files=()
for ((k = 0; k < SHARDS; k++)); do shard_files+=("$WORK/shard$k.jsonl"); done
"$CB" -q measure merge "${shard_files[@]}" --out "$WORK/merged.jsonl" >"$WORK/merge.json"
t4=$(date +%s.%N)
# MPI (when the build has it): the same N processes, units handed out dynamically.
t5=$t4
if grep -q '^CB_MPI:BOOL=ON' "$BUILD/CMakeCache.txt" && command -v mpirun >/dev/null; then
  cp "$WORK/ref.jsonl.en.ref" "$WORK/mpi.jsonl.en.ref"  # the same stores: rank 0's pass finds them done
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 python3 bench/peak_mem.py "$WORK/mpi.mem" -- \
    mpirun --oversubscribe -np "$SHARDS" bash -c "sweep '$WORK/mpi.jsonl' $PER_SHARD" >/dev/null
  t5=$(date +%s.%N)
fi
t6=0 t7=0
if [ "$SHARE_SINGLE" = 1 ]; then
  t6=$(date +%s.%N)
  python3 bench/peak_mem.py "$WORK/single_share.mem" -- bash -c "$(gpu 0) sweep '$WORK/single_share.jsonl' $PER_SHARD --shared-reference '$WORK/ref.jsonl'" >"$WORK/single_share.out"
  t7=$(date +%s.%N)
fi
python3 - "$WORK" "$SHARDS" "$THREADS" "$PER_SHARD" "$F16" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" <<'EOF'
import json, os, sys
work, shards, threads, per_shard, model = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t = [float(x) for x in sys.argv[6:14]]
t_share = t[7] - t[6]
def journal(path):
    recs = [json.loads(l) for l in open(path) if l.strip()]
    return {(r["domain"], r["direction"], r["unit"]["id"], json.dumps(r["types"], sort_keys=True)): r["delta_kld"]
            for r in recs if r.get("kind") == "measurement"}
mem = lambda name: json.load(open(os.path.join(work, name + ".mem")))
single = journal(os.path.join(work, "single.jsonl"))
merged = journal(os.path.join(work, "merged.jsonl"))
per = [len(journal(os.path.join(work, f"shard{k}.jsonl"))) for k in range(shards)]
rows = [("reference (--reference-only)", t[1] - t[0], threads, mem("reference"), None),
        ("single process", t[2] - t[1], threads, mem("single"), len(single))]
rows += [(f"shard {k}/{shards}", None, per_shard, mem(f"shard{k}"), per[k]) for k in range(shards)]
print(f"model {os.path.basename(model)} ({os.path.getsize(model) / 1e9:.2f} GB F16)")
print(f"{'run':<30} {'threads':>7} {'units':>6} {'wall s':>8} {'peak RSS MB':>12} {'anon MB':>8}")
for name, secs, th, m, units in rows:
    w = f"{secs:8.1f}" if secs is not None else f"{m['seconds']:8.1f}"
    print(f"{name:<30} {th:>7} {units if units is not None else '':>6} {w} {m['rss_mb']:>12} {m['anon_mb']:>8}")
print(f"{'shards (all, concurrently)':<30} {'':>7} {sum(per):>6} {t[3] - t[2]:8.1f}")
# How many of the host's CPUs each run kept busy (CPU seconds / wall seconds).
ncpu = len(os.sched_getaffinity(0))
cores = lambda cpu_s, wall: f"{cpu_s / wall:.1f} of {ncpu} CPUs busy" if cpu_s is not None and wall > 0 else "n/a"
print(f"CPU: single process {cores(mem('single').get('cpu_s'), t[2] - t[1])}; shards together "
      f"{cores(sum(mem(f'shard{k}').get('cpu_s') or 0 for k in range(shards)), t[3] - t[2])}")
print(f"speedup, single process / shards: {(t[2] - t[1]) / (t[3] - t[2]):.2f}x with {shards} shards")
share = None
if t_share > 0:
    share = journal(os.path.join(work, "single_share.jsonl"))
    m = mem("single_share")
    rows.append(("single process, one GPU's share", t_share, per_shard, m, len(share)))
    print(f"{rows[-1][0]:<30} {per_shard:>7} {len(share):>6} {t_share:8.1f} {m['rss_mb']:>12} {m['anon_mb']:>8}")
    print(f"speedup, single process with {per_shard} threads / shards: {t_share / (t[3] - t[2]):.2f}x "
          f"(bit-equal ΔKLD: {share == single})")
# Where each sweep's evaluation time went (measure's eval_split_s), per unit.
split = {}
runs = [("single", len(single))] + [(f"shard{k}", per[k]) for k in range(shards)]
runs += [("single_share", len(share))] if share is not None else []
for name, units in runs:
    out = json.load(open(os.path.join(work, name + ".out")))
    e = dict(out.get("eval_split_s", {}))
    if e and units:
        # swaps: the caller waiting for (or doing) conversions, restoring, uploading;
        # the rest of the sweep's time: the baseline, planning, the journal
        e["other"] = out["elapsed_s"] - e["decode"] - e["rows"] - e["score"] - e.get("swap", 0)
        print(f"  {name:<12} per unit: decode {e['decode'] / units:.3f} s, rows {e['rows'] / units:.3f} s, "
              f"scoring {e['score'] / units:.3f} s, swaps {e.get('swap', 0) / units:.3f} s, "
              f"other {e['other'] / units:.3f} s ({e['decodes']} decodes, {e.get('overlapped_scorings', 0)} last scorings overlapped); "
              f"background converter busy {e.get('convert_ahead', 0) / units:.3f} s")
    split[name] = e
print(f"merge: {len(merged)} units in {t[4] - t[3]:.1f} s; same units as the single process: {set(merged) == set(single)}; "
      f"bit-equal ΔKLD: {merged == single}")
mpi = None
if t[5] > t[4]:
    mpi = journal(os.path.join(work, "mpi.jsonl"))
    m = mem("mpi")
    print(f"{'mpirun -np ' + str(shards):<30} {per_shard:>7} {len(mpi):>6} {t[5] - t[4]:8.1f} {m['rss_mb']:>12} {m['anon_mb']:>8}"
          f"   (all ranks; bit-equal ΔKLD: {mpi == single})")
json.dump({"model": model, "lanes": int(os.environ.get("LANES", "0")), "prefetch_mib": os.environ.get("PREFETCH_MIB") or None, "shards": shards, "threads_single": threads, "threads_per_shard": per_shard,
           "reference_s": t[1] - t[0], "single_s": t[2] - t[1], "shards_wall_s": t[3] - t[2], "merge_s": t[4] - t[3],
           "speedup": (t[2] - t[1]) / (t[3] - t[2]), "single_share_s": t_share or None,
           "speedup_vs_share": (t_share / (t[3] - t[2])) if t_share else None, "units_single": len(single), "units_per_shard": per, "same_units": set(merged) == set(single),
           "bit_equal": merged == single, "mpi_s": (t[5] - t[4]) if mpi is not None else None,
           "mpi_bit_equal": (mpi == single) if mpi is not None else None,
           "eval_split_s": split, "peak": {r[0]: r[3] for r in rows}}, open(os.path.join(work, "shards_scaling.json"), "w"), indent=2)
EOF
