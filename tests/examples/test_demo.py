"""The main job (`make demo`) runs end to end at tiny sizes and prints the before/after table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_prints_the_comparison_and_writes_the_plot(tmp_path):
    work = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--workdir", str(work), "--steps", "2",
         "--prompts-per-step", "4", "-G", "4", "--eval-problems", "6", "--eval-samples", "2", "--max-tokens", "64"],
        capture_output=True, timeout=600)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| run | model") and len(table) == 4  # header, rule, before, after
    assert table[2].startswith("| before |") and "tiny-reasoner" in table[2]
    assert table[3].startswith("| after |") and "ckpt/latest" in table[3]
    assert (work / "accuracy_vs_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (work / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (work / "ckpt" / "latest").is_symlink()
