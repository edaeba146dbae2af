"""Test helpers: run the real `er` command line as a subprocess, as a user's shell would; build records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
ER = [sys.executable, "-m", "er.cli"]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_er(*args: str, input: bytes | str | None = None, check: bool = False, env: dict | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess:
    if isinstance(input, str):
        input = input.encode()
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([*ER, *args], input=input, capture_output=True, timeout=timeout, env=full_env,
                          cwd=os.environ.get("ER_TEST_CWD", "/"))
    if check and proc.returncode != 0:
        raise AssertionError(f"er {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


def jsonl(records) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def parse_jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def sample_record(group: str, idx: int, size: int, **fields) -> dict:
    record = {
        "id": group, "prompt": f"question {group}", "answer": "4", "group_id": group, "sample_idx": idx,
        "group_size": size, "completion": "<think>2+2</think> \\boxed{4}", "completion_tokens": 10,
        "prompt_tokens": 5, "finish_reason": "stop", "policy": {"model": "tiny", "step": 0},
        "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 64, "seed": 0},
    }
    record.update(fields)
    return record
