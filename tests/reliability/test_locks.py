"""One writer per checkpoint directory and per state file (er.locking).

A second `er update --out DIR` or `er score --reward hapo --state FILE` while one runs is refused with
one line naming the holder (exit 2) and writes nothing; the first loses nothing. The lock dies with
its process: after a SIGKILL the next run starts. (`test_crash.py` SIGKILLs `er update` repeatedly and
resumes into the same directory, so a stale checkpoint-directory lock would fail it too.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.helpers import ER, jsonl, sample_record
from tests.train.helpers import run_er as run_in_process


def wait_for_holder(lock_file: Path, pid: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock_file.exists() and lock_file.read_text().startswith(f"pid {pid} on "):
            return
        assert proc.poll() is None, proc.communicate()[1].decode()
        time.sleep(0.1)
    raise AssertionError(f"{lock_file} never named pid {pid}")


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def sft_rows(n: int) -> bytes:
    return b"".join(orjson.dumps({"prompt": f"copy {i % 5}:", "completion": f" {i % 5} {i % 3}"}) + b"\n"
                    for i in range(n))


def test_a_second_er_update_into_the_same_directory_is_refused_and_the_first_loses_nothing(tiny_model, tmp_path,
                                                                                          capsys):
    ckpt = tmp_path / "ckpt"
    first = subprocess.Popen([*ER, "update", "-m", tiny_model, "--out", str(ckpt), "--loss", "sft", "--batch-size", "2",
                              "--save-every", "1", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_for_holder(ckpt / ".er-writer.lock", first.pid, first)
        data = tmp_path / "other.jsonl"
        data.write_bytes(sft_rows(4))
        code, err = run_in_process(["update", "-m", tiny_model, "--out", ckpt, "--loss", "sft", "--batch-size", "2",
                                    "--save-every", "1", "-q", data], capsys)
        assert code == 2
        assert one_line(err).startswith(f"er update: --out {ckpt}: another er update is writing this checkpoint "
                                        f"directory (pid {first.pid} on ")
        assert "one writer at a time" in err
        out, err = first.communicate(sft_rows(6), timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err.decode()
    assert [m["step"] for m in map(orjson.loads, out.splitlines())] == [1, 2, 3]
    assert sorted(p.name for p in ckpt.iterdir() if p.name.startswith("step-")) == ["step-1", "step-2", "step-3"]
    assert os.readlink(ckpt / "latest") == "step-3"
    for n in (1, 2, 3):
        state = orjson.loads((ckpt / "trainer-state" / f"step-{n}" / "er_state.json").read_bytes())
        assert state["step"] == n and state["samples_seen"] == 2 * n  # the first run's own state, whole


def hapo_rows(prefix: str, n: int) -> bytes:
    return jsonl(sample_record(f"{prefix}{i}", 0, 1, correct=True, completion_tokens=10 + i % 40) for i in range(n))


def hapo(state: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([*ER, "score", "-r", "hapo:save_every=100", "--state", str(state), "-q"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def test_a_second_hapo_scorer_on_the_same_state_file_is_refused_and_no_history_is_lost(tmp_path):
    state = tmp_path / "same.json"
    rows, split = hapo_rows("a", 3000), len(hapo_rows("a", 1000))
    first = hapo(state)
    try:
        first.stdin.write(rows[:split])
        first.stdin.flush()
        wait_for_holder(tmp_path / ".same.json.er-writer.lock", first.pid, first)
        second = subprocess.run([*ER, "score", "-r", "hapo", "--state", str(state)], input=hapo_rows("b", 1000),
                                capture_output=True, timeout=120)
        assert second.returncode == 2
        err = one_line(second.stderr.decode())
        assert f"--state {state}: another er score is writing this state file (pid {first.pid} on " in err
        assert not second.stdout  # nothing scored with a history it could not keep
        first.stdin.write(rows[split:])
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err.decode()
    ids = [orjson.loads(line)["id"] for line in state.read_bytes().splitlines()]
    assert sorted(ids) == sorted(f"a{i}" for i in range(3000))  # every history of the one writer


def test_a_state_file_lock_left_by_a_sigkilled_scorer_does_not_block_the_next_run(tmp_path):
    state = tmp_path / "h.json"
    killed = hapo(state)
    killed.stdin.write(hapo_rows("a", 150))
    killed.stdin.flush()
    wait_for_holder(tmp_path / ".h.json.er-writer.lock", killed.pid, killed)
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline:  # its save after 100 groups
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    saved = [orjson.loads(line)["id"] for line in state.read_bytes().splitlines()]
    assert saved == [f"a{i}" for i in range(100)]  # its last save (every 100 groups)
    after = subprocess.run([*ER, "score", "-r", "hapo", "--state", str(state), "-q"], input=hapo_rows("b", 5),
                           capture_output=True, timeout=120)
    assert after.returncode == 0, after.stderr.decode()
    ids = [orjson.loads(line)["id"] for line in state.read_bytes().splitlines()]
    assert ids == saved + [f"b{i}" for i in range(5)]


def test_a_directory_lock_dies_with_its_holder(tmp_path):
    from er.errors import UsageError
    from er.locking import WriterLock

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from er.locking import WriterLock; "
         "lock = WriterLock(sys.argv[1], flag='--out', what='this checkpoint directory', command='er update'); "
         "print('held', flush=True); time.sleep(600)", str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(UsageError, match=f"another er update is writing this checkpoint directory "
                                             f"\\(pid {holder.pid} on "):
            WriterLock(str(tmp_path), flag="--out", what="this checkpoint directory", command="er update")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".er-writer.lock").read_text().startswith(f"pid {holder.pid} ")  # stale name, no lock
    with WriterLock(str(tmp_path), flag="--out", what="this checkpoint directory", command="er update") as lock:
        assert (tmp_path / ".er-writer.lock").read_text().startswith(f"pid {os.getpid()} ")
        with pytest.raises(UsageError, match="this command already writes it"):
            WriterLock(str(tmp_path), flag="--out", what="this checkpoint directory", command="er update")
    assert lock.fd is None
    WriterLock(str(tmp_path), flag="--out", what="this checkpoint directory", command="er update").release()
