"""er.api: the commands over iterables of dicts give what the command line gives for the same rows."""

from __future__ import annotations

import pytest

import er.api as er
from er.errors import ErError
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record

ROWS = [sample_record(f"g{g}", i, 4, completion=f"so \\boxed{{{4 if (g + i) % 3 else 5}}}", completion_tokens=10 + g * 4 + i)
        for g in range(3) for i in range(4)]


def test_score_advantage_evaluate_equal_the_pipe():
    scored = list(er.score(ROWS, reward=["math", "length:scale=0.01"]))
    advantaged = list(er.advantage(scored, estimator="grpo"))
    reports = er.evaluate(advantaged, ks=[1, 4])
    piped = run_er("score", "-r", "math", "-r", "length:scale=0.01", "--workers", "0", "-q", input=jsonl(ROWS),
                   check=True).stdout
    assert scored == parse_jsonl(piped)
    assert advantaged == parse_jsonl(run_er("advantage", "-q", input=piped, check=True).stdout)
    cli = parse_jsonl(run_er("eval", "--k", "1,4", "-q", input=jsonl(advantaged), check=True).stdout)
    assert [{k: v for k, v in r.items() if k != "dataset"} for r in reports] == \
           [{k: v for k, v in r.items() if k != "dataset"} for r in cli]  # the CLI names the dataset after stdin
    assert ROWS[0].get("rewards") is None  # the inputs are not modified


def test_score_is_a_generator_that_streams_group_by_group():
    def rows():
        yield from ROWS[:5]  # the first group, and the row that shows it has ended
        raise AssertionError("read past the first group before it was asked for")

    first = next(er.score(rows(), reward="length"))
    assert first["rewards"] == {"length": 10.0}


def test_evaluate_with_a_preset_uses_its_verifier():
    (report,) = er.evaluate([{**r, "dataset": "gsm8k"} for r in ROWS], preset="gsm8k")
    assert report["verifier"].startswith("math") and report["accuracy"] == pytest.approx(8 / 12)


def test_a_bad_row_raises_at_its_position():
    rows = [*ROWS[:4], {**ROWS[4], "reward": "high"}]
    with pytest.raises(ErError, match="reward"):
        list(er.advantage(rows))


def test_sample_and_update_on_the_tiny_model(tiny_model, tmp_path):
    prompts = [{"question": "What is 2 + 2?", "answer": "#### 4", "mine": 1}]
    samples = er.sample(prompts, model=tiny_model, n=2, max_tokens=4, seed=0, backend="transformers", preset="gsm8k")
    assert len(samples) == 2 and samples[0]["mine"] == 1 and samples[0]["answer"] == "4"
    rows = [{**s, "reward": float(i), "advantage": 1.0 if i else -1.0} for i, s in enumerate(samples)]
    metrics = er.update(rows, model=tiny_model, out=str(tmp_path / "ck"), lr=1e-3, batch_size=2)
    assert [m["step"] for m in metrics] == [1] and metrics[0]["zero_signal"] is False
    assert (tmp_path / "ck" / "latest").exists()
