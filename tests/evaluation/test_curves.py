"""`er plot`: training curves from metrics streams, held-out points, smoothing, growing files, bad input."""

from __future__ import annotations

import struct

import orjson
import pytest

from er.evaluation.curves import ema, read_series, short_names
from tests.train.helpers import run_er


def _metrics(step, **extra):
    return {"step": step, "loss": 0.1, "kl": None, "clip_frac": 0.01 * step, "entropy": 1.0, "grad_norm": 1.0,
            "lr": 1e-6, "tokens": 100, "samples": 8, "checkpoint": None, "seconds": 0.5,
            "completion_tokens_mean": 300.0 - 10 * step, "accuracy": 0.5, **extra}


def _write(path, records, tail=b""):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + tail)
    return str(path)


def test_ema_is_tensorboards_debiased_average_and_skips_nulls():
    # w = 0.5: acc 0.5*1 = .5 -> 1/(1-.5) = 1; acc .25 + .5*3 = 1.75 -> 1.75/.75; None passes through
    assert ema([1.0, None, 3.0], 0.5) == [1.0, None, pytest.approx(1.75 / 0.75)]
    assert ema([1.0, 2.0], 0.0) == [1.0, 2.0]


def test_short_names_are_unique_and_never_absolute(tmp_path):
    assert short_names(["/x/a/metrics.jsonl", "/x/b/metrics.jsonl"]) == ["a/metrics", "b/metrics"]
    assert short_names(["/x/a/run1.jsonl.gz", "/y/run2.jsonl"]) == ["run1", "run2"]


def test_a_growing_file_is_read_up_to_its_last_complete_record(tmp_path):
    path = _write(tmp_path / "m.jsonl", [_metrics(1), _metrics(2)], tail=b'{"step": 3, "lo')
    series = read_series(path)
    assert [r["step"] for r in series.train] == [1, 2]


def test_held_out_reports_take_their_step_from_the_field_or_the_checkpoint_name(tmp_path):
    path = _write(tmp_path / "eval.jsonl", [
        {"metric": "reasoning", "model": "ck/step-20", "dataset": "gsm8k", "n": 10, "accuracy": 0.4,
         "mean_tokens": 90.0},
        {"metric": "reasoning", "model": "m", "dataset": "gsm8k", "n": 10, "accuracy": 0.5, "mean_tokens": 80.0,
         "step": 10},
    ])
    assert [(r["step"], r["accuracy"]) for r in read_series(path).held_out] == [(10, 0.5), (20, 0.4)]


def test_plot_overlays_runs_with_short_names_and_held_out_points(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _write(tmp_path / "a" / "metrics.jsonl", [_metrics(s, policy_lag_mean=0.0) for s in range(1, 6)])
    held = _write(tmp_path / "a" / "heldout.jsonl",
                  [{"metric": "reasoning", "model": f"ck/step-{s}", "dataset": "d", "n": 4, "accuracy": 0.25,
                    "mean_tokens": 100.0} for s in (2, 4)])
    b = _write(tmp_path / "b" / "metrics.jsonl", [_metrics(s) for s in range(1, 4)])
    svg = tmp_path / "run.svg"
    code, err = run_er(["plot", a, held, b, "--smooth", "0.6", "-o", svg], capsys)
    assert code == 0 and "2 run(s), 8 steps, 2 held-out points" in err
    text = svg.read_text()
    assert "a/metrics" in text and "b/metrics" in text and "accuracy (held-out)" in text
    assert str(tmp_path) not in text
    assert "no kl in the metrics" in text  # a metric no run has is said, not drawn empty
    png = tmp_path / "run.png"
    assert run_er(["plot", a, "-o", png], capsys)[0] == 0
    width, height = struct.unpack(">II", png.read_bytes()[16:24])
    assert (width, height) == (1500, 1050)
    assert run_er(["plot", a, "-o", tmp_path / "run.pdf"], capsys)[0] == 0
    assert (tmp_path / "run.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("content, args, code, message", [
    (b'{"step": 1, "loss": 0}\nnot json\n{"step": 2, "loss": 0}\n', [], 1, ":2: malformed JSON"),
    (b'{"id": "p1", "prompt": "x"}\n', [], 1, ":1: neither an er update metrics record"),
    (b'{"accuracy": 0.5, "model": "m"}\n', [], 1, ":1: an er eval report without a step"),
    (b"", [], 1, "no metrics records yet"),
    (b'{"step": 1, "loss": 0}\n', ["--smooth", "1"], 2, "--smooth must be in [0, 1)"),
])
def test_bad_input_is_one_line(tmp_path, capsys, content, args, code, message):
    path = tmp_path / "m.jsonl"
    path.write_bytes(content)
    got, err = run_er(["plot", path, "-o", tmp_path / "x.png", *args], capsys)
    assert got == code
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("er plot: ")


def test_bad_output_name_and_missing_file_are_usage_errors(tmp_path, capsys):
    path = _write(tmp_path / "m.jsonl", [_metrics(1)])
    code, err = run_er(["plot", path, "-o", tmp_path / "x.txt"], capsys)
    assert code == 2 and "-o" in err and ".png, .svg or .pdf" in err
    code, err = run_er(["plot", tmp_path / "nope.jsonl", "-o", tmp_path / "x.png"], capsys)
    assert code == 2 and "cannot read" in err
