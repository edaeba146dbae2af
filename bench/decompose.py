"""Benchmark `er decompose` against the bare fast tokenizer's batch encode over the same documents.

    .venv/bin/python bench/decompose.py [--quick]

Documents are generated in-process (words of the tiny tokenizer's corpus, lengths 50..6000 words)
and written once as JSONL. Baselines: `tokenizers.Tokenizer.encode_batch` and `encode_batch_fast` (Rust, all cores) over all
texts plus reading the ids out, in this process. er: the real command line as a subprocess,
`er decompose DOCS --tokenizer DIR --format arrow|jsonl -o OUT` (start-up, JSONL parsing, tokenization in
worker processes, decomposition and Arrow writing all inside the timing). Tokens/s counts the
documents' tokens (the same number for both). Prints a table and the ratio er / the faster baseline (target >= 0.7).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._util import ER  # noqa: E402


def make_docs(n: int) -> list[str]:
    rng = random.Random(0)
    words = ("the answer is sum add carry digit step so we get think first then total result question "
             "compute what of and plus minus times equals final boxed short long").split()
    return [" ".join(rng.choices(words, k=rng.randint(50, 6000))) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args()
    n = args.docs or (400 if args.quick else 1000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    import orjson
    from tokenizers import Tokenizer

    from er.tiny import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer(tmp)
        docs = make_docs(n)
        path = os.path.join(tmp, "docs.jsonl")
        with open(path, "wb") as f:
            for i, d in enumerate(docs):
                f.write(orjson.dumps({"id": str(i), "text": d}) + b"\n")
        tok = Tokenizer.from_file(os.path.join(tmp, "tokenizer.json"))
        tokens = 0
        times: dict[str, list[float]] = {}
        for _ in range(args.repeat):  # alternate the runs: the machine's load drifts
            for name in ("encode_batch", "encode_batch_fast"):
                t0 = time.perf_counter()
                ids = [e.ids for e in getattr(tok, name)(docs, add_special_tokens=False)]
                times.setdefault(f"bare {name}", []).append(time.perf_counter() - t0)
                tokens = sum(map(len, ids))
                del ids
            for fmt in ("arrow", "jsonl"):
                out = os.path.join(tmp, "chunks." + fmt)
                t0 = time.perf_counter()
                p = subprocess.run([*ER, "decompose", path, "--tokenizer", tmp, "--format", fmt, "-o", out],
                                   capture_output=True)
                times.setdefault(f"er decompose --format {fmt}", []).append(time.perf_counter() - t0)
                if p.returncode:
                    sys.exit(p.stderr.decode())
                stats = [ln for ln in p.stderr.decode().splitlines() if "tokens in" in ln]
        med = {k: statistics.median(v) for k, v in times.items()}
        base = min(med["bare encode_batch"], med["bare encode_batch_fast"])
        print(f"{n} documents, {sum(map(len, docs)) / 1e6:.1f} M chars, {tokens} tokens, {os.cpu_count()} cores, "
              f"median of {args.repeat}")
        print(f"{'run':30} {'seconds':>8} {'tokens/s':>12} {'ratio':>6}")
        for name, sec in med.items():
            print(f"{name:30} {sec:>8.2f} {tokens / sec:>12.0f} {base / sec:>6.2f}")
        print(f"ratio = tokens/s over the faster bare batch encode (target for er >= 0.7); {stats[0] if stats else ''}")


if __name__ == "__main__":
    main()
