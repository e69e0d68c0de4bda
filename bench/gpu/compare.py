#!/usr/bin/env python3
"""Agreement of two measurement journals of the same sweep (e.g. GPU vs CPU).

  bench/gpu/compare.py A.jsonl B.jsonl [--label-a gpu --label-b cpu]

Prints the baselines (PPL, KLD) of both, their relative difference, and for
the units both measured: Spearman's rho of delta_kld (the sensitivity
ranking), of delta_ln_ppl, the top-10 overlap, and the largest |difference|
of delta_kld relative to its standard error. Python 3 standard library only.
"""
import argparse
import json
import math
import os
import sys


def load(path):
    base, units = None, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if r.get("kind") == "baseline" and r.get("config", "base") == "base":
                base = r
            elif r.get("kind") == "measurement":
                key = (r.get("domain"), r.get("direction"), r["unit"]["id"],
                       json.dumps(r.get("types", {}), sort_keys=True))
                units[key] = r
    return base, units


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "measure"))
from ranking import spearman  # noqa: E402  (shared with the measure benchmarks)


def pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--label-a", default="gpu")
    ap.add_argument("--label-b", default="cpu")
    ap.add_argument("--json", help="also write the figures as JSON here")
    args = ap.parse_args()
    ba, ua = load(args.a)
    bb, ub = load(args.b)
    out = {}
    la, lb = args.label_a, args.label_b
    if ba and bb:
        for k in ("ppl", "kld_mean", "top1"):
            va, vb = ba.get(k), bb.get(k)
            if va is None or vb is None:
                continue
            rel = (va - vb) / vb if vb else float("nan")
            out[f"baseline_{k}_{la}"], out[f"baseline_{k}_{lb}"] = va, vb
            out[f"baseline_{k}_rel_diff"] = rel
            print(f"baseline {k:9s} {la} {va:.6g}  {lb} {vb:.6g}  rel diff {rel:+.3e}")
    common = sorted(set(ua) & set(ub))
    out["units_" + la], out["units_" + lb], out["units_common"] = len(ua), len(ub), len(common)
    print(f"units: {la} {len(ua)}, {lb} {len(ub)}, common {len(common)}")
    if len(common) >= 3:
        da = [ua[k]["delta_kld"] for k in common]
        db = [ub[k]["delta_kld"] for k in common]
        pa = [ua[k].get("delta_ln_ppl", 0.0) for k in common]
        pb = [ub[k].get("delta_ln_ppl", 0.0) for k in common]
        rho = spearman(da, db)
        rho_p = spearman(pa, pb)
        n10 = min(10, len(common))
        top_a = {common[i] for i in sorted(range(len(common)), key=lambda i: -da[i])[:n10]}
        top_b = {common[i] for i in sorted(range(len(common)), key=lambda i: -db[i])[:n10]}
        z = []
        for k, x, y in zip(common, da, db):
            se = math.hypot(ua[k].get("delta_kld_se", 0.0), ub[k].get("delta_kld_se", 0.0))
            z.append(abs(x - y) / se if se > 0 else 0.0)
        rel = [abs(x - y) / abs(y) for x, y in zip(da, db) if y != 0]
        out.update({"spearman_delta_kld": rho, "spearman_delta_ln_ppl": rho_p,
                    "pearson_delta_kld": pearson(da, db), f"top{n10}_overlap": len(top_a & top_b),
                    "max_abs_diff_over_se": max(z), "median_rel_diff_delta_kld":
                    sorted(rel)[len(rel) // 2] if rel else float("nan")})
        print(f"Spearman rho of delta_kld (sensitivity ranking): {rho:.4f}")
        print(f"Spearman rho of delta_ln_ppl: {rho_p:.4f}")
        print(f"Pearson r of delta_kld: {out['pearson_delta_kld']:.4f}")
        print(f"top-{n10} overlap: {len(top_a & top_b)}/{n10}")
        print(f"median |rel diff| of delta_kld: {out['median_rel_diff_delta_kld']:.3e}; "
              f"max |diff|/se: {max(z):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
