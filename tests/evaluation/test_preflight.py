"""`er eval --min-pass RATE`: the pre-flight of a training run stops, with the figure, below the threshold."""

from __future__ import annotations

from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


def _groups(correct_in_first: int, size: int = 4, groups: int = 4):
    rows = []
    for g in range(groups):
        for i in range(size):
            rows.append(sample_record(f"p{g}", i, size, correct=g == 0 and i < correct_in_first))
    return rows


def test_below_the_threshold_it_exits_1_with_the_figure_and_what_to_change():
    proc = run_er("eval", "--min-pass", "0.5", input=jsonl(_groups(1)))
    assert proc.returncode == 1
    (report,) = parse_jsonl(proc.stdout)  # the report is written first
    assert report["pass@4"] == 0.25
    err = proc.stderr.decode().strip().splitlines()[-1]
    assert err.startswith("er eval: pre-flight: pass@4 = 0.250 on 4 problems")
    assert "--max-tokens (L_T)" in err and "easier data" in err and "stronger model" in err


def test_at_or_above_the_threshold_it_passes():
    proc = run_er("eval", "--min-pass", "0.25", input=jsonl(_groups(1)))
    assert proc.returncode == 0, proc.stderr.decode()


def test_a_rate_outside_0_1_is_a_usage_error():
    proc = run_er("eval", "--min-pass", "2", input=b"")
    assert proc.returncode == 2 and "--min-pass must be in (0, 1]" in proc.stderr.decode()
