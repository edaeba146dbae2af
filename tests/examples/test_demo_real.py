"""`make demo-real` (DLER on SmolLM2-135M-Instruct, arithmetic word problems): its problem set, its disk
bound, and a heavily shrunk end-to-end run so the script cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from arith_task import problems  # noqa: E402
from real_model import is_built, model_dir  # noqa: E402


def test_problems_are_deterministic_by_seed_with_integer_answers_and_the_box_instruction():
    a, b = problems(7, 50), problems(7, 50)
    assert a == b and a != problems(8, 50)
    assert len({r["id"] for r in a}) == 50
    for r in a:
        assert int(r["answer"]) >= 0 and r["prompt"].endswith("Put the final answer in \\boxed{}.")


def test_the_answers_are_the_arithmetic_the_sentences_describe():
    import re

    for r in problems(3, 200):
        n = [int(x) for x in re.findall(r"\d+", r["prompt"])]
        text = r["prompt"]
        if "boxes with" in text:
            want = n[0] * n[1]
        elif "bags with" in text:
            want = n[0] * n[1] + n[2]
        elif "gives" in text and "buys" in text:
            want = n[0] + n[1] - n[2]
        elif "gives away" in text:
            want = n[0] - n[1]
        else:
            want = n[0] + n[1]
        assert int(r["answer"]) == want, text


@pytest.mark.slow  # about a minute of CPU on the real model
@pytest.mark.real
def test_demo_real_runs_end_to_end_at_tiny_sizes(tmp_path):
    if not is_built():
        message = f"the real model is not built at {model_dir()}: run `make real-model`"
        if os.environ.get("ER_REAL_MODEL_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path / "demo-real"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo_real.py"), "--workdir", str(work), "--steps", "2",
         "--prompts-per-step", "4", "-G", "2", "--eval-problems", "8", "--eval-samples", "1", "--max-tokens", "16",
         "--keep-last", "1", "--no-dynamic-sampling", "--allow-zero-signal"],
        capture_output=True, timeout=900, env=env)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 4 and table[2].startswith("| before |") and table[3].startswith("| after |")
    assert "ckpt/latest" in table[3]
    assert (work / "accuracy_vs_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (work / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    steps = sorted(p.name for p in (work / "ckpt").glob("step-*"))  # er update --keep-last 1
    assert len(steps) == 1 and (work / "ckpt" / "latest").resolve().name == steps[0]
    assert os.listdir(work / "ckpt" / "trainer-state") == steps
    assert len((work / "after.jsonl").read_bytes().splitlines()) == 8
    # At 16 tokens the model may get nothing right: each such step is said on stderr and marked in the metrics.
    metrics = [orjson.loads(line) for line in (work / "metrics.jsonl").read_bytes().splitlines()]
    metrics = [m for m in metrics if "zero_signal" in m]  # one per optimizer step
    assert metrics and proc.stderr.decode().count("has zero signal") == sum(bool(m["zero_signal"]) for m in metrics)
