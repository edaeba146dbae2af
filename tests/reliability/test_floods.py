"""Promise 6: floods. Memory stays flat whatever the input size; a giant line is rejected with a size
message, not an out-of-memory kill. The long floods are marked `soak` (`make soak`) and write their
figures to bench/results/soak-*.txt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ER

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"

GENERATOR = r"""
import sys, orjson
n, group = int(sys.argv[1]), 8
out = sys.stdout.buffer
row = {"id": "", "prompt": "p", "answer": "4", "group_id": "", "sample_idx": 0, "group_size": group,
       "completion": "<think>some thinking here</think> \\boxed{4}", "completion_tokens": 0, "prompt_tokens": 5,
       "finish_reason": "stop", "policy": {"model": "m", "step": 0},
       "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 64, "seed": 0}, "reward": 0.0}
buf = []
for i in range(n):
    g = i // group
    row["id"] = row["group_id"] = f"g{g}"
    row["sample_idx"] = i % group
    row["completion_tokens"] = 10 + (i * 7919) % 4000
    row["reward"] = float((i * 31) % 3 == 0)
    buf.append(orjson.dumps(row))
    if len(buf) == 4096:
        out.write(b"\n".join(buf) + b"\n"); buf = []
if buf:
    out.write(b"\n".join(buf) + b"\n")
"""


def flood(n_rows: int, command: list[str]) -> tuple[float, str]:
    """Pipe n generated rows through `er ...`; returns (peak RSS MB of er, its stderr)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "gen = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE)\n"
        "er = subprocess.run(sys.argv[3:], stdin=gen.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "gen.stdout.close(); gen.wait()\n"
        "sys.stderr.buffer.write(er.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(er.returncode)\n"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper, GENERATOR, str(n_rows), *ER, *command], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return int(proc.stdout.strip()) / 1024, proc.stderr.decode()


def test_a_100mb_line_is_rejected_with_its_size_not_an_oom(tmp_path):
    code = "import sys; o=sys.stdout.buffer; o.write(b'{\"pad\": \"'); [o.write(b'x' * 1048576) for _ in range(100)]; o.write(b'\"}\\n')"
    gen = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    proc = subprocess.run([*ER, "advantage", "--max-line-bytes", str(64 * 1024 * 1024)], stdin=gen.stdout,
                          capture_output=True)
    gen.stdout.close()
    gen.wait()
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "<stdin>:1: line of 104857611 bytes is over --max-line-bytes 67108864" in err


@pytest.mark.parametrize("n_rows", [20_000, 200_000])
def test_advantage_memory_does_not_grow_with_input(n_rows):
    rss, err = flood(n_rows, ["advantage", "-e", "batch", "--batch-groups", "64"])
    assert f"{n_rows} in, {n_rows} out" in err
    assert rss < 300


@pytest.mark.soak
def test_soak_10m_rows_through_advantage_with_flat_memory():
    figures = []
    for n in (100_000, 1_000_000, 10_000_000):
        rss, err = flood(n, ["advantage", "-e", "batch", "--batch-groups", "64"])
        assert f"{n} in, {n} out" in err
        figures.append((n, rss))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak-advantage.txt").write_text(
        "er advantage -e batch, peak RSS by input size\n" + "\n".join(f"{n:>11,} rows  {r:6.1f} MB" for n, r in figures) + "\n")
    assert figures[-1][1] < 300 and figures[-1][1] < figures[0][1] * 1.5


@pytest.mark.soak
def test_soak_1m_rows_through_score_with_flat_memory():
    figures = []
    for n in (100_000, 1_000_000):
        rss, err = flood(n, ["score", "-r", "length", "-r", "format"])
        assert f"{n} in, {n} out" in err
        figures.append((n, rss))
    (RESULTS / "soak-score.txt").write_text(
        "er score -r length -r format, peak RSS by input size\n" + "\n".join(f"{n:>11,} rows  {r:6.1f} MB" for n, r in figures) + "\n")
    assert figures[-1][1] < 300 and figures[-1][1] < figures[0][1] * 1.5
