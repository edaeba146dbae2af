"""er eval fits models that do not think: no think/answer split without think blocks; a plot with intervals."""

from __future__ import annotations

import math
import random

import pytest

from er.evaluation.intervals import mean_interval, wilson
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


def _rows(think: bool, seed: int = 0, n: int = 40):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        t = rng.randint(20, 200)
        extra = {"think_tokens": t // 2} if think else {}
        rows.append(sample_record(f"p{i // 4}", i % 4, 4, completion_tokens=t, correct=rng.random() < 0.5, **extra))
    return rows


def test_no_think_block_means_no_think_answer_split():
    (report,) = parse_jsonl(run_er("eval", input=jsonl(_rows(False)), check=True).stdout)
    assert report["mean_think_tokens"] is None and report["mean_answer_tokens"] is None
    table = run_er("eval", "--format", "md", input=jsonl(_rows(False)), check=True).stdout.decode()
    assert "think tok" not in table and "answer tok" not in table and "mean tok" in table
    table = run_er("eval", "--format", "md", input=jsonl(_rows(True)), check=True).stdout.decode()
    assert "think tok" in table and "answer tok" in table


def test_wilson_interval_against_hand_computed_values():
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # Wilson's interval is not empty at p = 0
    low, high = wilson(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))
    assert wilson(0, 0) is None


def test_bootstrap_mean_interval_covers_the_mean_with_the_normal_width():
    rng = random.Random(1)
    values = [rng.gauss(500, 100) for _ in range(400)]
    low, high = mean_interval(values)
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    assert low < mean < high
    assert (high - low) == pytest.approx(2 * 1.96 * sd / math.sqrt(len(values)), rel=0.15)
    assert mean_interval(values) == (low, high)  # a fixed seed: the same figure every time


def test_the_plot_says_completion_tokens_without_think_blocks_and_draws_intervals(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(jsonl(_rows(False)))
    b.write_bytes(jsonl(_rows(False)))  # identical runs
    out = tmp_path / "p.svg"
    run_er("eval", "--compare", str(a), str(b), "--plot", str(out), "-q", check=True)
    svg = out.read_text()
    assert "completion-token budget t" in svg and "thinking-token budget" not in svg
    assert "95% intervals" in svg
    run_er("eval", "--plot", str(out), "-q", input=jsonl(_rows(True)), check=True)
    assert "thinking-token budget t" in out.read_text()


def test_series_differ_by_marker_and_line_style(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captured = {}

    original = plt.close

    def keep(fig=None):
        captured["fig"] = fig
        return original(fig)

    plt.close = keep
    try:
        a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
        a.write_bytes(jsonl(_rows(True)))
        b.write_bytes(jsonl(_rows(True)))
        from er.evaluation.run import EvalOptions, Evaluation
        from er.io import RecordStream

        evaluation = Evaluation(EvalOptions(compare=True), n_inputs=2)
        with RecordStream("eval", [str(a), str(b)], output="/dev/null", quiet=True) as s:
            reports = evaluation.run(s)
        evaluation.plot(str(tmp_path / "p.png"), reports)
    finally:
        plt.close = original
    ax3 = captured["fig"].axes[2]
    lines = [line for line in ax3.get_lines() if line.get_label().endswith(")")]
    assert len(lines) == 2
    assert lines[0].get_marker() != lines[1].get_marker()
    assert lines[0].get_linestyle() != lines[1].get_linestyle()
    assert lines[0].get_linewidth() > lines[1].get_linewidth()  # the first stays visible under an identical second


def test_label_names_each_inputs_run_and_the_table_shows_short_model_names(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(jsonl([{**r, "policy": {"model": "/abs/models/base", "step": 0}} for r in _rows(False)]))
    b.write_bytes(jsonl([{**r, "policy": {"model": "/abs/ckpt/step-5", "step": 5}} for r in _rows(False, 1)]))
    reports = parse_jsonl(run_er("eval", str(a), str(b), "--label", "before", "--label", "after", check=True).stdout)
    assert [(r["run"], r["model"]) for r in reports] == [("before", "/abs/models/base"), ("after", "/abs/ckpt/step-5")]
    table = run_er("eval", str(a), str(b), "--label", "before", "--label", "after", "--format", "md",
                   check=True).stdout.decode()
    assert "| before | base |" in table and "| after | ckpt/step-5 |" in table and "/abs/" not in table
    proc = run_er("eval", str(a), "--label", "x", "--label", "y")
    assert proc.returncode == 2 and "one per input" in proc.stderr.decode()
