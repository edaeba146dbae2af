"""Promise 5: disk full / read-only output: one clear line, the input untouched, no half-written file
under the final name."""

from __future__ import annotations

import subprocess

from tests.helpers import ER, jsonl, run_er, sample_record

ROWS = [sample_record(f"g{i}", 0, 1, reward=1.0, pad="x" * 1000) for i in range(2000)]


def test_stdout_on_a_full_disk_is_one_line_and_exit_1(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(ROWS))
    before = src.read_bytes()
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([*ER, "advantage", str(src)], stdout=full, stderr=subprocess.PIPE)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    assert src.read_bytes() == before


def test_read_only_output_location_is_a_usage_error():
    # /proc/self is read-only for everyone, root included (directory permissions do not stop root).
    proc = run_er("advantage", "-o", "/proc/self/out.jsonl", input=jsonl(ROWS[:2]))
    assert proc.returncode == 2 and "cannot write here" in proc.stderr.decode()
    assert proc.stderr.decode().count("\n") == 1


def test_a_failed_write_leaves_no_file_under_the_final_name(tmp_path):
    out = tmp_path / "out.jsonl"
    data = jsonl(ROWS[:100]) + b"{broken\n"
    proc = run_er("advantage", "-o", str(out), input=data)
    assert proc.returncode == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
