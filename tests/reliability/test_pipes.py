"""Promise 4: pipes. `| head`, a downstream command that dies, SIGINT/SIGTERM of the whole pipe:
no traceback, documented exit codes, no orphaned worker processes, output ends on a record boundary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from tests.helpers import ER, jsonl, sample_record


@pytest.fixture()
def big_input(tmp_path):
    path = tmp_path / "input-for-pipes.jsonl"
    rows = [sample_record(f"g{i}", j, 4, answer=str(i % 9), completion=f"<think>x</think> \\boxed{{{(i + j) % 9}}}")
            for i in range(3000) for j in range(4)]
    path.write_bytes(jsonl(rows))
    return path


def processes_mentioning(marker: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def wait_gone(marker: str, seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = processes_mentioning(marker)
        if not left:
            return []
        time.sleep(0.1)
    return processes_mentioning(marker)


def test_head_closes_the_pipe_quietly_and_no_worker_is_left(big_input):
    cmd = f"{' '.join(ER)} score -r math --workers 2 {big_input} | head -3"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr
    assert len(proc.stdout.splitlines()) == 3
    assert wait_gone(str(big_input)) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_command_cleanly(big_input, tmp_path, sig, code):
    out = tmp_path / "partial.jsonl"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([*ER, "score", "-r", "math", "--workers", "2", str(big_input)], stdout=sink,
                                stderr=subprocess.PIPE)
        time.sleep(4)  # workers started, rows flowing
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    assert wait_gone(str(big_input)) == []
    data = out.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    for line in data.splitlines():  # whatever was written is whole records
        orjson.loads(line)


def test_a_dying_downstream_command_ends_the_pipe(big_input):
    cmd = f"{' '.join(ER)} score -r math --workers 2 {big_input} | python3 -c 'import sys; sys.stdin.readline(); sys.exit(3)'"
    proc = subprocess.run(["bash", "-c", cmd + "; echo ${PIPESTATUS[@]}"], capture_output=True, timeout=120)
    statuses = proc.stdout.decode().split()
    assert statuses == ["0", "3"], proc.stderr
    assert b"Traceback" not in proc.stderr
    assert wait_gone(str(big_input)) == []


def test_killing_the_parent_kills_its_workers(big_input):
    proc = subprocess.Popen([*ER, "score", "-r", "math", "--workers", "2", str(big_input)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(4)
    assert len(processes_mentioning(str(big_input))) >= 3  # parent + 2 workers
    proc.kill()  # SIGKILL: no cleanup code runs in the parent
    proc.wait()
    assert wait_gone(str(big_input)) == []
