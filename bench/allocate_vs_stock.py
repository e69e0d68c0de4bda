#!/usr/bin/env python3
"""Issue #5 acceptance bench: our allocation vs the stock mix vs the original
greedy rule, at the byte sizes of stock Q2_K, Q3_K_M and Q4_K_M, without and
with the same imatrix on every side. Prints one table; writes JSON.

Quality: mean KLD vs F16 (full vocabulary: --top-k 0) and PPL on
wiki.test.raw, which is never used for calibration or measurement.

usage: bench/allocate_vs_stock.py [--model M] [--work DIR] [--eval-chunks 40]
       [--budgets Q2_K,Q3_K_M,Q4_K_M] [--no-imatrix-pass] [--threads 2]
"""
import argparse, json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CB = os.path.join(ROOT, "build", "cerebellum")
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))


def sh(args, **kw):
    t0 = time.time()
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        raise SystemExit(f"failed ({r.returncode}): {' '.join(args)}")
    return r.stdout, time.time() - t0


def recipe_file(types, path):
    with open(path, "w") as f:
        for name, t in sorted(types.items()):
            f.write(f"{name}={t}\n")
    return path


def evaluate(model, a, ref_store):
    out, _ = sh([CB, "-q", "eval", "--model", model, "--text", a.eval_text, "--reference", a.model,
                 "--reference-store", ref_store, "--chunks", str(a.eval_chunks), "--top-k", "0",
                 "--threads", str(a.threads), "--json"])
    j = json.loads(out)
    return {"ppl": j["ppl"], "ppl_se": j["ppl_se"], "kld": j["kld"]["mean"], "kld_se": j["kld"]["se"],
            "size_bytes": os.path.getsize(model)}


def build(a, out, recipe=None, base=None, imatrix=None):
    args = [CB, "-q", "build", "--source", a.model, "--out", out, "--threads", str(a.threads)]
    if recipe: args += ["--recipe", recipe]
    if base: args += ["--base", base]
    if imatrix: args += ["--imatrix", imatrix]
    sh(args)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=os.path.join(SHARED, "models/cb-dense-12l-F16.gguf"))
    p.add_argument("--calib", default=os.path.join(SHARED, "data/docs-en-calib.txt"))
    p.add_argument("--eval-text", default=os.path.join(SHARED, "data/wikitext-2-raw/wiki.test.raw"))
    p.add_argument("--work", default="/tmp/cb-bench-allocate")
    p.add_argument("--budgets", default="Q2_K,Q3_K_M,Q4_K_M")
    p.add_argument("--eval-chunks", type=int, default=40)
    p.add_argument("--max-chunks", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-imatrix-pass", action="store_true")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    journal = os.path.join(a.work, "measurements.jsonl")
    # One sweep serves every budget: ablate to q2_K/q3_K and promote to q5_K/q6_K from Q4_K_M.
    args = [CB, "measure", "--source", a.model, "--base", "Q4_K_M", "--text", a.calib,
            "--plan", "tensors", "--targets", "q2_K,q3_K", "--promote", "q5_K,q6_K,q8_0",
            "--max-chunks", str(a.max_chunks), "--threads", str(a.threads), "--out", journal]
    if os.path.exists(journal): args.append("--resume")
    _, measure_s = sh(args)
    print(f"measure sweep: {measure_s:.1f} s -> {journal}", flush=True)
    imatrix = os.path.join(a.work, "imatrix.gguf")
    if not a.no_imatrix_pass and not os.path.exists(imatrix):
        sh([CB, "-q", "imatrix", "--model", a.model, "--text", a.calib, "--out", imatrix,
            "--chunks", "40", "--threads", str(a.threads)])
    ref_store = os.path.join(a.work, "wiki-ref-full.bin")
    rows = []
    passes = [None] if a.no_imatrix_pass else [None, imatrix]
    for im in passes:
        tag = "imatrix" if im else "plain"
        for preset in a.budgets.split(","):
            stock = build(a, os.path.join(a.work, f"stock-{preset}-{tag}.gguf"), base=preset, imatrix=im)
            budget = os.path.getsize(stock)
            plan = os.path.join(a.work, f"plan-{preset}-{tag}.json")
            sh([CB, "-q", "allocate", "--measurements", journal, "--source", a.model, "--budget", str(budget),
                "--out", plan] + (["--imatrix", im] if im else []))
            pj = json.load(open(plan))
            ours = build(a, os.path.join(a.work, f"ours-{preset}-{tag}.gguf"),
                         recipe=recipe_file(pj["types"], plan + ".ours.txt"), imatrix=im)
            greedy_types = pj["baselines"]["greedy_original"]["types"]
            greedy = build(a, os.path.join(a.work, f"greedy-{preset}-{tag}.gguf"),
                           recipe=recipe_file(greedy_types, plan + ".greedy.txt"), imatrix=im)
            res = {}
            for name, path in (("stock", stock), ("cerebellum", ours), ("greedy_original", greedy)):
                res[name] = evaluate(path, a, ref_store)
                res[name]["within_budget"] = res[name]["size_bytes"] <= budget
                os.remove(path)
            rows.append({"budget": preset, "budget_bytes": budget, "imatrix": bool(im), "results": res})
            print_row(rows[-1])
    with open(os.path.join(a.work, "allocate_vs_stock.json"), "w") as f:
        json.dump({"measure_s": measure_s, "eval_chunks": a.eval_chunks, "rows": rows}, f, indent=2)
    print(f"\nJSON: {os.path.join(a.work, 'allocate_vs_stock.json')}")


def print_row(row):
    if not hasattr(print_row, "header"):
        print_row.header = True
        print(f"\n{'budget':<8} {'imatrix':<8} {'method':<16} {'bytes':>10} {'KLD (nats)':>20} "
              f"{'PPL':>16} {'KLD vs stock':>13}")
    stock_kld = row["results"]["stock"]["kld"]
    for name, r in row["results"].items():
        rel = (r["kld"] / stock_kld - 1) * 100 if stock_kld > 0 else 0
        flag = "" if r["within_budget"] else " OVER"
        print(f"{row['budget']:<8} {str(row['imatrix']):<8} {name:<16} {r['size_bytes']:>10} "
              f"{r['kld']:>10.5f} ± {r['kld_se']:.5f} {r['ppl']:>8.3f} ± {r['ppl_se']:.3f} {rel:>+12.1f}%{flag}",
              flush=True)


if __name__ == "__main__":
    main()
