"""The README's streaming loop runs as printed: the block is read from README.md and run with bash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples.conftest import ENV, EXAMPLES, ROOT


def readme_block(containing: str) -> str:
    """The README's indented code block (4-space lines, no blank line inside) that holds `containing`."""
    blocks, current = [], []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("    "):
            current.append(line[4:])
        elif current:
            blocks.append("\n".join(current))
            current = []
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"{len(found)} README blocks hold {containing!r}"
    return found[0]


@pytest.mark.slow
def test_the_streaming_loop_runs_as_printed_and_leaves_a_checkpoint(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the README's commands activate .venv; these tests do not run from a virtual environment")
    block = readme_block("er sample -m examples/tiny-reasoner --watch ckpt")
    # the repository root as the commands see it: examples/ and .venv/, nothing else
    (tmp_path / "examples").symlink_to(EXAMPLES)
    (tmp_path / ".venv").symlink_to(venv)
    script = tmp_path / "readme.sh"
    script.write_text(block + "\n")
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    proc = subprocess.run(["bash", "-euo", "pipefail", str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = [json.loads(line) for line in proc.stdout.splitlines()]
    assert metrics and [m["step"] for m in metrics] == list(range(1, len(metrics) + 1))
    latest = tmp_path / "ckpt" / "latest"
    assert os.readlink(latest) == f"step-{metrics[-1]['step']}"
    assert (latest / "config.json").exists() and (latest / "model.safetensors").exists()
    assert len(list((tmp_path / "ckpt").glob("step-*"))) == min(2, len(metrics))  # --keep-last 2
