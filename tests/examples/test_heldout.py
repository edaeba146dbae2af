"""Held-out evaluation beside training: examples/heldout.sh evaluates every K-th checkpoint in its own
process and appends the report with its step; `make train-heldout` runs it beside `make train`."""

from __future__ import annotations

import json
import os
import subprocess

from er.schema import errors as schema_errors
from tests.examples.conftest import BIN, ENV, EXAMPLES, GSM8K, make

SCRIPT = str(EXAMPLES / "heldout.sh")
MAKEFILE = EXAMPLES / "stepwise" / "Makefile"


def test_every_kth_checkpoint_is_evaluated_once_with_its_step(tiny, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for n in (1, 2, 3):  # a checkpoint is a save_pretrained directory: the tiny model stands in for each
        os.symlink(tiny, ckpt / f"step-{n}")
    (ckpt / ".heldout-stop").touch()  # training already over: evaluate what is there, then exit
    env = {**ENV, "CKPT": str(ckpt), "EVAL_EVERY": "2", "EVAL_DATASET": str(GSM8K), "EVAL_PRESET": "gsm8k",
           "EVAL_LIMIT": "2", "EVAL_MAX_TOKENS": "8", "BACKEND": "transformers", "ER": str(BIN / "er")}
    proc = subprocess.run([SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "heldout.jsonl"
    [report] = [json.loads(line) for line in out.read_text().splitlines()]
    assert report["step"] == 2 and report["model"].endswith("step-2") and report["n"] == 2
    assert schema_errors(report, "report") == []
    assert not (ckpt / ".heldout-stop").exists()
    # run again: step 2 is already in the file, nothing is redone
    (ckpt / ".heldout-stop").touch()
    assert subprocess.run([SCRIPT], env=env, capture_output=True, timeout=60).returncode == 0
    assert len(out.read_text().splitlines()) == 1


def test_heldout_needs_prompts_and_a_positive_interval(tmp_path):
    proc = subprocess.run([SCRIPT], env={**ENV, "CKPT": str(tmp_path / "ck")}, capture_output=True, text=True)
    assert proc.returncode == 2 and "set EVAL_PROMPTS" in proc.stderr
    proc = subprocess.run([SCRIPT], env={**ENV, "CKPT": str(tmp_path / "ck"), "EVAL_PROMPTS": str(GSM8K),
                                         "EVAL_EVERY": "0"}, capture_output=True, text=True)
    assert proc.returncode == 2 and "EVAL_EVERY must be a positive integer" in proc.stderr


def test_train_heldout_runs_the_watcher_beside_training(tiny_vars, tmp_path):
    v = {**tiny_vars, "EVAL_EVERY": "5", "EVAL_PROMPTS": "held.jsonl", "EVAL_LIMIT": "50"}
    dry = make(MAKEFILE, tmp_path, "-n", "train-heldout", **v).stdout
    assert "heldout.sh & watcher=$!" in dry and "EVAL_EVERY=5" in dry and 'EVAL_LIMIT="50"' in dry
    assert "STOP_FILE=ckpt/.heldout-stop" in dry and "touch ckpt/.heldout-stop" in dry
