#!/usr/bin/env bash
# Simulated vs exact single-tensor damage on cb-dense-12l-F16 (issue #3 item 4).
# For each (tensor, type) pair, against the F16 model itself as reference:
#   simulated: the F16 model with that one tensor quantize->dequantized in place
#              (Evaluator::set_tensor_type_simulated; `measure --mode simulated`)
#   exact:     a model built with the real type for that tensor
#              (EvalOptions.tensor_types; `measure --mode exact`)
# Both through `cerebellum measure` with an empty base recipe (= keep the source
# types: F16 weights, F32 norms), fixed chunk count (min = max, no early stop).
# Prints a markdown table (KLD, PPL per mode, relative KLD difference) and the
# Spearman correlation of the two KLD rankings.
#
# usage: bench/sim_vs_exact.sh [--chunks 8] [--top-k 1024] [--threads 1] [--build build]
#          [--work DIR] [--text FILE] [--report-only] [PAIR ...]
#   PAIR = tensor=type (".weight" optional); --report-only re-prints the table of an existing --work
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHUNKS=8 TOPK=1024 THREADS=1 BUILD="$ROOT/build" WORK="" TEXT="" PAIRS=() REPORT_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --chunks) CHUNKS=$2; shift 2 ;;
    --top-k) TOPK=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --text) TEXT=$2; shift 2 ;;
    --report-only) REPORT_ONLY=1; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) PAIRS+=("$1"); shift ;;
  esac
done
if [[ ${#PAIRS[@]} -eq 0 ]]; then
  PAIRS=(blk.2.ffn_down=q2_K blk.5.attn_v=q3_K output=q4_K token_embd=q2_K
         blk.0.ffn_gate=q5_K blk.7.attn_q=q2_K blk.10.ffn_up=q6_K blk.3.attn_k=q3_K)
fi
SHARED="$ROOT/../shared"
MODEL="$SHARED/models/cb-dense-12l-F16.gguf"
TEXT=${TEXT:-"$SHARED/data/docs-en-calib.txt"}
CLI="$BUILD/cerebellum"
WORK=${WORK:-$(mktemp -d /tmp/sim_vs_exact.XXXXXX)}
mkdir -p "$WORK"
echo "work dir: $WORK" >&2
printf '# empty recipe, no preset: keep the source types\n' > "$WORK/f16.txt"

# one measure run per (type, mode), all tensors of that type in one regex
[[ $REPORT_ONLY == 1 ]] && types="" || types=$(for p in "${PAIRS[@]}"; do echo "${p#*=}"; done | sort -u)
for ty in $types; do
  names=()
  for p in "${PAIRS[@]}"; do
    [[ "${p#*=}" == "$ty" ]] || continue
    n=${p%%=*}; [[ "$n" == *.weight ]] || n="$n.weight"; names+=("${n//./\\.}")
  done
  regex="^($(IFS='|'; echo "${names[*]}"))\$"
  for mode in simulated exact; do
    rm -f "$WORK/$mode-$ty.jsonl"*
    "$CLI" measure --source "$MODEL" --base "$WORK/f16.txt" --text "$TEXT" --domain en \
      --plan tensors --targets "$ty" --tensors "$regex" --ctx 512 \
      --min-chunks "$CHUNKS" --max-chunks "$CHUNKS" --top-k "$TOPK" --threads "$THREADS" \
      --mode "$mode" --out "$WORK/$mode-$ty.jsonl" >/dev/null 2>"$WORK/$mode-$ty.log"
    echo "$ty $mode done" >&2
  done
done

python3 - "$WORK" <<'PY'
import glob, json, sys
work = sys.argv[1]
def load(mode):
    out, base = {}, {}
    for p in sorted(glob.glob(f"{work}/{mode}-*.jsonl")):
        for r in map(json.loads, open(p)):
            if r.get("kind") == "measurement":
                (t, ty), = r["types"].items()
                out[(t, ty)] = r
            elif r.get("kind") == "baseline":
                base[p] = r
    return out, base
sim, sb = load("simulated"); exa, eb = load("exact")
keys = [k for k in sim if k in exa]
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i]); r = [0.0] * len(v)
    for pos, i in enumerate(order): r[i] = pos
    return r
def spearman(a, b):
    ra, rb = ranks(a), ranks(b); n = len(a); m = (n - 1) / 2
    cov = sum((x - m) * (y - m) for x, y in zip(ra, rb)); v = sum((x - m) ** 2 for x in ra)
    return cov / v
b = next(iter(sb.values()))
print(f"F16 baseline (vs itself): KLD {b['kld_mean']:.2e}, PPL {b['ppl']:.4f}, "
      f"{b['n_chunks']} chunks / {b['n_tokens']} scored tokens")
print("| tensor | type | KLD simulated | KLD exact | sim − exact | rel. diff (sim/exact − 1) | PPL simulated | PPL exact |")
print("|---|---|---|---|---|---|---|---|")
keys.sort(key=lambda k: -exa[k]["kld_mean"])
for k in keys:
    s, e = sim[k], exa[k]
    print(f"| {k[0]} | {k[1]} | {s['kld_mean']:.3e} ± {s['kld_se']:.1e} | "
          f"{e['kld_mean']:.3e} ± {e['kld_se']:.1e} | {s['kld_mean'] - e['kld_mean']:+.1e} | "
          f"{s['kld_mean'] / e['kld_mean'] - 1:+.2%} | "
          f"{s['ppl']:.4f} | {e['ppl']:.4f} |")
ks = [sim[k]["kld_mean"] for k in keys]; ke = [exa[k]["kld_mean"] for k in keys]
ps = [sim[k]["ppl"] for k in keys]; pe = [exa[k]["ppl"] for k in keys]
print(f"\nSpearman (simulated vs exact) over {len(keys)} pairs: KLD {spearman(ks, ke):+.3f}, "
      f"PPL {spearman(ps, pe):+.3f}")
print("max |rel. diff| KLD: %.2f%%" % (100 * max(abs(a / b - 1) for a, b in zip(ks, ke))))
PY
