"""Zero-signal steps (every advantage 0) are skipped, counted, warned about, and a run of nothing else fails."""

from __future__ import annotations

import os

from safetensors.torch import load_file

from er.schema import errors as schema_errors
from tests.train.helpers import read_jsonl, run_er, write_jsonl


def _rows(step: int, correct: bool | None, advantage: float = 0.0, reward: float = 0.0):
    rows = []
    for g in range(2):
        for i in range(4):
            row = {"id": f"s{step}p{g}", "prompt": f"{g} + 1 =", "group_id": f"s{step}g{g}", "group_size": 4,
                   "sample_idx": i, "completion": f" {g + 1}" + " 0" * i, "finish_reason": "stop",
                   "reward": reward, "advantage": advantage if i % 2 else -advantage}
            if correct is not None:
                row["correct"] = correct
            rows.append(row)
    return rows


def _weights(path):
    return load_file(os.path.join(path, "model.safetensors"))


def test_an_all_zero_step_is_skipped_but_counted_between_trained_steps(tiny_model, tmp_path, capsys):
    rows = _rows(1, True, advantage=1.0, reward=1.0) + _rows(2, False) + _rows(3, True, advantage=1.0, reward=1.0)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--batch-size", "8", "--lr", "1e-3",
                        "--save-every", "1", src, "-o", tmp_path / "m.jsonl"], capsys)
    assert code == 0, err
    metrics = read_jsonl(tmp_path / "m.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert [m["zero_signal"] for m in metrics] == [False, True, False]
    assert all(schema_errors(m, "metrics") == [] for m in metrics)
    skipped = metrics[1]
    assert skipped["micro_batches"] == 0 and skipped["loss"] == 0.0 and skipped["grad_norm"] == 0.0
    assert skipped["samples"] == 8 and skipped["tokens"] > 0
    assert "step 2 has zero signal: no correct rows (0 of 8)" in err
    # the numbering stays: step-2 exists, and the skipped step left the weights exactly as step 1 had them
    w1, w2, w3 = (_weights(tmp_path / "ck" / f"step-{k}") for k in (1, 2, 3))
    assert all((w1[k] == w2[k]).all() for k in w1)  # no forward/backward, no weight decay
    assert any((w2[k] != w3[k]).any() for k in w2)


def test_a_run_of_only_zero_signal_steps_exits_1_and_says_so(tiny_model, tmp_path, capsys):
    rows = _rows(1, None, reward=0.5) + _rows(2, True, reward=1.0)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--batch-size", "8", src,
                        "-o", tmp_path / "m.jsonl"], capsys)
    assert code == 1
    assert [m["zero_signal"] for m in read_jsonl(tmp_path / "m.jsonl")] == [True, True]  # the record is kept
    assert "step 1 has zero signal: all rewards equal within each group (2 groups)" in err
    assert "step 2 has zero signal: every row correct (8 of 8)" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("er update: all 2 steps had zero signal") and "--max-tokens" in last
    assert os.path.realpath(tmp_path / "ck" / "latest").endswith("step-2")  # the numbering the loops rely on
    # resumed, still never trained: the same verdict (the count travels in the trainer state)
    src = write_jsonl(tmp_path / "more.jsonl", _rows(3, False))
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--batch-size", "8", "--resume", src],
                       capsys)
    assert code == 1 and "all 1 step had zero signal" in err
    assert os.path.realpath(tmp_path / "ck" / "latest").endswith("step-3")


def test_a_resumed_run_whose_policy_has_learnt_only_warns(tiny_model, tmp_path, capsys):
    src = write_jsonl(tmp_path / "a.jsonl", _rows(1, True, advantage=1.0, reward=1.0))
    assert run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--batch-size", "8", src], capsys)[0] == 0
    src = write_jsonl(tmp_path / "b.jsonl", _rows(2, False))
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--batch-size", "8", "--resume", src],
                       capsys)
    assert code == 0, err
    assert "step 2 has zero signal: no correct rows (0 of 8)" in err


def test_a_kl_term_is_signal_of_its_own(tiny_model, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", _rows(1, False))
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--batch-size", "8",
                        "--kl-coef", "0.1", src, "-o", tmp_path / "m.jsonl"], capsys)
    assert code == 0, err
    assert read_jsonl(tmp_path / "m.jsonl")[0]["zero_signal"] is False
