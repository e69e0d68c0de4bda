#!/usr/bin/env bash
# Decode speed as a constraint (issue 17 item 4), side by side in one run:
# stock Q4_K_M's decode speed measured on this machine is the floor; our plan
# at Q4_K_M's bytes without and with `--min-decode-speed FLOOR`; each built,
# its decode speed measured (`cerebellum speed`, llama-bench's tg) and its
# KLD against the F16 on held-out text (`cerebellum eval`).
#
#   bash bench/speed_floor.sh [--model M.gguf] [--measurements M.jsonl | --proxy]
#        [--threads 2] [--reps 5] [--chunks 20] [--work DIR] [--cb BIN]
#        [--gpu-layers N] [--constraints C.json] [--quant-error none] [--no-kld]
# Prints the table; JSON in WORK/speed_floor.json. The speed table itself is
# measured (and cached) by allocate on first use, where the speeds are timed
# (--gpu-layers 999: on the GPU). --no-kld for generated models (random
# weights: their KLD means nothing).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
CB="$here/build/cerebellum"
MODEL="$here/../shared/models/cb-dense-12l-F16.gguf"
EVAL="$here/../shared/data/wikitext-2-raw/wiki.test.raw"
SOURCE_ARGS=(--proxy); THREADS=2; REPS=5; CHUNKS=20; WORK=/tmp/cb-speed-floor; NGL=0; ALLOC_ARGS=(); KLD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift ;;
    --measurements) SOURCE_ARGS=(--measurements "$2"); shift ;;
    --proxy) SOURCE_ARGS=(--proxy) ;;
    --threads) THREADS="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --chunks) CHUNKS="$2"; shift ;;
    --work) WORK="$2"; shift ;;
    --cb) CB="$2"; shift ;;
    --gpu-layers) NGL="$2"; shift ;;
    --constraints) ALLOC_ARGS+=(--constraints "$2"); shift ;;
    --quant-error) ALLOC_ARGS+=(--quant-error "$2"); shift ;;
    --no-kld) KLD=0 ;;
    *) echo "speed_floor: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$WORK"
speed() { "$CB" -q speed --model "$1" --threads "$THREADS" --reps "$REPS" --pp 64 --tg 128 --gpu-layers "$NGL" >"$2"; }
kld() { "$CB" -q eval --model "$1" --reference "$MODEL" --reference-store "$WORK/ref.bin" --text "$EVAL" \
          --chunks "$CHUNKS" --threads "$THREADS" --json >"$2"; }

"$CB" -q build --source "$MODEL" --base Q4_K_M --out "$WORK/stock.gguf" >/dev/null
speed "$WORK/stock.gguf" "$WORK/stock.speed.json"
floor=$(python3 -c "import json; print(round(json.load(open('$WORK/stock.speed.json'))['tg_tokens_per_s'], 2))")
echo "floor: stock Q4_K_M decodes at $floor tokens/s ($THREADS threads, -ngl $NGL)"
for who in free floor; do
  extra=(); [ "$who" = floor ] && extra=(--min-decode-speed "$floor")
  "$CB" allocate "${SOURCE_ARGS[@]}" --source "$MODEL" --budget Q4_K_M --threads "$THREADS" --gpu-layers "$NGL" \
    "${ALLOC_ARGS[@]}" "${extra[@]}" \
    --out "$WORK/$who.plan.json" --tensor-types "$WORK/$who.tt.txt" 2>"$WORK/$who.allocate.log"
  grep -E "^speed|speed table" "$WORK/$who.allocate.log" || true
  "$CB" -q build --source "$MODEL" --recipe "$WORK/$who.tt.txt" --out "$WORK/$who.gguf" >/dev/null
  speed "$WORK/$who.gguf" "$WORK/$who.speed.json"
done
for who in stock free floor; do
  if [ "$KLD" = 1 ]; then kld "$WORK/$who.gguf" "$WORK/$who.kld.json"; else echo '{}' >"$WORK/$who.kld.json"; fi
done

python3 - "$WORK" "$floor" <<'PY'
import json, os, sys
w, floor = sys.argv[1], float(sys.argv[2])
rows = []
for who, name in (("stock", "stock Q4_K_M"), ("free", "ours, no floor"), ("floor", f"ours, --min-decode-speed {floor:g}")):
    sp = json.load(open(f"{w}/{who}.speed.json"))
    kl = json.load(open(f"{w}/{who}.kld.json")) or {"kld": {}}
    pred = None
    if who != "stock":
        plan = json.load(open(f"{w}/{who}.plan.json"))
        pred = plan.get("speed", {}).get("predicted_tokens_per_s")
    k = kl.get("kld", kl)
    rows.append({"model": name, "bytes": os.path.getsize(f"{w}/{who}.gguf"), "tg": sp["tg_tokens_per_s"],
                 "tg_sd": sp["tg_tokens_per_s_sd"], "predicted_tg": pred,
                 "kld_mean": k.get("mean") if isinstance(k, dict) else None})
json.dump({"floor_tokens_per_s": floor, "rows": rows}, open(f"{w}/speed_floor.json", "w"), indent=2)
print(f"\n{'model':<34} {'bytes':>10} {'decode t/s (measured)':>22} {'predicted':>10} {'KLD vs F16':>11}")
for r in rows:
    pred = f"{r['predicted_tg']:.1f}" if r["predicted_tg"] else "-"
    kld = f"{r['kld_mean']:.5f}" if r["kld_mean"] is not None else "?"
    print(f"{r['model']:<34} {r['bytes']:>10} {r['tg']:>14.1f} ± {r['tg_sd']:<5.1f} {pred:>10} {kld:>11}")
PY
