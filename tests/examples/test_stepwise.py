"""examples/stepwise/Makefile: one make target chain per RL step, resumable, on the tiny model."""

from __future__ import annotations

import json
import os

from tests.examples.conftest import EXAMPLES, make

MAKEFILE = EXAMPLES / "stepwise" / "Makefile"


def rollouts(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_steps_chain_from_the_previous_checkpoint_and_a_finished_step_is_not_redone(tiny_vars, tmp_path):
    v = {**tiny_vars, "LR": "1e-3"}
    v.pop("STEPS")
    out = make(MAKEFILE, tmp_path, "steps=2", **v).stdout
    assert "trained 2 steps: ckpt/latest -> step-2" in out
    assert os.readlink(tmp_path / "ckpt" / "latest") == "step-2"
    for n in (1, 2):
        metrics = rollouts(tmp_path / "runs" / f"step-{n}" / "metrics.jsonl")
        assert [m["step"] for m in metrics] == [n]  # one optimizer step per make step
        assert metrics[0]["samples"] == 4  # 2 prompts x G=2
        assert (tmp_path / "runs" / f"step-{n}" / "checkpoint").read_text().strip() == f"step-{n}"
    step1 = rollouts(tmp_path / "runs" / "step-1" / "rollouts.jsonl")
    step2 = rollouts(tmp_path / "runs" / "step-2" / "rollouts.jsonl")
    assert {r["policy"]["model"] for r in step1} == {tiny_vars["MODEL"]}
    assert {(r["policy"]["model"], r["policy"]["step"]) for r in step2} == {("ckpt/latest", 1)}
    # step 1 takes positions 0 and STRIDE of the cycled prompts, step 2 positions 1 and 1+STRIDE
    assert [r["group_id"] for r in step1[::2]][0] == "gsm8k/0"
    assert [r["group_id"] for r in step2[::2]][0] == "gsm8k/1"
    assert all(r["sampling"]["max_tokens"] == 16 and "advantage" in r for r in step1 + step2)

    mtime = (tmp_path / "runs" / "step-2" / "metrics.jsonl").stat().st_mtime_ns
    again = make(MAKEFILE, tmp_path, "steps=2", **v).stdout
    assert "sampling" not in again  # nothing redone
    assert (tmp_path / "runs" / "step-2" / "metrics.jsonl").stat().st_mtime_ns == mtime

    # a step interrupted after its checkpoint was written (but before its metrics) is redone from step-1
    (tmp_path / "runs" / "step-2" / "metrics.jsonl").unlink()
    (tmp_path / "runs" / "step-2" / "checkpoint").unlink()
    redo = make(MAKEFILE, tmp_path, "steps=2", **v).stdout
    assert "step 2: discarding ckpt/step-2" in redo and "step 1:" not in redo
    assert [m["step"] for m in rollouts(tmp_path / "runs" / "step-2" / "metrics.jsonl")] == [2]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["latest", "step-1", "step-2"]


def test_missing_model_or_prompts_is_a_usage_error(tmp_path):
    import subprocess

    proc = subprocess.run(["make", "-f", str(MAKEFILE), "steps=1", "PROMPTS=p.jsonl"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "set MODEL=" in proc.stderr
