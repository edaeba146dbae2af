"""Progress lines (er.progress): on a terminal every long command shows one on stderr; in a pipe none.

The terminal case runs the real command with stderr on a pseudo-terminal (Python's `pty`), as a user's
shell would; the pipe case with stderr captured by a pipe, as a script would.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios

import pytest

from tests.helpers import ER, jsonl, run_er
from tests.test_contract import CASES, args_for

PROGRESS = {  # command -> what its progress line shows
    "score": "rows/s", "advantage": "rows/s", "eval": "rows/s", "decompose": "rows/s",
}


def on_a_terminal(args: list[str], data: bytes, tmp_path) -> tuple[int, str]:
    """Run `er ARGS < data > out` with stderr on a pty; (exit code, what the terminal showed)."""
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120x24 terminal
    with open(src, "rb") as stdin, open(tmp_path / "out", "wb") as stdout:
        proc = subprocess.Popen([*ER, *args], stdin=stdin, stdout=stdout, stderr=slave,
                                cwd="/")
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=300), shown.decode(errors="replace")


def many(make, copies: int = 20) -> list[dict]:
    """`copies` renamed copies of the case's rows (distinct groups / documents)."""
    rows = []
    for k in range(copies):
        for r in make():
            r = dict(r)
            for field in ("group_id", "id", "doc_id"):
                if field in r:
                    r[field] = f"{r[field]}-{k}"
            rows.append(r)
    return rows


@pytest.mark.parametrize("name", sorted(PROGRESS))
def test_a_long_command_on_a_terminal_shows_a_progress_line_and_a_piped_one_does_not(name, tmp_path):
    args, make, _ = args_for(name, None, tmp_path)
    data = jsonl(many(make))
    code, shown = on_a_terminal(args, data, tmp_path)
    assert code == 0, shown
    assert f"er {name}" in shown and PROGRESS[name] in shown and "\r" in shown  # redrawn in place
    piped = run_er(*args, input=data, check=True).stderr.decode()
    assert PROGRESS[name] not in piped and "\r" not in piped and " in, " in piped  # only the summary
    quiet = on_a_terminal([*args, "-q"], data, tmp_path)[1]
    assert PROGRESS[name] not in quiet


def test_synth_tail_counts_prompts_on_a_terminal_only(tmp_path):
    args = ["synth-tail", "--n", "50", "--seed", "1"]
    code, shown = on_a_terminal(args, b"", tmp_path)
    assert code == 0, shown
    assert "er synth-tail" in shown and "prompts/s" in shown
    assert "prompts/s" not in run_er(*args, check=True).stderr.decode()


def test_update_shows_step_loss_and_tokens_per_second_on_a_terminal(tiny_model, tmp_path):
    args, make, _ = args_for("update", tiny_model, tmp_path)
    data = jsonl(many(make, 2))
    code, shown = on_a_terminal(args, data, tmp_path)
    assert code == 0, shown
    assert "er update" in shown and "steps/s" in shown and "loss=" in shown and "tok/s=" in shown
    args2, _, _ = args_for("update", tiny_model, tmp_path / "again")
    piped = run_er(*args2, input=data, check=True).stderr.decode()
    assert "steps/s" not in piped and "loss=" not in piped


def test_contract_cases_cover_the_commands_with_progress():
    assert set(PROGRESS) <= set(CASES)


def test_sample_shows_prompts_and_tokens_per_second_on_a_terminal_only(tiny_model, tmp_path):
    args, make, _ = args_for("sample", tiny_model, tmp_path)
    data = jsonl(many(make, 2))
    code, shown = on_a_terminal(args, data, tmp_path)
    assert code == 0, shown
    assert "er sample" in shown and "prompts/s" in shown and "tok/s=" in shown
    piped = run_er(*args, input=data, check=True).stderr.decode()
    assert "prompts/s" not in piped and "tok/s" not in piped
