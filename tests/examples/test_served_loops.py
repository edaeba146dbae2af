"""The loops with SERVER=: the step-wise Makefile, a recipe and stream.sh sample from one running `er serve`
(shared by this module) and move it to each new checkpoint in place, instead of starting an engine per step."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from er.sampling.server_control import ServerControl
from tests.examples.conftest import ENV, EXAMPLES, make, session_processes
from tests.helpers import ErServe

pytestmark = pytest.mark.vllm  # ~1.5 min on one core, most of it the server's start
pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    served = ErServe(tiny_model, "--max-model-len", "256", log_path=str(tmp_path_factory.mktemp("serve") / "log"))
    yield served
    served.stop()


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stepwise_makefile_with_server_samples_each_step_from_the_previous_checkpoint(tiny_vars, tmp_path, server):
    v = {**tiny_vars, "LR": "1e-3", "SERVER": server.url}
    v.pop("STEPS")
    out = make(EXAMPLES / "stepwise" / "Makefile", tmp_path, "steps=2", timeout=300, **v).stdout
    assert "trained 2 steps: ckpt/latest -> step-2" in out
    step1 = rows(tmp_path / "runs" / "step-1" / "rollouts.jsonl")
    step2 = rows(tmp_path / "runs" / "step-2" / "rollouts.jsonl")
    assert len(step1) == len(step2) == 4
    assert {r["sampling"]["server"] for r in step1 + step2} == {server.url}
    assert {r["policy"]["step"] for r in step1} == {None}
    assert {(r["policy"]["model"], r["policy"]["step"]) for r in step2} == {("ckpt/latest", 1)}
    assert all(len(r["token_ids"]) == len(r["logprobs"]) == r["completion_tokens"] for r in step1 + step2)
    held = ServerControl(server.url).weights()  # step 2 moved the server to step-1, in place
    assert (held.path, held.step) == (os.path.realpath(tmp_path / "ckpt" / "step-1"), 1)
    assert [m["step"] for m in rows(tmp_path / "runs" / "step-2" / "metrics.jsonl")] == [2]


def test_every_recipe_passes_server_to_its_sampler_instead_of_a_backend(tiny_vars, tmp_path):
    """The recipes include the step-wise Makefile, so SERVER= reaches their sampler (a dry run: make -n)."""
    v = {**tiny_vars, "SERVER": "http://127.0.0.1:8000"}
    for recipe in ("dler", "grpo-lambda", "hapo", "hbpo"):
        out = make(EXAMPLES / "recipes" / recipe / "Makefile", tmp_path, "-n", "step", "STEP=1", **v).stdout
        sample = next(line for line in out.splitlines() if " sample -m " in line)
        assert "--server http://127.0.0.1:8000" in sample and "--backend" not in sample, (recipe, sample)


def test_stream_sh_with_server_follows_each_checkpoint_and_leaves_nothing_running(tiny_vars, tmp_path, server):
    env = {**ENV, **tiny_vars, "STEPS": "2", "LR": "1e-3", "CKPT": str(tmp_path / "ckpt"),
           "METRICS": str(tmp_path / "metrics.jsonl"), "SERVER": server.url}
    proc = subprocess.Popen(["bash", str(EXAMPLES / "stream.sh")], env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert [m["step"] for m in rows(tmp_path / "metrics.jsonl")] == [1, 2]
    assert session_processes(proc.pid) == []
    assert server.proc.poll() is None  # the server outlives the loop
