#!/usr/bin/env python3
"""Replays stopping rules on a sample sweep (a journal run with --min-chunks N
--max-chunks N, whose records carry delta_kld_samples) and ranks each rule's
estimates against a truth journal: Spearman and mean chunks per tensor.
usage: stop_rules.py TRUTH.jsonl SAMPLES.jsonl [BLOCKS_PER_CHUNK=4]"""
import math, os, statistics as st, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ranking import journal, spearman  # noqa: E402

truth, samples = journal(sys.argv[1]), journal(sys.argv[2])
B = int(sys.argv[3]) if len(sys.argv) > 3 else 4
names = sorted(set(truth) & set(samples))
cap = min(len(samples[n]["delta_kld_samples"]) // B for n in names)
t = [truth[n]["delta_kld"] for n in names]

def replay(min_c, step, rel, abs_tol, z):
    est, total = [], 0
    for n in names:
        s, c = samples[n]["delta_kld_samples"], min_c
        while True:
            x = s[:B * c]; m = st.mean(x); se = st.stdev(x) / math.sqrt(len(x))
            if se <= rel * abs(m) + abs_tol or (z > 0 and abs(m) >= z * se) or c >= cap: break
            c = min(cap, c + step)
        est.append(m); total += c
    return spearman(est, t), total / len(names)

print(f"{len(names)} tensors, samples capped at {cap} chunks")
print("truth Δln PPL vs truth ΔKLD: %.4f" % spearman([truth[n]["delta_ln_ppl"] for n in names], t))
for c in (1, 2, 3, 4, 8, cap):
    print("fixed %2d chunks: Spearman %.4f" % (c, spearman([st.mean(samples[n]["delta_kld_samples"][:B * c]) for n in names], t)))
print("min step rel   abs    z   Spearman chunks")
for rule in [(2, 2, 0.2, 3e-5, 0), (3, 2, 0.1, 1e-4, 4), (3, 2, 0.05, 1e-4, 8), (4, 2, 0.1, 1e-4, 4), (4, 4, 0.05, 1e-4, 8)]:
    r, c = replay(*rule)
    print("%3d %4d %4.2f %6.0e %3.0f   %.4f   %.2f" % (*rule, r, c))
