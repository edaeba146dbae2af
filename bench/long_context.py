"""Benchmark `er sample --attention lambda` (LM-Infinite, bounded KV cache) against full attention (tiny model, CPU),
and the fidelity of `er sample --attention squeezed` (Squeezed Attention) against its KV budget (SmolLM2).

    .venv/bin/python bench/long_context.py [--quick]
    .venv/bin/python bench/long_context.py --squeezed [--quick]

A tiny Qwen2 model with max_position_embeddings = 512 (its "trained length" L_pre) gets prompts of 1x, 2x
and 4x L_pre random tokens and decodes 64 tokens greedily through er's transformers backend (HFBackend):
once with full attention (the model's default sdpa, full KV cache) and once with `--attention lambda`
(global 10, local = dist = 512, chunked prefill of 256, KV cache trimmed to the Λ). Each (variant, length)
runs in its own child process; peak memory is the child's peak RSS growth during its first long generation
(VmHWM reset through /proc/self/clear_refs after a short warm-up, minus the RSS then). Then it times a
prefill alone (max_tokens 1) and a full run; decode tok/s = (DECODE − 1) / (full − prefill). Prints a row
per (variant, length), then the lambda/full ratios at 4x and lambda's memory from 1x to 4x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

L_PRE = 512
DECODE = 128


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def child(model: str, variant: str, length: int) -> dict:
    import random
    import time

    import torch

    from er.sampling.base import Request, SamplingConfig
    from er.sampling.hf import HFBackend

    torch.set_num_threads(1)
    longctx = None
    if variant == "lambda":
        from er.sampling.longctx import parse_options

        longctx = parse_options("lambda:global=10,chunk=256", None, None)
    backend = HFBackend(model, batch_size=1, longctx=longctx)
    rng = random.Random(length)
    ids = [rng.randrange(10, 300) for _ in range(length)]
    cfg = SamplingConfig(temperature=0.0)
    backend.eos_ids = []  # decode exactly DECODE tokens
    backend.generate([Request(ids[:64], 1, 2, 0)], cfg)  # warm-up
    base = _rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak (VmHWM) to the current RSS
    [[c]] = backend.generate([Request(ids, 1, DECODE, 0)], cfg)  # the measured run: prefill + decode
    peak = _rss_kb("VmHWM")
    t0 = time.perf_counter()
    backend.generate([Request(ids, 1, 1, 0)], cfg)
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    backend.generate([Request(ids, 1, DECODE, 0)], cfg)
    total = time.perf_counter() - t0
    return {"variant": variant, "length": length, "prefill_s": prefill,
            "decode_tok_s": (len(c.token_ids) - 1) / max(total - prefill, 1e-9), "total_s": total,
            "peak_mb": max(peak - base, 0) / 1024, "tokens": len(c.token_ids)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1x and 4x only (--squeezed: one document, one budget)")
    ap.add_argument("--squeezed", action="store_true", help="Squeezed Attention: accuracy against KV budget")
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "VARIANT", "LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.squeezed:
        from bench.squeezed_fidelity import main as fidelity

        fidelity(quick=args.quick)
        return
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]))))
        return
    from er.tiny import build_tiny

    mults = (1, 4) if args.quick else (1, 2, 4, 8)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny(os.path.join(tmp, "tiny"), max_positions=L_PRE)
        rows = []
        for m in mults:
            for variant in ("full", "lambda"):
                # allocations >= 64 KiB come from mmap and go back to the OS when freed, so the peak RSS
                # follows live tensors rather than what glibc's heap keeps after frees
                env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
                out = subprocess.run([sys.executable, __file__, "--child", model, variant, str(m * L_PRE)],
                                     capture_output=True, text=True, check=True, env=env)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"tiny Qwen2, L_pre = {L_PRE}, greedy decode of {DECODE} tokens, 1 thread;"
          " peak MB = peak RSS growth over a prefill + decode")
    print(f"{'variant':8} {'prompt':>7} {'prefill s':>10} {'decode tok/s':>13} {'peak MB':>8}")
    for r in rows:
        print(f"{r['variant']:8} {r['length']:>7} {r['prefill_s']:>10.3f} {r['decode_tok_s']:>13.1f} {r['peak_mb']:>8.1f}")
    at = {(r["variant"], r["length"]): r for r in rows}
    n = mults[-1] * L_PRE
    full, lam = at[("full", n)], at[("lambda", n)]
    n = 4 * L_PRE
    full, lam = at[("full", n)], at[("lambda", n)]
    print(f"at 4x ({n} tokens): lambda/full peak memory {lam['peak_mb'] / max(full['peak_mb'], 1e-9):.2f}, "
          f"decode tok/s {lam['decode_tok_s'] / full['decode_tok_s']:.2f}, prefill time {lam['prefill_s'] / full['prefill_s']:.2f}")
    first = at[("lambda", mults[0] * L_PRE)]
    last = at[("lambda", mults[-1] * L_PRE)]
    print(f"lambda peak memory {mults[0]}x -> {mults[-1]}x: {first['peak_mb']:.1f} -> {last['peak_mb']:.1f} MB; "
          f"full: {at[('full', mults[0] * L_PRE)]['peak_mb']:.1f} -> {at[('full', mults[-1] * L_PRE)]['peak_mb']:.1f} MB")


if __name__ == "__main__":
    main()
