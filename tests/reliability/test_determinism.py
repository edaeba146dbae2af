"""Promise 8: determinism. The same inputs and flags give byte-identical outputs."""

from __future__ import annotations

import random

from tests.helpers import jsonl, run_er, sample_record


def rows() -> bytes:
    rng = random.Random(7)
    out = []
    for g in range(50):
        for i in range(4):
            out.append(sample_record(f"g{g}", i, 4, answer=str(g % 10), completion_tokens=rng.randint(10, 900),
                                     completion=f"<think>x</think> \\boxed{{{rng.randint(0, 9)}}}"))
    return jsonl(out)


def test_score_then_advantage_is_byte_identical_across_runs():
    data = rows()
    outs = []
    for workers in ("0", "2", "2"):
        scored = run_er("score", "-r", "math", "-r", "format", "--workers", workers, input=data, check=True).stdout
        outs.append(run_er("advantage", "-e", "batch", "--dynamic-sampling", input=scored, check=True).stdout)
    assert outs[0] == outs[1] == outs[2] and len(outs[0]) > 0
