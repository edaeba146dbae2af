"""Shared helpers for the benchmarks: synthetic records, timing a command, peak memory of children."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson

ER = [sys.executable, "-m", "er.cli"]

ANSWERS = ["72", "\\frac{3}{4}", "(1,2]", "204", "\\sqrt{2}", "-5", "3\\pi", "1000"]
WRONG = ["70", "\\frac{1}{2}", "[1,2]", "205", "2", "5", "\\pi", "999"]


def sample_rows(n: int, group_size: int = 8, seed: int = 0, think_words: int = 60):
    """`er sample`-shaped records with boxed answers, about half of them correct."""
    rng = random.Random(seed)
    for g in range(n // group_size):
        k = rng.randrange(len(ANSWERS))
        for i in range(group_size):
            ok = rng.random() < 0.5
            tokens = rng.randint(50, 4000)
            think = " ".join(rng.choice(("so", "then", "add", "carry", "step", "x", "we")) for _ in range(think_words))
            answer = ANSWERS[k] if ok else WRONG[k]
            yield {
                "id": f"p{g}", "prompt": f"Problem {g}: compute it.", "answer": ANSWERS[k], "group_id": f"p{g}",
                "sample_idx": i, "group_size": group_size,
                "completion": f"<think>{think}</think> The answer is $\\boxed{{{answer}}}$.",
                "completion_tokens": tokens, "prompt_tokens": 12,
                "finish_reason": "stop" if rng.random() < 0.95 else "length",
                "policy": {"model": "bench", "step": 0},
                "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 4096, "seed": 0},
                "reward": float(ok), "correct": ok,
            }


def write_jsonl(path: Path, rows) -> int:
    n = 0
    with open(path, "wb") as f:
        for r in rows:
            f.write(orjson.dumps(r) + b"\n")
            n += 1
    return n


def run_timed(args: list[str], stdin_path: Path | None = None) -> float:
    """Wall seconds of a command whose stdout goes to /dev/null; raises if it fails."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull, (open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb")) as inp:
        proc = subprocess.run(args, stdin=inp, stdout=devnull, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.decode()[-2000:]}")
    return elapsed


def peak_rss_mb_of(args: list[str]) -> float:
    """Peak resident memory (MB) of one child command, measured by a wrapper process of its own."""
    code = (
        "import resource, subprocess, sys, os\n"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, check=True).stdout
    return int(out.strip()) / 1024


def table(rows: list[tuple], header: tuple) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save(name: str, text: str) -> None:
    out = Path(__file__).resolve().parent / "results" / f"{name}.txt"
    out.write_text(text + "\n")
