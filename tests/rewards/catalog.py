"""Builders shared by the length-reward catalog tests (dler, grpo-lambda, hapo, hbpo, crf, baselines)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import jsonl, parse_jsonl, sample_record

ER_BIN = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "er")


def group(lengths, correct, gid: str = "q", finish=None, **fields) -> list[dict]:
    """One group of sample records with `completion_tokens` = lengths and `correct` set (None = null)."""
    out = []
    for i, (n, c) in enumerate(zip(lengths, correct)):
        rec = sample_record(gid, i, len(lengths), completion_tokens=int(n),
                            correct=None if c is None else bool(c),
                            finish_reason=(finish[i] if finish else "stop"))
        for key, value in fields.items():
            rec[key] = value[i] if isinstance(value, (list, tuple)) else value
        out.append(rec)
    return out


def score(tmp_path, rows: list[dict], *args: str, name: str = "in.jsonl") -> subprocess.CompletedProcess:
    """`.venv/bin/er score FILE --workers 0 ARGS` on `rows`, as a shell would run it."""
    path = tmp_path / name
    path.write_bytes(jsonl(rows))
    return subprocess.run([ER_BIN, "score", str(path), "--workers", "0", *args], capture_output=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def rewards(proc: subprocess.CompletedProcess, key: str) -> list:
    assert proc.returncode == 0, proc.stderr.decode()
    return [r["rewards"][key] for r in parse_jsonl(proc.stdout)]


def usage_error(tmp_path, spec: str, parameter: str) -> str:
    """`er score -r SPEC` must exit 2 with a message naming `parameter`; returns stderr."""
    proc = score(tmp_path, group([10], [1]), "-r", spec)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert parameter in err, err
    return err
