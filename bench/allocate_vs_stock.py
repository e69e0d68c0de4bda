#!/usr/bin/env python3
"""Issue #5 acceptance bench: our allocation vs the stock mix vs the original
greedy rule, at the byte sizes of stock Q2_K, Q3_K_M and Q4_K_M, without and
with the same imatrix on every side. Prints one table; writes JSON.

Our plans, each at exactly the stock file's bytes:
  cerebellum (proxy)    the knapsack on the damage model with the 2^(-2 bpw) proxy and
                        the k-quant ladder (the previous method: allocate --quant-error none)
  cerebellum (table)    the knapsack with the engine's quantization-error table
                        (cerebellum qerror) and the i-quant / legacy candidates it prices
  cerebellum (+search)  the table plan refined by the measured local search on the
                        calibration text (allocate --search-text)
Quality: mean KLD vs F16 (full vocabulary: --top-k 0) and PPL on wiki.test.raw,
which is never used for calibration, measurement or the search.

usage: bench/allocate_vs_stock.py [--cb build/cerebellum] [--model M] [--work DIR]
       [--eval-chunks 40] [--budgets Q2_K,Q3_K_M,Q4_K_M] [--no-imatrix-pass]
       [--search-evals 32] [--search-chunks 8] [--threads 2] [--journal M.jsonl]
"""
import argparse, json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
CB = os.path.join(ROOT, "build", "cerebellum")


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


def allocate(a, journal, budget, out, quant_error, imatrix, search):
    args = [CB, "-q", "allocate", "--measurements", journal, "--source", a.model, "--budget", str(budget),
            "--quant-error", quant_error, "--threads", str(a.threads), "--out", out]
    if imatrix: args += ["--imatrix", imatrix]
    if search:
        args += ["--search-text", a.calib, "--search-evals", str(a.search_evals),
                 "--search-chunks", str(a.search_chunks)]
    _, secs = sh(args)
    return json.load(open(out)), secs


def plans_for(a, journal, budget, tag, table, imatrix):
    """method -> types, plus the search's record."""
    base = os.path.join(a.work, f"plan-{tag}")
    proxy, _ = allocate(a, journal, budget, base + "-proxy.json", "none", imatrix, False)
    searched, search_s = allocate(a, journal, budget, base + "-search.json", table, imatrix, True)
    s = searched["search"]
    info = {"search_s": search_s, "search_elapsed_s": s["elapsed_s"], "search_setup_s": s["setup_s"],
            "n_evals": s["n_evals"], "n_accepted": s["n_accepted"], "changed": s["changed"],
            "before": s["before"], "after": s["after"]}
    plans = {"cerebellum (proxy)": proxy["types"], "cerebellum (table)": searched["initial_plan"]["types"],
             "cerebellum (+search)": searched["types"],
             "greedy_original": proxy["baselines"]["greedy_original"]["types"]}
    return plans, info


def main():
    global CB
    p = argparse.ArgumentParser()
    p.add_argument("--cb", default=os.environ.get("CB", CB))
    p.add_argument("--model", default=os.path.join(SHARED, "models/cb-dense-12l-F16.gguf"))
    p.add_argument("--calib", default=os.path.join(SHARED, "data/docs-en-calib.txt"))
    p.add_argument("--eval-text", default=os.path.join(SHARED, "data/wikitext-2-raw/wiki.test.raw"))
    p.add_argument("--work", default="/tmp/cb-bench-allocate")
    p.add_argument("--budgets", default="Q2_K,Q3_K_M,Q4_K_M")
    p.add_argument("--eval-chunks", type=int, default=40)
    p.add_argument("--journal", help="use this finished sweep as is (no measuring)")
    p.add_argument("--min-chunks", type=int, default=4)
    p.add_argument("--max-chunks", type=int, default=16)
    p.add_argument("--search-evals", type=int, default=32)
    p.add_argument("--search-chunks", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-imatrix-pass", action="store_true")
    a = p.parse_args()
    CB = a.cb
    os.makedirs(a.work, exist_ok=True)
    journal = a.journal or os.path.join(a.work, "measurements.jsonl")
    # One sweep serves every budget: ablate to q2_K/q3_K and promote to q5_K/q6_K/q8_0 from Q4_K_M.
    args = [CB, "measure", "--source", a.model, "--base", "Q4_K_M", "--text", a.calib,
            "--plan", "tensors", "--targets", "q2_K,q3_K", "--promote", "q5_K,q6_K,q8_0",
            "--min-chunks", str(a.min_chunks), "--max-chunks", str(a.max_chunks), "--threads", str(a.threads), "--out", journal]
    if a.journal:
        measure_s = None
        print(f"measure sweep: reusing {journal}", flush=True)
    else:
        if os.path.exists(journal): args.append("--resume")
        _, measure_s = sh(args)
        print(f"measure sweep: {measure_s:.1f} s -> {journal}", flush=True)
    imatrix = os.path.join(a.work, "imatrix.gguf")
    if not a.no_imatrix_pass and not os.path.exists(imatrix):
        sh([CB, "-q", "imatrix", "--model", a.model, "--text", a.calib, "--out", imatrix,
            "--chunks", "40", "--threads", str(a.threads)])
    ref_store = os.path.join(a.work, "wiki-ref-full.bin")
    rows, tables = [], {}
    passes = [None] if a.no_imatrix_pass else [None, imatrix]
    for im in passes:
        tag = "imatrix" if im else "plain"
        table = os.path.join(a.work, f"qerror-{tag}.json")
        _, tables[tag] = sh([CB, "-q", "qerror", "--source", a.model, "--out", table, "--threads", str(a.threads)]
                            + (["--imatrix", im] if im else []))
        print(f"quantization-error table ({tag}): {tables[tag]:.1f} s", flush=True)
        for preset in a.budgets.split(","):
            stock = build(a, os.path.join(a.work, f"stock-{preset}-{tag}.gguf"), base=preset, imatrix=im)
            budget = os.path.getsize(stock)
            plans, search = plans_for(a, journal, budget, f"{preset}-{tag}", table, im)
            res = {"stock": evaluate(stock, a, ref_store)}
            os.remove(stock)
            for name, types in plans.items():
                safe = name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "")
                path = build(a, os.path.join(a.work, f"{safe}-{preset}-{tag}.gguf"),
                             recipe=recipe_file(types, os.path.join(a.work, f"{safe}-{preset}-{tag}.txt")),
                             imatrix=im)
                res[name] = evaluate(path, a, ref_store)
                os.remove(path)
            for r in res.values():
                r["within_budget"] = r["size_bytes"] <= budget
            rows.append({"budget": preset, "budget_bytes": budget, "imatrix": bool(im), "results": res,
                         "search": search})
            print_row(rows[-1])
    with open(os.path.join(a.work, "allocate_vs_stock.json"), "w") as f:
        json.dump({"measure_s": measure_s, "qerror_s": tables, "eval_chunks": a.eval_chunks,
                   "search_evals": a.search_evals, "search_chunks": a.search_chunks, "rows": rows}, f, indent=2)
    print(f"\nJSON: {os.path.join(a.work, 'allocate_vs_stock.json')}")


def print_row(row):
    if not hasattr(print_row, "header"):
        print_row.header = True
        print(f"\n{'budget':<8} {'imatrix':<8} {'method':<21} {'bytes':>10} {'KLD (nats)':>20} "
              f"{'PPL':>16} {'KLD vs stock':>13}")
    stock_kld = row["results"]["stock"]["kld"]
    for name, r in row["results"].items():
        rel = (r["kld"] / stock_kld - 1) * 100 if stock_kld > 0 else 0
        flag = "" if r["within_budget"] else " OVER"
        print(f"{row['budget']:<8} {str(row['imatrix']):<8} {name:<21} {r['size_bytes']:>10} "
              f"{r['kld']:>10.5f} ± {r['kld_se']:.5f} {r['ppl']:>8.3f} ± {r['ppl_se']:.3f} {rel:>+12.1f}%{flag}",
              flush=True)
    s = row["search"]
    print(f"{'':<17} search: {s['n_accepted']}/{s['n_evals']} moves kept in {s['search_elapsed_s']:.0f} s "
          f"(setup {s['search_setup_s']:.0f} s); calibration KLD {s['before']['kld']:.5f} -> "
          f"{s['after']['kld']:.5f}; predicted ΔKLD vs base {s['before']['predicted_delta_kld_vs_base']:+.5f}, "
          f"measured {s['before']['measured_delta_kld_vs_base']:+.5f} "
          f"± {s['before']['measured_se']:.5f} (before search)", flush=True)


if __name__ == "__main__":
    main()
