"""Promise: `-o` and `--rejects` never destroy what they name. A regular file or a new name is written
to a temporary name and renamed; a FIFO, a device or a symlink's link is never replaced; new files get
the umask's mode; `--rejects` may not name an input or the output."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
import time

import pytest

from tests.helpers import ER, jsonl, parse_jsonl, run_er, sample_record

ROWS = [sample_record(f"g{i}", 0, 1, reward=1.0) for i in range(3)]
BAD = jsonl(ROWS[:1]) + b"{broken\n" + jsonl(ROWS[1:])


def device(tmp_path, name: str, minor: int) -> str:
    """A private node of /dev/null (minor 3) or /dev/full (minor 7): a regression replaces this node,
    never the machine's own device."""
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        if os.geteuid() == 0:  # root without CAP_MKNOD could still rename over the machine's device
            pytest.skip("creating a device node needs CAP_MKNOD")
        return f"/dev/{name}"  # not root: a regression can only fail to rename over it, and the test fails
    return str(path)


def test_a_fifo_output_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    proc = run_er("advantage", "-o", str(fifo), input=jsonl(ROWS), timeout=60)
    reader.join(60)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert len(parse_jsonl(got[0])) == 3


def test_a_character_device_output_is_written_into_not_replaced(tmp_path):
    null = device(tmp_path, "null", 3)
    before = os.stat(null)
    proc = run_er("advantage", "-o", null, input=jsonl(ROWS))
    assert proc.returncode == 0, proc.stderr
    after = os.stat(null)
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_a_full_device_output_is_one_line_and_exit_1(tmp_path):
    full = device(tmp_path, "full", 7)
    proc = run_er("advantage", "-o", full, input=jsonl(ROWS))
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "No space left" in err, err
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_a_symlink_output_replaces_its_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "data" / "real.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    run_er("advantage", "-o", str(link), input=jsonl(ROWS), check=True)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(parse_jsonl(target.read_bytes())) == 3
    assert sorted(p.name for p in target.parent.iterdir()) == ["real.jsonl"]  # no temp file left


def test_new_output_files_get_the_umask_mode(tmp_path):
    out, rej = tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    proc = subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh", *ER, "advantage", "-o", str(out),
                           "--rejects", str(rej)], input=BAD, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(rej).st_mode) == 0o644


def test_an_existing_output_keeps_its_mode(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    out.chmod(0o640)
    run_er("advantage", "-o", str(out), input=jsonl(ROWS), check=True)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640


def test_rejects_naming_an_input_is_refused_and_the_input_untouched(tmp_path):
    src = tmp_path / "x.jsonl"
    src.write_bytes(BAD)
    alias = tmp_path / "alias.jsonl"
    alias.symlink_to(src)
    for rejects in (str(src), str(alias), str(tmp_path / "." / "x.jsonl")):
        proc = run_er("advantage", "--rejects", rejects, str(src))
        err = proc.stderr.decode()
        assert proc.returncode == 2 and "--rejects" in err and err.count("\n") == 1, err
        assert src.read_bytes() == BAD


def test_rejects_naming_stdin_is_refused(tmp_path):
    src = tmp_path / "x.jsonl"
    src.write_bytes(BAD)
    with open(src, "rb") as stdin:
        proc = subprocess.run([*ER, "advantage", "--rejects", str(src)], stdin=stdin, capture_output=True)
    assert proc.returncode == 2, proc.stderr
    assert src.read_bytes() == BAD


def test_rejects_naming_the_output_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = run_er("advantage", "-o", str(out), "--rejects", str(out), input=BAD)
    assert proc.returncode == 2 and "output" in proc.stderr.decode()
    out.write_text("keep\n")
    proc = run_er("advantage", "-o", str(out), "--rejects", str(tmp_path / "." / "out.jsonl"), input=BAD)
    assert proc.returncode == 2 and out.read_text() == "keep\n"


def test_rejects_into_an_unwritable_place_or_a_full_disk_is_one_line(tmp_path):
    full = device(tmp_path, "full", 7)
    for target, code in (("/proc/self/rej.jsonl", 2), (str(tmp_path / "no" / "rej.jsonl"), 2), (full, 1)):
        proc = run_er("advantage", "--rejects", target, input=BAD)
        err = proc.stderr.decode()
        assert proc.returncode == code and err.count("\n") == 1 and "Traceback" not in err, (target, err)


def test_rejects_to_a_fifo_is_written_into(tmp_path):
    fifo = tmp_path / "rej"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    proc = run_er("advantage", "--rejects", str(fifo), input=BAD, timeout=60)
    reader.join(60)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and parse_jsonl(got[0])[0]["line"] == 2


@pytest.mark.parametrize("existing", [None, b"old\n"], ids=["new", "existing"])
def test_sigint_with_o_file_leaves_nothing_under_the_final_name(tmp_path, existing):
    """`-o FILE` is all-or-nothing: an interrupted run leaves no file (or the old one) under the name."""
    out = tmp_path / "out.jsonl"
    if existing is not None:
        out.write_bytes(existing)
    proc = subprocess.Popen([*ER, "advantage", "-o", str(out)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(jsonl([sample_record(f"g{i}", 0, 1, reward=1.0) for i in range(2000)]))
    proc.stdin.flush()  # stdin stays open: the command is mid-stream, its temporary file written to
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".er-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".er-*")), "no temporary file appeared: the test would prove nothing"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if existing is None else ["out.jsonl"])
    if existing is not None:
        assert out.read_bytes() == existing
