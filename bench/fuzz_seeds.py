#!/usr/bin/env python3
"""Seed corpora for the libFuzzer targets (bench/fuzz.sh), from ../shared and
small hand-written files. Usage: fuzz_seeds.py SHARED_DIR OUT_DIR [CEREBELLUM]"""
import glob, os, shutil, struct, subprocess, sys

shared, out = sys.argv[1], sys.argv[2]
cli = sys.argv[3] if len(sys.argv) > 3 else ""


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def gguf_kv_only(path, limit=65536):
    """The header and metadata of a GGUF v3 file, with no tensors: small enough
    to mutate quickly, and every metadata check still runs."""
    b = open(path, "rb").read()
    n_kv = struct.unpack_from("<Q", b, 16)[0]
    pos = 24
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_val(t, pos):
        if t == 8:
            return pos + 8 + struct.unpack_from("<Q", b, pos)[0]
        if t == 9:
            at, n = struct.unpack_from("<IQ", b, pos)
            pos += 12
            for _ in range(n):
                pos = skip_val(at, pos)
            return pos
        return pos + sizes[t]

    for _ in range(n_kv):
        pos += 8 + struct.unpack_from("<Q", b, pos)[0]
        t = struct.unpack_from("<I", b, pos)[0]
        pos = skip_val(t, pos + 4)
    head = b[:8] + struct.pack("<Q", 0) + b[16:pos]
    return head[:limit]


for p in glob.glob(os.path.join(shared, "data/seed-cerebellum/model-data/*/*.txt")):
    put("recipe_fuzz", os.path.basename(p), open(p, "rb").read())
put("recipe_fuzz", "hand.txt", "# comment\n\xef\xbb\xbfoutput.weight=q6_K\nblk\\.[0-9]+\\.ffn_(up|gate)=iq4_xs token_embd=q4_K\n")
for p in glob.glob(os.path.join(shared, "data/seed-cerebellum/**/*.json"), recursive=True):
    put("json_inputs_fuzz", os.path.basename(p), open(p, "rb").read())
put("json_inputs_fuzz", "recipe.json", '{"schema":"cerebellum.recipe/1","base":"Q4_K_M","types":{"output.weight":"q6_K"},'
    '"rules":[{"pattern":"ffn_down","type":"q5_K"}]}')
put("json_inputs_fuzz", "constraints.json", '{"allowed_types":["q4_K","q6_K"],"never_quantize":["norm"],'
    '"rules":[{"name":"blk\\\\.0\\\\..*","min_type":"q4_K","max_type":"q8_0","types":["q5_K"]}]}')
put("journal_fuzz", "j.jsonl",
    '{"kind":"header","schema":"cerebellum.measure/1","model_sha256":"ab","base":{"name":"Q4_K_M","types":{"a":"q4_K"}},'
    '"texts":[{"domain":"en","path":"t","sha256":"cd"}],"settings":{"ctx":128}}\n'
    '{"kind":"baseline","domain":"en","n_chunks":3,"n_tokens":300,"kld_mean":0.01,"kld_se":0.001}\n'
    '{"kind":"measurement","domain":"en","direction":"ablate","unit":{"id":"a","level":"tensor","tensors":["a"]},'
    '"types":{"a":"q2_K"},"n_chunks":3,"n_tokens":300,"kld_mean":0.02,"kld_se":0.002,"delta_kld":0.01,'
    '"delta_kld_se":0.001,"stopped":"tight","delta_kld_samples":[0.01,0.011]}\n'
    '{"kind":"probe","domain":"en","probe":"ladder","units":[{"id":"a","level":"tensor","tensors":["a"]}],'
    '"types":{"a":"q3_K"},"n_chunks":2,"n_tokens":200,"kld_mean":0.02,"kld_se":0.002,"delta_kld":0.01,'
    '"delta_kld_se":0.001,"predicted_delta_kld":0.01}\n')
for m in ("stories260K.gguf", "cb-dense-12l-F16.gguf", "cb-hybrid-moe-F16.gguf"):
    put("gguf_fuzz", m, gguf_kv_only(os.path.join(shared, "models", m)))
csv = sorted(glob.glob(os.path.join(shared, "data/mmlu/dev/*.csv")))[:2]
for p in csv:
    put("bench_formats_fuzz", os.path.basename(p), open(p, "rb").read()[:4096])
put("bench_formats_fuzz", "pylist.txt", "['a', \"b\\n\", '''c''', 'd\\x41\\u00e9']")
put("bench_formats_fuzz", "budget.txt", "3.5bpw")
# Inputs that once crashed a target (fuzz/regressions/<target>/): kept as seeds.
here = os.path.dirname(os.path.abspath(__file__))
for p in glob.glob(os.path.join(here, "../fuzz/regressions/*/*")):
    put(os.path.basename(os.path.dirname(p)), "regression-" + os.path.basename(p), open(p, "rb").read())
# imatrix seeds from our own writer (both formats), when the tool is built.
if cli and os.path.exists(cli):
    d = os.path.join(out, "imatrix_fuzz")
    os.makedirs(d, exist_ok=True)
    for fmt in ("dat", "gguf"):
        subprocess.run([cli, "-q", "imatrix", "--model", os.path.join(shared, "models/stories260K.gguf"),
                        "--text", os.path.join(shared, "data/docs-en-calib.txt"), "--chunks", "1", "--ctx", "64",
                        "--threads", "2", "--out", os.path.join(d, "stories." + fmt)], check=True,
                       stdout=subprocess.DEVNULL)
