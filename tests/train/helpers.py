"""Helpers for the training tests: write/read JSONL, run `er` in-process (torch stays imported)."""

from __future__ import annotations

import json


def write_jsonl(path, records) -> str:
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return str(path)


def read_jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_er(args, capsys) -> tuple[int, str]:
    """Run `er ARGS` in this process; returns (exit code, stderr)."""
    from er.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err
