"""Promise 4: pipes. `| head`, a downstream command that dies, SIGINT/SIGTERM of the whole pipe:
no traceback, documented exit codes, no orphaned worker processes, output ends on a record boundary."""

from __future__ import annotations

import os
import signal
import subprocess
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


def start_streaming(big_input, stdout, marker_arg):
    """`er score` reading a pipe that stays open: rows flow, then the input waits, so the command is
    surely mid-stream (workers alive, output partly written) when the test acts on it."""
    proc = subprocess.Popen([*ER, "score", "-r", "math", "--workers", "2", marker_arg], stdin=subprocess.PIPE,
                            stdout=stdout, stderr=subprocess.PIPE)
    data = big_input.read_bytes()
    proc.stdin.write(data[: len(data) // 4])
    proc.stdin.flush()
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_command_cleanly(big_input, tmp_path, sig, code):
    out = tmp_path / "partial.jsonl"
    with open(out, "wb") as sink:
        proc = start_streaming(big_input, sink, "-")
        deadline = time.monotonic() + 60
        while out.stat().st_size == 0 and time.monotonic() < deadline:  # wait until rows are flowing out
            time.sleep(0.1)
        assert len(processes_of(proc.pid)) >= 2  # its workers are alive
        workers = processes_of(proc.pid)
        proc.send_signal(sig)
        proc.stdin.close()
        err = proc.stderr.read()
        proc.wait(timeout=60)
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    assert wait_pids_gone(workers) == []
    data = out.read_bytes()
    assert data.endswith(b"\n")
    for line in data.splitlines():  # whatever was written is whole records
        orjson.loads(line)


def processes_of(parent: int) -> list[int]:
    """The direct children of `parent` (its worker processes)."""
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                    children.append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return children


def wait_pids_gone(pids: list[int], seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and not _zombie(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_a_dying_downstream_command_ends_the_pipe(big_input):
    cmd = f"{' '.join(ER)} score -r math --workers 2 {big_input} | python3 -c 'import sys; sys.stdin.readline(); sys.exit(3)'"
    proc = subprocess.run(["bash", "-c", cmd + "; echo ${PIPESTATUS[@]}"], capture_output=True, timeout=120)
    statuses = proc.stdout.decode().split()
    assert statuses == ["0", "3"], proc.stderr
    assert b"Traceback" not in proc.stderr
    assert wait_gone(str(big_input)) == []


def test_killing_the_parent_kills_its_workers(big_input):
    proc = start_streaming(big_input, subprocess.DEVNULL, "-")
    deadline = time.monotonic() + 60
    while len(processes_of(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = processes_of(proc.pid)
    assert len(workers) >= 2
    proc.kill()  # SIGKILL: no cleanup code runs in the parent
    proc.wait()
    assert wait_pids_gone(workers) == []
