#!/usr/bin/env python3
"""Held-out check of the damage model's extrapolation to unmeasured types.

The model: damage_i(t) = s_i * (x_i(t) - x_i(base_i)), s_i fitted on tensor i's
measured points (the main sweep: q2_K, q3_K, q5_K, q6_K, q8_0 from Q4_K_M).
x from the engine's quantization-error table (`cerebellum qerror`) or the
2^(-2 bpw) proxy. This script measures types the sweep never measured (i-quants,
legacy) on a subset of tensors -- the held-back measurements -- and compares
them with what each model predicts from the main sweep alone.

usage: bench/qerror_heldout.py --journal M.jsonl [--cb build/cerebellum] [--work DIR]
       [--tensors REGEX] [--types iq3_s,iq4_xs,q4_0,q5_0] [--threads 2]
"""
import argparse, json, math, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
# Bits per weight (block bytes * 8 / block elements), for the proxy.
BPW = {"q2_K": 2.625, "q3_K": 3.4375, "q4_K": 4.5, "q5_K": 5.5, "q6_K": 6.5625, "q8_0": 8.5,
       "iq2_s": 2.5625, "iq3_xxs": 3.0625, "iq3_s": 3.4375, "iq4_xs": 4.25, "iq4_nl": 4.5, "q4_0": 4.5,
       "q4_1": 5.0, "q5_0": 5.5, "q5_1": 6.0, "f16": 16.0}


def sh(args):
    t0 = time.time()
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-3000:] + r.stderr[-3000:])
        raise SystemExit(f"failed ({r.returncode}): {' '.join(args)}")
    return time.time() - t0


def curves(a, quant_error, out):
    sh([a.cb, "-q", "allocate", "--measurements", a.journal, "--source", a.model, "--budget", "100MB",
        "--quant-error", quant_error, "--write-curves", out, "--no-greedy", "--threads", str(a.threads),
        "--out", out + ".plan.json"])
    plan = json.load(open(out + ".plan.json"))
    return {t["name"]: t for t in json.load(open(out))["tensors"]}, plan["model_error"]


def stats(pairs):
    n = len(pairs)
    if n == 0:
        return {"n": 0}
    err = [p - m for p, m in pairs]
    mae = sum(abs(e) for e in err) / n
    rmse = math.sqrt(sum(e * e for e in err) / n)

    def ranks(v):
        order = sorted(range(n), key=lambda k: v[k])
        r = [0.0] * n
        for pos, k in enumerate(order):
            r[k] = pos
        return r
    rp, rm = ranks([p for p, _ in pairs]), ranks([m for _, m in pairs])
    mp, mm = sum(rp) / n, sum(rm) / n
    cov = sum((x - mp) * (y - mm) for x, y in zip(rp, rm))
    var = math.sqrt(sum((x - mp) ** 2 for x in rp) * sum((y - mm) ** 2 for y in rm))
    return {"n": n, "mae_kld": mae, "rmse_kld": rmse, "bias_kld": sum(err) / n,
            "spearman": cov / var if var > 0 else 0.0,
            "mean_abs_measured_kld": sum(abs(m) for _, m in pairs) / n}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cb", default=os.environ.get("CB", os.path.join(ROOT, "build", "cerebellum")))
    p.add_argument("--model", default=os.path.join(SHARED, "models/cb-dense-12l-F16.gguf"))
    p.add_argument("--calib", default=os.path.join(SHARED, "data/docs-en-calib.txt"))
    p.add_argument("--journal", required=True, help="the main sweep (k-quant ladder)")
    p.add_argument("--work", default="/tmp/cb-qerror-heldout")
    p.add_argument("--tensors", default=r"blk\.(0|4|8|11)\..*|output\.weight|token_embd\.weight")
    p.add_argument("--types", default="iq3_s,iq4_xs,q4_0,q5_0")
    p.add_argument("--max-chunks", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    held = os.path.join(a.work, "heldout.jsonl")
    args = [a.cb, "-q", "measure", "--source", a.model, "--base", "Q4_K_M", "--text", a.calib, "--plan", "tensors",
            "--targets", a.types, "--tensors", a.tensors, "--max-chunks", str(a.max_chunks),
            "--threads", str(a.threads), "--out", held]
    if os.path.exists(held): args.append("--resume")
    measure_s = sh(args)
    table = os.path.join(a.work, "qerror.json")
    qerror_s = sh([a.cb, "-q", "qerror", "--source", a.model, "--out", table, "--threads", str(a.threads)])
    x = json.load(open(table))["rel_mse"]
    by_table, err_table = curves(a, table, os.path.join(a.work, "curves-table.json"))
    by_proxy, err_proxy = curves(a, "none", os.path.join(a.work, "curves-proxy.json"))
    pairs = {"table": [], "proxy": []}
    per_type = {}
    for line in open(held):
        m = json.loads(line)
        if m.get("kind") != "measurement" or len(m["types"]) != 1:
            continue
        (tensor, t), = m["types"].items()
        ct, cp = by_table[tensor], by_proxy[tensor]
        base = ct["base_type"]
        if t == base:
            continue
        pred_t = ct["scale"] * (x[tensor][t] - x[tensor][base])
        pred_p = cp["scale"] * (2 ** (-2 * BPW[t]) - 2 ** (-2 * BPW[base]))
        pairs["table"].append((pred_t, m["delta_kld"]))
        pairs["proxy"].append((pred_p, m["delta_kld"]))
        per_type.setdefault(t, {"table": [], "proxy": []})
        per_type[t]["table"].append((pred_t, m["delta_kld"]))
        per_type[t]["proxy"].append((pred_p, m["delta_kld"]))
    out = {"measure_s": measure_s, "qerror_s": qerror_s, "heldout_types": a.types, "tensors": a.tensors,
           "heldout": {k: stats(v) for k, v in pairs.items()},
           "heldout_by_type": {t: {k: stats(v) for k, v in d.items()} for t, d in per_type.items()},
           "loto": {"table": err_table["loto"], "proxy": err_proxy["loto"]},
           "loo_tensor": {"table": err_table["loo_tensor"], "proxy": err_proxy["loo_tensor"]}}
    json.dump(out, open(os.path.join(a.work, "qerror_heldout.json"), "w"), indent=2)
    print(f"held-out measurements: {a.types} on {a.tensors} ({measure_s:.0f} s); table {qerror_s:.1f} s")
    print(f"{'check':<28} {'model':<7} {'n':>4} {'MAE (nats)':>11} {'RMSE':>10} {'bias':>10} {'Spearman':>9}")
    for name, d in (("held-out types (all)", out["heldout"]),) + tuple(
            (f"held-out {t}", v) for t, v in sorted(out["heldout_by_type"].items())):
        for model in ("table", "proxy"):
            s = d[model]
            print(f"{name:<28} {model:<7} {s['n']:>4} {s['mae_kld']:>11.6f} {s['rmse_kld']:>10.6f} "
                  f"{s['bias_kld']:>+10.6f} {s['spearman']:>9.3f}")
    for name in ("loto", "loo_tensor"):
        for model in ("table", "proxy"):
            s = out[name][model]
            print(f"{name:<28} {model:<7} {s['n']:>4} {s['mae_kld']:>11.6f} {s['rmse_kld']:>10.6f}")
    print(f"mean |measured ΔKLD| of the held-out points: {out['heldout']['table']['mean_abs_measured_kld']:.6f}")
    print(f"JSON: {os.path.join(a.work, 'qerror_heldout.json')}")


if __name__ == "__main__":
    main()
