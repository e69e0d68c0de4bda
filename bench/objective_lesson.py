#!/usr/bin/env python3
"""Issue #14, the original project's lesson: a plan optimised on prose
calibration only, against one whose --objective includes code, benched on a
code task (code-identifiers: held-out Python, per question, paired McNemar) and
on held-out KLD (prose: wiki.test.raw; code: the second half of
docs-code-calib.txt). One sweep measures both domains (prose: docs-en-calib.txt,
code: the FIRST half of docs-code-calib.txt, so the task and the KLD text stay
held out); the plans differ only in --objective. No search (its text is one
domain): the objective alone decides. Prints one table; writes JSON.

usage: bench/objective_lesson.py [--work DIR] [--budget Q3_K_M] [--bench-limit 1000]
       [--objectives prose,prose:0.5,code:0.5] [--threads 2]
"""
import argparse, json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import allocate_vs_stock as avs  # sh, build, recipe_file, evaluate, heldout_code: one way each


def calibration_code(a):
    """The first half of the code text, cut where heldout_code cuts."""
    path = os.path.join(a.work, "code-calib.txt")
    text = open(a.code_text, encoding="utf-8").read()
    cut = text.index("\n", len(text) // 2) + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:cut])
    return path


def bench_code(a, model, baseline, out):
    _, secs = avs.sh([avs.CB, "-q", "bench", "--model", model, "--baseline", baseline, "--tasks", "code-identifiers",
                      "--limit", str(a.bench_limit), "--threads", str(a.threads), "--data",
                      os.path.join(avs.SHARED, "data"), "--out", out, "--force"])
    s = json.load(open(os.path.join(out, "summary.json")))
    return s, secs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cb", default=avs.CB)
    p.add_argument("--model", default=os.path.join(avs.SHARED, "models/cb-dense-12l-F16.gguf"))
    p.add_argument("--calib", default=os.path.join(avs.SHARED, "data/docs-en-calib.txt"))
    p.add_argument("--eval-text", default=os.path.join(avs.SHARED, "data/wikitext-2-raw/wiki.test.raw"))
    p.add_argument("--code-text", default=os.path.join(avs.SHARED, "data/docs-code-calib.txt"))
    p.add_argument("--work", default="/tmp/cb-objective-lesson")
    p.add_argument("--budget", default="Q3_K_M")
    p.add_argument("--objectives", default="prose;prose:0.5,code:0.5",
                   help="';'-separated --objective values; the first is the baseline of the McNemar test")
    p.add_argument("--eval-chunks", type=int, default=40)
    p.add_argument("--bench-limit", type=int, default=1000)
    p.add_argument("--min-chunks", type=int, default=4)
    p.add_argument("--max-chunks", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    avs.CB = a.cb
    os.makedirs(a.work, exist_ok=True)
    journal = os.path.join(a.work, "measurements.jsonl")
    args = [avs.CB, "measure", "--source", a.model, "--base", "Q4_K_M", "--text", a.calib, "--text",
            calibration_code(a), "--domain", "prose,code", "--plan", "tensors", "--targets", "q2_K,q3_K",
            "--promote", "q5_K,q6_K,q8_0", "--min-chunks", str(a.min_chunks), "--max-chunks", str(a.max_chunks),
            "--threads", str(a.threads), "--out", journal]
    if os.path.exists(journal): args.append("--resume")
    _, measure_s = avs.sh(args)
    print(f"measure sweep (prose + code calibration): {measure_s:.1f} s -> {journal}", flush=True)
    table = os.path.join(a.work, "qerror.json")
    avs.sh([avs.CB, "-q", "qerror", "--source", a.model, "--out", table, "--threads", str(a.threads)])
    budget = avs.build(a, os.path.join(a.work, "size.gguf"), base=a.budget, dry_run=True)["output_size_bytes"]
    a.texts = {"prose": (a.eval_text, os.path.join(a.work, "wiki-ref-full.bin")),
               "code": (avs.heldout_code(a), os.path.join(a.work, "code-ref-full.bin"))}
    rows, first = [], None
    for i, objective in enumerate(a.objectives.split(";")):
        tag = f"plan{i}"
        plan_path = os.path.join(a.work, f"{tag}.json")
        avs.sh([avs.CB, "-q", "allocate", "--source", a.model, "--budget", str(budget), "--objective", objective,
                "--quant-error", table, "--measurements", journal, "--threads", str(a.threads), "--out", plan_path])
        types = json.load(open(plan_path))["types"]
        model = avs.build(a, os.path.join(a.work, f"{tag}.gguf"),
                          recipe=avs.recipe_file(types, os.path.join(a.work, f"{tag}.txt")))
        row = {"objective": objective, "size_bytes": os.path.getsize(model)}
        for domain, (text, store) in a.texts.items():
            row[domain] = avs.evaluate(model, a, text, store)
        if first:  # ours and the first plan per question (the first is scored as the baseline there)
            summary, secs = bench_code(a, model, first, os.path.join(a.work, f"bench-{tag}"))
            row["code_identifiers"] = summary["comparison"]["code-identifiers"]
            row["bench_s"] = secs
        row["differs_from_first"] = sum(types[k] != rows[0]["types"][k] for k in types) if rows else 0
        row["types"] = types
        rows.append(row)
        first = first or model
        print(json.dumps({k: v for k, v in row.items() if k != "types"})[:1500], flush=True)
    with open(os.path.join(a.work, "objective_lesson.json"), "w") as f:
        json.dump({"budget": a.budget, "budget_bytes": budget, "measure_s": measure_s, "bench_limit": a.bench_limit,
                   "eval_chunks": a.eval_chunks, "rows": rows}, f, indent=2)
    print(f"\nJSON: {os.path.join(a.work, 'objective_lesson.json')}")


if __name__ == "__main__":
    main()
