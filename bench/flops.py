#!/usr/bin/env python3
# bench/flops.py TENSORS_JSON INFO_JSON N — floating-point operations of an
# N-token prefill of a deepseek2 GGUF, from `moepager-gguf tensors --json`
# and `moepager-gguf info --json`: 2 × the weights each token multiplies (its
# top-K of E routed experts, the shared expert, attention, router) plus
# causal absorbed-MLA attention, and the output head for the last position.
import json, sys

ts = json.load(open(sys.argv[1]))
md = {k: v.split()[-1] for k, v in json.load(open(sys.argv[2]))["metadata"].items()}
n = int(sys.argv[3])
g = lambda k: int(md["deepseek2." + k])
E, K, H = g("expert_count"), g("expert_used_count"), g("attention.head_count")
kv, rope, L = g("attention.kv_lora_rank"), g("rope.dimension_count"), g("block_count")
per_tok = 0
out = 0
for t in ts:
    s = t["shape"]
    if len(s) < 2 or t["name"] == "token_embd.weight":
        continue
    e = 1
    for d in s:
        e *= d
    if t["name"] == "output.weight":
        out = 2 * e          # logits of the last position only (-n 1)
    elif "_exps." in t["name"]:
        per_tok += 2 * e * K // E
    else:
        per_tok += 2 * e
# absorbed MLA: per head and (query, key) pair, a dot over kv + rope and a
# kv-wide weighted sum of the latent values; causal, so n(n+1)/2 pairs
attn = L * H * (2 * (kv + rope) + 2 * kv) * n * (n + 1) // 2
print(per_tok * n + attn + out)
