"""Run the installed `.venv/bin/er score` on records, as a user's shell would (rewards part B tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import jsonl, parse_jsonl

ER_BIN = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "er")


def er_score(tmp_path, rows: list[dict], *args: str) -> tuple[int, list[dict], str]:
    """Write `rows` to a JSONL file, run `er score FILE ARGS`; return (exit status, output records, stderr)."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl(rows))
    proc = subprocess.run([ER_BIN, "score", str(path), "--workers", "0", *args], capture_output=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return proc.returncode, parse_jsonl(proc.stdout), proc.stderr.decode()
