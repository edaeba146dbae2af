"""The faces of the command line: bare `er`, every command's --help (fields read and written, metavars
that say what to type, wrapping at COLUMNS), one spelling for one idea."""

from __future__ import annotations

import re

import pytest

from er.cli import COMMANDS
from tests.helpers import run_er

NAMES = [name for name, _ in COMMANDS]


def test_bare_er_prints_the_command_list_and_exits_0():
    proc = run_er()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "Commands:" in out and all(name in out for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_help_says_which_fields_a_command_reads_and_writes_and_what_to_type(name):
    out = run_er(name, "--help", env={"COLUMNS": "100"}, check=True).stdout.decode()
    assert "Reads:" in out and "Optional:" in out and "Writes:" in out
    assert not re.search(r"<(list\[|str>|int>|float>|bool>)", out), out  # no Python types as metavars


def test_metavars_name_what_to_type():
    out = run_er("score", "--help", env={"COLUMNS": "200"}, check=True).stdout.decode()
    assert "--reward NAME[:KEY=VALUE,...]" in out and "--output FILE" in out and "--workers N" in out
    assert "[FILE]..." in out and "--combine sum|product" in out
    out = run_er("eval", "--help", env={"COLUMNS": "200"}, check=True).stdout.decode()
    assert "--auc-tokens T" in out and "--aes-weights A,B,C" in out and "--format jsonl|arrow|parquet|md" in out


def test_help_wraps_at_columns():
    def widest(columns):
        out = run_er("eval", "--help", env={"COLUMNS": str(columns)}, check=True).stdout.decode()
        return max(len(line) for line in out.splitlines())

    assert widest(60) <= 60
    assert 100 < widest(160) <= 160  # not capped at click's 80


def test_counts_are_spelled_dash_n_everywhere():
    for name in ("sample", "synth-tail"):
        out = run_er(name, "--help", env={"COLUMNS": "200"}, check=True).stdout.decode()
        assert re.search(r"^\s+-n\b", out, re.M), name
    one, two = (run_er("synth-tail", "-n", n, "--task", "addition", check=True).stdout.count(b"\n") for n in "12")
    assert two == 2 * one > 0
