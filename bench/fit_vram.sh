#!/usr/bin/env bash
# Deployment budgets, checked on the device (issue 17): `cerebellum quantize
# --fit SPEC` plans and builds a file for "SIZE at CONTEXT", then stock
# llama-perplexity runs one CONTEXT-token chunk (one prompt of that length)
# with the llama.cpp arguments the plan printed, for ours and for the largest
# stock mix that fits the same deployment (the gate's baseline), side by
# side: bytes, weight budget used, llama.cpp's breakdown after load, and the
# peak VRAM / RSS read from the system (bench/peak_mem.py).
#
#   bash bench/fit_vram.sh --model M.gguf --fit 8GiB@8192 [--text T] [--eval-text E]
#        [--cb BIN] [--llama-bin DIR] [--work DIR] [--no-measure] [--margin 1GiB] [--tag NAME]
# For generated models (random weights) quality numbers mean nothing: pass
# --no-measure and read only the memory columns. Prints a table; the same
# as JSON in WORK/fit_vram-TAG.json.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
CB="$here/build/cerebellum"
LLAMA_BIN=""
MODEL=""; FIT=""; TAG="fit"
TEXT="$here/../shared/data/docs-en-calib.txt"
EVAL="$here/../shared/data/wikitext-2-raw/wiki.test.raw"
WORK="/tmp/cb-fit-vram"; MEASURE_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift ;;
    --fit) FIT="$2"; shift ;;
    --text) TEXT="$2"; shift ;;
    --eval-text) EVAL="$2"; shift ;;
    --cb) CB="$2"; shift ;;
    --llama-bin) LLAMA_BIN="$2"; shift ;;
    --work) WORK="$2"; shift ;;
    --tag) TAG="$2"; shift ;;
    --margin) MEASURE_ARGS+=(--margin "$2"); shift ;;
    --no-measure) MEASURE_ARGS+=(--no-measure --search-evals 0 --correction-rounds 0) ;;
    *) echo "fit_vram: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$MODEL" ] && [ -n "$FIT" ] || { echo "usage: fit_vram.sh --model M.gguf --fit SPEC" >&2; exit 2; }
[ -n "$LLAMA_BIN" ] || { source "$here/bench/llama_bin.sh"; LLAMA_BIN="$(stock_bin "$(dirname "$CB")")" || exit 2; }
mkdir -p "$WORK"
W="$WORK/$TAG"; rm -rf "$W"; mkdir -p "$W"
ctx="${FIT##*@}"; ctx="${ctx,,}"; [ "${ctx%k}" != "$ctx" ] && ctx=$(( ${ctx%k} * 1024 ))

echo "== quantize --fit $FIT"
python3 "$here/bench/peak_mem.py" "$W/quantize.mem.json" -- \
  "$CB" quantize --source "$MODEL" --fit "$FIT" "${MEASURE_ARGS[@]}" --no-rivals --eval-chunks 2 --force \
  --gpu-layers 999 --text "$TEXT" --eval-text "$EVAL" --out "$W/ours.gguf" --run-dir "$W/run" >"$W/quantize.log" 2>&1
rc=$?
grep -E "^fit|^run it|verified|budget" "$W/quantize.log" | grep -v '^{'
[ "$rc" = 0 ] || { tail -20 "$W/quantize.log"; exit "$rc"; }
args=$(python3 -c "import json; print(json.load(open('$W/run/fit.json'))['projection']['llama_args'])")
preset=$(python3 -c "import json; print(json.load(open('$W/run/quantize.json'))['baseline_preset'])")
echo "== stock $preset (the largest stock mix that fits) with llama-quantize"
"$LLAMA_BIN/llama-quantize" "$MODEL" "$W/stock.gguf" "$preset" >"$W/stock-quantize.log" 2>&1 || {
  tail -5 "$W/stock-quantize.log"; exit 1; }

# One chunk of ctx tokens, the deployment's arguments (eval -c is the chunk).
for who in ours stock; do
  echo "== llama-perplexity $args --chunks 1 ($who)"
  eval "set -- $args"
  python3 "$here/bench/peak_mem.py" "$W/$who.mem.json" -- \
    "$LLAMA_BIN/llama-perplexity" -m "$W/$who.gguf" -f "$EVAL" --chunks 1 -nr "$@" >"$W/$who.ppl.log" 2>&1
  grep -E "^\[1\]|Final estimate|failed|error" "$W/$who.ppl.log" | tail -2
done

python3 - "$W" "$FIT" "$ctx" "$preset" "$args" <<'PY'
import json, os, sys
w, fit, ctx, preset, args = sys.argv[1:]
f = json.load(open(f"{w}/run/fit.json"))
proj = {p["pool"]: p for p in f["projection"]["pools"]}
ver = {p["pool"]: p for p in f["verified"]["pools"]}
rows = []
for who, path in (("ours (--fit)", "ours"), (f"stock {preset}", "stock")):
    mem = json.load(open(f"{w}/{path}.mem.json"))
    log = open(f"{w}/{path}.ppl.log", errors="replace").read()
    rows.append({"model": who, "file_bytes": os.path.getsize(f"{w}/{path}.gguf"),
                 "ran_prompt": "[1]" in log and mem["exit"] == 0,
                 "peak_vram_mb": mem["vram_mb"], "peak_rss_mb": mem["rss_mb"], "peak_anon_mb": mem["anon_mb"],
                 "seconds": mem["seconds"]})
out = {"fit": fit, "context_tokens": int(ctx), "llama_args": args, "projection": f["projection"],
       "verified": f["verified"], "runs": rows, "quantize": json.load(open(f"{w}/quantize.mem.json"))}
json.dump(out, open(f"{w}/../fit_vram-{os.path.basename(w)}.json", "w"), indent=2)
mib = lambda b: f"{b / 2**20:,.1f} MiB"
print(f"\n--fit {fit}: llama.cpp args {args}")
for name, p in proj.items():
    v = ver.get(name, {})
    cap = p.get("capacity_bytes")
    print(f"  pool {name}: capacity {mib(cap) if cap else 'unbounded'}, margin {mib(p.get('margin_bytes', 0))}; "
          f"weights {mib(p['weight_bytes'])} of a {mib(p['weight_budget_bytes']) if cap else '-'} weight budget"
          f" ({100 * p.get('weight_budget_used', 0):.1f}% used); projected {mib(p['projected_total_bytes'])}, "
          f"llama.cpp after load {mib(v.get('measured_bytes', 0))}")
print(f"\n{'model':<22} {'file':>12} {'prompt':>8} {'peak VRAM':>11} {'peak RSS':>10} {'seconds':>8}")
for r in rows:
    vram = f"{r['peak_vram_mb']:,} MiB" if r["peak_vram_mb"] is not None else "n/a"
    print(f"{r['model']:<22} {mib(r['file_bytes']):>12} {('ok' if r['ran_prompt'] else 'FAILED'):>8} "
          f"{vram:>11} {r['peak_rss_mb']:>6,} MiB {r['seconds']:>8.1f}")
PY
