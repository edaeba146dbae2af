"""Benchmark `er synth-tail`: traces/s on one core for every task's short split, mean trace tokens.

    .venv/bin/python bench/synth_tail.py [--quick]

In-process: `er.data.tail.generate` with `--with-trace` (style tail) plus JSONL serialisation
(orjson), single-threaded, for each of the 18 tasks; mean completion tokens with the tiny BPE
tokenizer (`er.tiny.build_tokenizer`) for the tail, concise and verbose styles. End to end: the
real command `er synth-tail --task addition --n N --with-trace -o FILE` as a subprocess pinned to
one core (start-up included). Baseline: the 5,000 traces/s target; the ratio column is traces/s / 5000.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench._util import ER  # noqa: E402

TARGET = 5000.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 2000 if args.quick else 10000
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    import orjson

    from er.data.tail import TASKS, generate
    from er.tiny import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tok = build_tokenizer(tmp)
        print(f"{'task':15} {'traces/s':>9} {'ratio':>6} {'tail tok':>9} {'concise':>8} {'verbose':>8} {'states':>7}")
        for name in TASKS.names():
            t0 = time.perf_counter()
            data = [orjson.dumps(r) for r in generate([name], n, "short", seed=0, with_trace=True)]
            rate = n / (time.perf_counter() - t0)
            k = min(n, 300)
            toks = {}
            for style in ("tail", "concise", "verbose"):
                rows = list(generate([name], k, "short", seed=0, with_trace=True, style=style))
                toks[style] = sum(len(tok(r["completion"])["input_ids"]) for r in rows) / k
            states = sum(orjson.loads(d)["trace_steps"] for d in data[:k]) / k
            print(f"{name:15} {rate:>9.0f} {rate / TARGET:>6.2f} {toks['tail']:>9.1f} {toks['concise']:>8.1f} "
                  f"{toks['verbose']:>8.1f} {states:>7.1f}")
        m = 20000 if not args.quick else 5000
        out = os.path.join(tmp, "out.jsonl")
        cmd = [*ER, "synth-tail", "--task", "addition", "--n", str(m), "--with-trace", "--seed", "0", "-o", out, "-q"]
        if sys.platform.startswith("linux"):
            cmd = ["taskset", "-c", str(sorted(os.sched_getaffinity(0))[0]), *cmd]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        sec = time.perf_counter() - t0
        print(f"end to end: er synth-tail --task addition --n {m} --with-trace on one core: {sec:.2f} s, "
              f"{m / sec:.0f} traces/s (ratio {m / sec / TARGET:.2f} of the 5k target, start-up included)")


if __name__ == "__main__":
    main()
