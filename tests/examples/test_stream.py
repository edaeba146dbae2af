"""examples/stream.sh: the one long pipe stops after STEPS steps, and on a signal, with nothing left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from tests.examples.conftest import ENV, EXAMPLES, session_processes

SCRIPT = EXAMPLES / "stream.sh"


def start(tiny_vars, tmp_path, steps: int) -> subprocess.Popen:
    env = {**ENV, **tiny_vars, "STEPS": str(steps), "LR": "1e-3", "CKPT": str(tmp_path / "ckpt"),
           "METRICS": str(tmp_path / "metrics.jsonl")}
    # a session of its own, so the test can see every process the script started
    return subprocess.Popen(["bash", str(SCRIPT)], env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_pipe_takes_steps_steps_then_every_process_exits(tiny_vars, tmp_path):
    proc = start({**tiny_vars, "KEEP_LAST": "1"}, tmp_path, steps=2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert [m["samples"] for m in metrics] == [4, 4]  # 2 prompts x G=2 per step
    assert [m["checkpoint"] for m in metrics] == [str(tmp_path / "ckpt" / f"step-{n}") for n in (1, 2)]
    assert os.readlink(tmp_path / "ckpt" / "latest") == "step-2"
    # KEEP_LAST=1: step-1 and its trainer state went once step-2 was complete; latest resolves
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [".er-writer.lock", "latest", "step-2", "trainer-state"]
    assert sorted(p.name for p in (tmp_path / "ckpt" / "trainer-state").iterdir()) == ["step-2"]
    assert (tmp_path / "ckpt" / "latest" / "model.safetensors").exists()
    assert "2 x 2 prompts x G=2 done" in err
    assert session_processes(proc.pid) == []


def test_sigterm_mid_run_ends_every_stage_of_the_pipe(tiny_vars, tmp_path):
    proc = start(tiny_vars, tmp_path, steps=1000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(session_processes(proc.pid)) < 5:
        time.sleep(0.2)  # the script and its four stages (plus scorer workers) are up
    assert len(session_processes(proc.pid)) >= 5
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert "Traceback" not in err
    time.sleep(0.5)
    assert session_processes(proc.pid) == []
