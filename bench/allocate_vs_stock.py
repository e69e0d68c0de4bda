#!/usr/bin/env python3
"""Issue #14 acceptance bench: our plans against the strongest alternatives a user
could pick at the same bytes, at the byte sizes of stock Q2_K, Q3_K_M and Q4_K_M,
without and with the same imatrix on every side. Prints one table; writes JSON.

Rows, each within the stock file's bytes:
  stock PRESET          the stock mix whose size is the budget
  best stock            the stock preset with the lowest prose KLD among all of
                        llama-quantize's presets (k-quant, i-quant, legacy mixes;
                        those that need an imatrix only in the imatrix pass) whose
                        file is no larger than the budget; named
  weight-error only     allocate --proxy: no sweep, damage = elements x Δ relative MSE
                        from the quantization-error table (imatrix-weighted in that pass)
  measured              the knapsack on the measured damage curves + table
  measured + search     that plan refined by the measured local search (allocate --search-text)
Columns: mean KLD ± se and p99.9 KLD vs F16 (full vocabulary: --top-k 0) on two held-out
domains: prose (wiki.test.raw) and code (the second half of docs-code-calib.txt; calibration,
measurement and search use docs-en-calib.txt only). Goal (issue #14): measured + search
<= 0.75x the best stock option and <= 0.85x the weight-error-only plan in mean KLD.

usage: bench/allocate_vs_stock.py [--cb build/cerebellum] [--model M] [--work DIR]
       [--eval-chunks 40] [--budgets Q2_K,Q3_K_M,Q4_K_M] [--no-imatrix-pass | --imatrix-pass-only]
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


def evaluate(model, a, text, ref_store):
    out, _ = sh([CB, "-q", "eval", "--model", model, "--text", text, "--reference", a.model,
                 "--reference-store", ref_store, "--chunks", str(a.eval_chunks), "--top-k", "0",
                 "--threads", str(a.threads), "--json"])
    j = json.loads(out)
    return {"ppl": j["ppl"], "ppl_se": j["ppl_se"], "kld": j["kld"]["mean"], "kld_se": j["kld"]["se"],
            "kld_p999": j["kld"]["p99_9"], "top1": j["top1"]}


def evaluate_all(model, a):
    """{"size_bytes", "prose": {...}, "code": {...}}"""
    r = {"size_bytes": os.path.getsize(model)}
    for domain, (text, store) in a.texts.items():
        r[domain] = evaluate(model, a, text, store)
    return r


def build(a, out, recipe=None, base=None, imatrix=None, dry_run=False, check=True):
    args = [CB, "-q", "build", "--source", a.model, "--out", out, "--threads", str(a.threads)]
    if recipe: args += ["--recipe", recipe]
    if base: args += ["--base", base]
    if imatrix: args += ["--imatrix", imatrix]
    if dry_run: args += ["--dry-run", "--json"]
    if not check:
        r = subprocess.run(args, capture_output=True, text=True)
        return r
    out_text, _ = sh(args)
    return json.loads(out_text) if dry_run else out


def allocate(a, journal, budget, out, table, imatrix, search):
    args = [CB, "-q", "allocate", "--source", a.model, "--budget", str(budget),
            "--quant-error", table, "--threads", str(a.threads), "--out", out]
    args += ["--measurements", journal] if journal else ["--proxy"]
    if imatrix: args += ["--imatrix", imatrix]
    if search:
        args += ["--search-text", a.calib, "--search-evals", str(a.search_evals),
                 "--search-chunks", str(a.search_chunks)]
    _, secs = sh(args)
    return json.load(open(out)), secs


def plans_for(a, journal, budget, tag, table, imatrix):
    """row name -> types, plus the search's record."""
    base = os.path.join(a.work, f"plan-{tag}")
    proxy, proxy_s = allocate(a, None, budget, base + "-proxy.json", table, imatrix, False)
    searched, search_s = allocate(a, journal, budget, base + "-search.json", table, imatrix, True)
    s = searched["search"]
    info = {"proxy_s": proxy_s, "search_s": search_s, "search_elapsed_s": s["elapsed_s"],
            "search_setup_s": s["setup_s"], "n_evals": s["n_evals"], "n_accepted": s["n_accepted"],
            "changed": s["changed"], "before": s["before"], "after": s["after"]}
    plans = {"weight-error only": proxy["types"], "measured": searched["initial_plan"]["types"],
             "measured + search": searched["types"]}
    return plans, info


def stock_presets(a, imatrix, min_bytes, max_bytes, tag):
    """preset -> evaluation (or {"skipped": why}) for every llama-quantize preset
    whose file is at most max_bytes and at least 0.8 x min_bytes; sizes from
    build --dry-run."""
    out, _ = sh([CB, "-q", "recipe", "--list-presets", "--json"])
    results = {}
    for name in [p["name"] for p in json.loads(out) if not p.get("alias_of")]:  # aliases ("Q4_K") once
        if name in ("F16", "BF16", "F32"):
            continue
        path = os.path.join(a.work, f"stock-{name}-{tag}.gguf")
        r = build(a, path, base=name, imatrix=imatrix, dry_run=True, check=False)
        if r.returncode != 0:
            results[name] = {"skipped": (r.stderr.strip().splitlines() or ["failed"])[-1][:200]}
            continue
        size = json.loads(r.stdout)["output_size_bytes"]
        if size > max_bytes:
            results[name] = {"skipped": f"{size} B, above every budget"}
            continue
        if size < 0.8 * min_bytes:  # far below every budget: not the best at any of them
            results[name] = {"skipped": f"{size} B, under 0.8x the smallest budget"}
            continue
        build(a, path, base=name, imatrix=imatrix)
        results[name] = evaluate_all(path, a)
        os.remove(path)
        print(f"  stock {name:<10} {results[name]['size_bytes']:>10} B  prose KLD {results[name]['prose']['kld']:.5f}"
              f"  code KLD {results[name]['code']['kld']:.5f}", flush=True)
    return results


def heldout_code(a):
    """The second half of the code text, cut at a line: never calibrated on."""
    path = os.path.join(a.work, "code-heldout.txt")
    text = open(a.code_text, encoding="utf-8").read()
    cut = text.index("\n", len(text) // 2) + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[cut:])
    return path


def main():
    global CB
    p = argparse.ArgumentParser()
    p.add_argument("--cb", default=os.environ.get("CB", CB))
    p.add_argument("--model", default=os.path.join(SHARED, "models/cb-dense-12l-F16.gguf"))
    p.add_argument("--calib", default=os.path.join(SHARED, "data/docs-en-calib.txt"))
    p.add_argument("--eval-text", default=os.path.join(SHARED, "data/wikitext-2-raw/wiki.test.raw"))
    p.add_argument("--code-text", default=os.path.join(SHARED, "data/docs-code-calib.txt"),
                   help="its second half is the held-out code text")
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
    p.add_argument("--imatrix-pass-only", action="store_true", help="only the pass with the imatrix")
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
    a.texts = {"prose": (a.eval_text, os.path.join(a.work, "wiki-ref-full.bin")),
               "code": (heldout_code(a), os.path.join(a.work, "code-ref-full.bin"))}
    rows, tables, stock = [], {}, {}
    passes = [None] if a.no_imatrix_pass else [imatrix] if a.imatrix_pass_only else [None, imatrix]
    budgets = a.budgets.split(",")
    for im in passes:
        tag = "imatrix" if im else "plain"
        table = os.path.join(a.work, f"qerror-{tag}.json")
        _, tables[tag] = sh([CB, "-q", "qerror", "--source", a.model, "--out", table, "--threads", str(a.threads)]
                            + (["--imatrix", im] if im else []))
        print(f"quantization-error table ({tag}): {tables[tag]:.1f} s", flush=True)
        sizes = {}
        for preset in budgets:
            sizes[preset] = build(a, os.path.join(a.work, "size.gguf"), base=preset, imatrix=im,
                                  dry_run=True)["output_size_bytes"]
        stock[tag] = stock_presets(a, im, min(sizes.values()), max(sizes.values()), tag)
        for preset in budgets:
            budget = sizes[preset]
            plans, search = plans_for(a, journal, budget, f"{preset}-{tag}", table, im)
            fits = {n: r for n, r in stock[tag].items() if "skipped" not in r and r["size_bytes"] <= budget}
            best = min(fits, key=lambda n: fits[n]["prose"]["kld"])
            res = {f"stock {preset}": stock[tag][preset], f"best stock ({best})": fits[best]}
            for name, types in plans.items():
                safe = name.replace(" ", "_").replace("+", "plus")
                path = build(a, os.path.join(a.work, f"{safe}-{preset}-{tag}.gguf"),
                             recipe=recipe_file(types, os.path.join(a.work, f"{safe}-{preset}-{tag}.txt")),
                             imatrix=im)
                res[name] = evaluate_all(path, a)
                os.remove(path)
            for r in res.values():
                r["within_budget"] = r["size_bytes"] <= budget
            rows.append({"budget": preset, "budget_bytes": budget, "imatrix": bool(im), "best_stock": best,
                         "results": res, "search": search, "goals": goals(res, best)})
            print_row(rows[-1])
    with open(os.path.join(a.work, "allocate_vs_stock.json"), "w") as f:
        json.dump({"measure_s": measure_s, "qerror_s": tables, "eval_chunks": a.eval_chunks,
                   "search_evals": a.search_evals, "search_chunks": a.search_chunks,
                   "stock_presets": stock, "rows": rows}, f, indent=2)
    print(f"\nJSON: {os.path.join(a.work, 'allocate_vs_stock.json')}")


def goals(res, best):
    """Mean-KLD ratios of measured + search against the goal rows, per domain."""
    ours = res["measured + search"]
    out = {}
    for domain in ("prose", "code"):
        vs_best = ours[domain]["kld"] / res[f"best stock ({best})"][domain]["kld"]
        vs_proxy = ours[domain]["kld"] / res["weight-error only"][domain]["kld"]
        out[domain] = {"vs_best_stock": vs_best, "vs_weight_error_only": vs_proxy,
                       "met": vs_best <= 0.75 and vs_proxy <= 0.85}
    return out


def print_row(row):
    if not hasattr(print_row, "header"):
        print_row.header = True
        print(f"\n{'budget':<7} {'imatrix':<7} {'row':<24} {'bytes':>9} {'prose KLD':>19} {'p99.9':>8} "
              f"{'code KLD':>19} {'p99.9':>8}")
    for name, r in row["results"].items():
        flag = "" if r["within_budget"] else " OVER"
        cells = " ".join(f"{r[d]['kld']:>9.5f} ± {r[d]['kld_se']:.5f} {r[d]['kld_p999']:>8.4f}" for d in ("prose", "code"))
        print(f"{row['budget']:<7} {str(row['imatrix']):<7} {name:<24} {r['size_bytes']:>9} {cells}{flag}", flush=True)
    g = row["goals"]
    print(f"{'':<16} measured + search / best stock: prose {g['prose']['vs_best_stock']:.3f}, code "
          f"{g['code']['vs_best_stock']:.3f} (goal <= 0.75); / weight-error only: prose "
          f"{g['prose']['vs_weight_error_only']:.3f}, code {g['code']['vs_weight_error_only']:.3f} (goal <= 0.85)",
          flush=True)
    s = row["search"]
    print(f"{'':<16} search: {s['n_accepted']}/{s['n_evals']} moves kept in {s['search_elapsed_s']:.0f} s "
          f"(setup {s['search_setup_s']:.0f} s); calibration KLD {s['before']['kld']:.5f} -> "
          f"{s['after']['kld']:.5f}", flush=True)


if __name__ == "__main__":
    main()
