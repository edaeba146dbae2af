"""examples/stepwise/Makefile: one make target chain per RL step, resumable, on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess

from tests.examples.conftest import BIN, ENV, EXAMPLES, ROOT, make

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
    # epoch by epoch over the 3 prompts: step 1 takes positions 0, 1; step 2 position 2, then the first
    # of the reshuffled second epoch, a repeat named id#1: group_ids are unique over the steps
    assert [r["group_id"] for r in step1[::2]] == ["gsm8k/0", "gsm8k/1"]
    second = [r["group_id"] for r in step2[::2]]
    assert second[0] == "gsm8k/2" and second[1].endswith("#1")
    ids = [r["id"] for r in step1[::2] + step2[::2]]
    assert ids[:3] == ["gsm8k/0", "gsm8k/1", "gsm8k/2"] and len(set(ids[2:])) == 2
    scored = subprocess.run(["bash", "-c", f"cat {tmp_path}/runs/step-*/rollouts.jsonl | {BIN / 'er'} score -r length"],
                            env=ENV, capture_output=True, timeout=120)
    assert scored.returncode == 0, scored.stderr.decode()
    assert len(scored.stdout.splitlines()) == 8
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
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [".er-writer.lock", "latest", "step-1", "step-2", "trainer-state"]

    # KEEP_LAST (default 2 at one optimizer step per make step): step 3 removes step-1, latest resolves
    assert "--keep-last 2" in make(MAKEFILE, tmp_path, "-n", "step", "STEP=3", **v).stdout
    make(MAKEFILE, tmp_path, "steps=3", **v)
    ckpt = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == [".er-writer.lock", "latest", "step-2", "step-3", "trainer-state"]
    assert sorted(p.name for p in (ckpt / "trainer-state").iterdir()) == ["step-2", "step-3"]
    assert os.readlink(ckpt / "latest") == "step-3" and (ckpt / "latest" / "config.json").exists()


def test_make_C_reads_relative_paths_from_and_writes_into_the_callers_directory(tiny_vars, tmp_path):
    caller = tmp_path / "work"
    (caller / "data").mkdir(parents=True)
    os.symlink(tiny_vars["MODEL"], caller / "model")
    (caller / "data" / "prompts.jsonl").write_text((ROOT / "tests" / "data" / "gsm8k.jsonl").read_text())
    v = {**tiny_vars, "MODEL": "model", "DATASET": "data/prompts.jsonl"}
    before = set(os.listdir(MAKEFILE.parent))
    args = ["make", "--no-print-directory", "-C", str(MAKEFILE.parent), "steps=1", *(f"{k}={x}" for k, x in v.items())]
    proc = subprocess.run(args, cwd=caller, env={**ENV, "PWD": str(caller)}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(os.listdir(MAKEFILE.parent)) == before  # nothing written into the repository
    assert os.readlink(caller / "ckpt" / "latest") == "step-1"
    assert (caller / "runs" / "step-1" / "metrics.jsonl").exists()
    assert {r["policy"]["model"] for r in rollouts(caller / "runs" / "step-1" / "rollouts.jsonl")} == {str(caller / "model")}


def test_missing_model_or_prompts_is_a_usage_error(tmp_path):
    proc = subprocess.run(["make", "-f", str(MAKEFILE), "steps=1", "PROMPTS=p.jsonl"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "set MODEL=" in proc.stderr


def test_a_keep_last_that_would_remove_the_checkpoint_a_redo_needs_is_a_usage_error(tmp_path):
    # 4 prompts x G=8 in batches of 8 samples: 4 optimizer steps per make step, so KEEP_LAST must be >= 5
    args = ["make", "-f", str(MAKEFILE), "steps=1", "MODEL=m", "PROMPTS=p.jsonl", "PROMPTS_PER_STEP=4", "G=8",
            "BATCH_SIZE=8"]
    proc = subprocess.run([*args, "KEEP_LAST=4"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "KEEP_LAST must be more than the 4 optimizer steps" in proc.stderr
    dry = subprocess.run([*args, "-n"], cwd=tmp_path, capture_output=True, text=True)
    assert "--keep-last 5" in dry.stdout, dry.stderr
    dry = subprocess.run([*args, "-n", "KEEP_LAST="], cwd=tmp_path, capture_output=True, text=True)
    assert "--keep-last" not in dry.stdout and "er update" in dry.stdout, dry.stderr


def test_the_preflight_stops_train_before_step_1_with_the_figure(tiny_vars, tmp_path):
    v = {**tiny_vars, "PREFLIGHT": "1", "PREFLIGHT_PROMPTS": "2", "MIN_PASS": "0.5"}
    args = ["make", "--no-print-directory", "-f", str(MAKEFILE), "train", *(f"{k}={x}" for k, x in v.items())]
    proc = subprocess.run(args, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "er eval: pre-flight: pass@2 = 0.000 on 2 problems" in proc.stderr
    assert "| pass@2 |" in proc.stdout or "pass@2" in proc.stdout  # the report table is shown
    assert not (tmp_path / "runs" / "preflight.md").exists() and not (tmp_path / "ckpt").exists()
