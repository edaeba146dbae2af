"""`er sample` streams whatever its input: each finished group is written at once (a FILE input too),
`| head -1` returns after the first chunk, and Ctrl-C keeps the finished groups, ending on a record
boundary, exit 130. Real subprocesses, the tiny model, more prompts than the test ever waits for."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections import Counter

import orjson
import pytest

from tests.helpers import ER, jsonl

PROMPTS = 20000  # far more than finish in the test's time: only streaming output can pass


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(jsonl({"id": f"p{i}", "prompt": f"{i} + 1 ="} for i in range(PROMPTS)))
    return str(path)


def sample_args(tiny_model, prompt_file):
    return [*ER, "sample", prompt_file, "-m", tiny_model, "--backend", "transformers", "-n", "2",
            "--max-tokens", "8", "--chunk", "1"]


def read_lines(pipe, want: int, deadline: float) -> bytes:
    """Bytes from `pipe` until it holds `want` lines, or fail at `deadline` (time.monotonic())."""
    data = b""
    fd = pipe.fileno()
    while data.count(b"\n") < want:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(data.splitlines())} lines after the deadline: output is held back"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            block = os.read(fd, 65536)
            assert block, "er sample ended before writing the lines"
            data += block
    return data


def test_a_file_input_streams_and_sigint_keeps_the_finished_groups(tiny_model, prompt_file):
    proc = subprocess.Popen(sample_args(tiny_model, prompt_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = read_lines(proc.stdout, 4, time.monotonic() + 180)
        assert proc.poll() is None, "the job finished: it was not held back, but the test proves nothing"
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    out = first + rest
    assert out.endswith(b"\n")
    records = [orjson.loads(line) for line in out.splitlines()]
    assert 4 <= len(records) < 2 * PROMPTS
    sizes = Counter(r["group_id"] for r in records)
    assert set(sizes.values()) == {2}, "a group was cut by the interrupt"
    assert [r["id"] for r in records[::2]] == [f"p{i}" for i in range(len(records) // 2)]


def test_head_1_returns_after_the_first_group(tiny_model, prompt_file):
    cmd = " ".join(f"'{a}'" for a in sample_args(tiny_model, prompt_file))
    started = time.monotonic()
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1"], capture_output=True, timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.splitlines()) == 1
    assert orjson.loads(proc.stdout)["id"] == "p0"
    assert time.monotonic() - started < 180
