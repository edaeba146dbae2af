"""Fixtures for the example tests: the examples' Makefiles and scripts run for real on the session's tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
GSM8K = ROOT / "tests" / "data" / "gsm8k.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "1"}


@pytest.fixture(scope="session")
def tiny(tiny_model) -> str:
    """The one tiny model every example test trains from (tests/conftest.py builds it once per session)."""
    return tiny_model


@pytest.fixture
def tiny_vars(tiny) -> dict[str, str]:
    """The make variables that turn a recipe down to the tiny model and a 3-problem GSM8K fixture."""
    return {"MODEL": tiny, "DATASET": str(GSM8K), "PRESET": "gsm8k", "BACKEND": "transformers", "G": "2",
            "PROMPTS_PER_STEP": "2", "MAX_TOKENS": "16", "STEPS": "1", "ER": str(BIN / "er"),
            "PYTHON": sys.executable, "ALLOW_ZERO_SIGNAL": "1",
            "PREFLIGHT": ""}  # the tiny model solves nothing: these are plumbing runs


def make(makefile: Path, cwd: Path, *targets: str, timeout: float = 120, **variables: str):
    """Run `make -f MAKEFILE TARGETS VAR=value ...` in `cwd`; assert it succeeded; return the result."""
    args = ["make", "--no-print-directory", "-f", str(makefile), *targets,
            *(f"{k}={v}" for k, v in variables.items())]
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def session_processes(sid: int) -> list[str]:
    """Command lines of the live processes in session `sid` (zombies excluded)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z" and int(fields[3]) == sid:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except (OSError, ValueError):
            continue
    return found
