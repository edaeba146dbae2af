"""`er update` on the command line: metrics records, advantages from rewards, losses, bad input."""

from __future__ import annotations

import math
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from er.schema import errors as schema_errors
from tests.train.helpers import read_jsonl, run_er, write_jsonl


def _rows(n_groups=2, size=4, **extra):
    rows = []
    for g in range(n_groups):
        for i in range(size):
            rows.append({"id": f"p{g}", "prompt": f"{g} + 1 =", "group_id": f"g{g}", "group_size": size,
                         "sample_idx": i, "completion": f" {g + 1}" + " 0" * i, "completion_tokens": 2 + 2 * i,
                         "finish_reason": "stop", **extra})
    return rows


def _update(tmp_path, capsys, rows, *args, name="in.jsonl"):
    src = write_jsonl(tmp_path / name, rows) if rows is not None else name
    out = tmp_path / "metrics.jsonl"
    code, err = run_er(["update", "--out", tmp_path / "ck", *args, src, "-o", out], capsys)
    return code, err, (read_jsonl(out) if code == 0 else None)


def test_metrics_records_validate_and_carry_the_step_fields(tiny_model, tmp_path, capsys):
    rows = _rows(4, advantage=0.5)
    for i, r in enumerate(rows):
        r["advantage"] = [1.0, -1.0, 0.5, -0.5][i % 4]
        r["reward"] = float(i % 2)
    code, err, metrics = _update(tmp_path, capsys, rows, "-m", tiny_model, "--batch-size", "8", "--lr", "1e-3",
                                 "--max-tokens-per-micro-batch", "40", "--kl-coef", "0.01", "--kl", "k3")
    assert code == 0, err
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        assert schema_errors(m, "metrics") == []
        assert m["samples"] == 8 and m["micro_batches"] >= 2
        assert 0.0 <= m["padding_frac"] < 0.5
        assert m["reward_mean"] == 0.5 and m["advantage_mean"] == 0.0
        assert m["kl"] == pytest.approx(0.0, abs=1e-9) if m["step"] == 1 else m["kl"] > 0
        assert m["lr"] == 1e-3 and m["grad_norm"] > 0
    assert metrics[-1]["checkpoint"] is None  # no --save-every: the end-of-run checkpoint is logged on stderr
    assert os.readlink(tmp_path / "ck" / "latest") == "step-2"


def test_rewards_without_advantages_use_the_named_estimator(tiny_model, tmp_path, capsys):
    rows = _rows(2)
    for i, r in enumerate(rows):
        r["reward"] = float(i % 4 < 2)
    code, err, metrics = _update(tmp_path, capsys, rows, "-m", tiny_model, "--batch-size", "8",
                                 "--estimator", "rloo")
    assert code == 0, err
    assert "computing them with --estimator rloo" in err
    assert metrics[0]["advantage_mean"] == pytest.approx(0.0, abs=1e-12)


def test_a_step_never_splits_a_group(tiny_model, tmp_path, capsys):
    code, err, metrics = _update(tmp_path, capsys, _rows(3, advantage=1.0), "-m", tiny_model, "--batch-size", "6")
    assert code == 0, err
    assert [m["samples"] for m in metrics] == [8, 4]


def test_drpo_loss_consumes_the_drpo_estimator_fields(tiny_model, tmp_path, capsys):
    rows = _rows(2)
    for i, r in enumerate(rows):
        r["reward"] = float(i % 4 < 2)
    code, err, metrics = _update(tmp_path, capsys, rows, "-m", tiny_model, "--loss", "drpo", "--batch-size", "8",
                                 "--lr", "1e-3", "--max-tokens-per-micro-batch", "16", "--ppo-epochs", "2")
    assert code == 0, err
    assert "--estimator drpo" in err
    assert metrics[0]["drpo_groups"] == 2  # both groups have correct and wrong rows
    assert metrics[0]["kl"] is not None and metrics[0]["clip_frac"] is None


def test_sft_takes_dataset_decomposition_batches_as_steps(tiny_model, tmp_path, capsys):
    rows = []
    for b, (bucket, n) in enumerate([(3, 4), (4, 2), (3, 4)]):
        for j in range(n):
            rows.append({"batch": b, "bucket": bucket, "doc_id": j, "offset": 0,
                         "token_ids": [(7 * j + t) % 300 + 10 for t in range(1 << bucket)]})
    code, err, metrics = _update(tmp_path, capsys, rows, "-m", tiny_model, "--loss", "sft", "--lr", "1e-3")
    assert code == 0, err
    assert [m["samples"] for m in metrics] == [4, 2, 4]
    assert [m["tokens"] for m in metrics] == [28, 30, 28]  # 2^i - 1 predicted tokens per chunk
    assert all(m["padding_frac"] == 0.0 for m in metrics)


def test_sft_trains_on_er_decompose_batches_in_arrow_unchanged(tiny_model, tmp_path, capsys):
    docs = [{"id": f"d{i}", "token_ids": [(13 * i + t) % 290 + 10 for t in range(8 + 7 * i)]} for i in range(16)]
    batches = tmp_path / "batches.arrow"
    code, err = run_er(["decompose", write_jsonl(tmp_path / "docs.jsonl", docs), "--batches", "--tokens-per-batch", "64",
                        "--min-len", "8", "--max-len", "32", "--seed", "0", "--format", "arrow", "-o", batches], capsys)
    assert code == 0, err
    table = pa.ipc.open_file(str(batches)).read_all()  # -o x.arrow: the IPC file format
    steps = len(set(table.column("batch").to_pylist()))
    code, err, metrics = _update(tmp_path, capsys, None, "-m", tiny_model, "--loss", "sft", "--lr", "1e-3", name=batches)
    assert code == 0, err
    assert len(metrics) == steps
    # every step holds b = 64 tokens of one bucket, 2^i - 1 of each chunk predicted, no padding
    assert all(m["tokens"] == 64 - m["samples"] and m["padding_frac"] == 0.0 for m in metrics)
    assert sum(m["samples"] for m in metrics) == table.num_rows


def test_mode_switch_loss_is_added_and_reported(tiny_model, tmp_path, capsys):
    rows = _rows(2, advantage=0.5)
    for r in rows:
        r["preferred_mode"] = "short" if r["group_id"] == "g0" else "long"
        r["base_prompt"] = "1 + 1 ="
    code, err, metrics = _update(tmp_path, capsys, rows, "-m", tiny_model, "--batch-size", "8",
                                 "--mode-switch-coef", "0.5", "--mode-tokens", "<think>,</think>")
    assert code == 0, err
    # untrained model: logits nearly equal, so each 2-way cross-entropy is about log 2
    assert metrics[0]["mode_switch_loss"] == pytest.approx(math.log(2), abs=0.05)
    assert metrics[0]["loss"] == pytest.approx(metrics[0]["pg_loss"] + 0.5 * metrics[0]["mode_switch_loss"], abs=1e-6)
    code, err, _ = _update(tmp_path, capsys, rows, "-m", tiny_model, "--mode-switch-coef", "0.5")
    assert code == 2 and "--mode-tokens" in err


# ---- bad input ---------------------------------------------------------------------------------------

def test_missing_advantage_and_reward_is_an_error_with_the_line(tiny_model, tmp_path, capsys):
    code, err, _ = _update(tmp_path, capsys, _rows(1), "-m", tiny_model)
    assert code == 1
    assert "in.jsonl:1:" in err and "advantage" in err and "reward" in err


def test_missing_completion_is_an_error_with_the_line(tiny_model, tmp_path, capsys):
    rows = _rows(1, advantage=1.0)
    del rows[2]["completion"]
    code, err, _ = _update(tmp_path, capsys, rows, "-m", tiny_model)
    assert code == 1 and "in.jsonl:3:" in err and "completion" in err


def test_nan_advantage_is_an_error_with_the_line(tiny_model, tmp_path, capsys):
    rows = _rows(1, advantage=1.0)
    rows[1]["advantage"] = float("nan")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    code, err, _ = _update(tmp_path, capsys, None, "-m", tiny_model, name=str(tmp_path / "in.parquet"))
    assert code == 1 and "in.parquet:2:" in err and "advantage" in err and "nan" in err


def test_token_ids_outside_the_vocabulary_are_an_error(tiny_model, tmp_path, capsys):
    rows = _rows(1, advantage=1.0)
    rows[3]["token_ids"] = [5, 100000]
    code, err, _ = _update(tmp_path, capsys, rows, "-m", tiny_model)
    assert code == 1 and "in.jsonl:4:" in err and "100000" in err and "vocabulary" in err


def test_rejects_keeps_going_past_bad_rows(tiny_model, tmp_path, capsys):
    rows = _rows(2, advantage=1.0)
    rows[5]["token_ids"] = [100000]
    code, err, metrics = _update(tmp_path, capsys, rows, "-m", tiny_model, "--batch-size", "8",
                                 "--rejects", tmp_path / "rej.jsonl")
    assert code == 0, err
    assert metrics[0]["samples"] == 7
    assert [r["line"] for r in read_jsonl(tmp_path / "rej.jsonl")] == [6]
    assert "8 in, 1 out, 1 rejected" in err


def test_rows_from_another_policy_warn_or_fail_with_strict(model_copy, tmp_path, capsys):
    rows = _rows(1, advantage=1.0, policy={"model": "someone/else", "step": 3})
    code, err, _ = _update(tmp_path, capsys, rows, "-m", model_copy)
    assert code == 0 and "warning" in err and "someone/else" in err and "4 rows sampled from another policy" in err
    code, err, _ = _update(tmp_path, capsys, rows, "-m", model_copy, "--strict")
    assert code == 1 and "in.jsonl:1:" in err and "someone/else" in err
    # samples from one of this run's own checkpoints are on-policy enough: no warning
    own = _rows(1, advantage=1.0, policy={"model": str(tmp_path / "ck" / "latest"), "step": 1})
    code, err, _ = _update(tmp_path, capsys, own, "-m", model_copy, "--strict")
    assert code == 0, err


@pytest.mark.parametrize("args, message", [
    (["--loss", "sft", "--kl-coef", "0.01"], "--kl-coef applies to --loss grpo only"),
    (["--loss", "drpo", "--kl-coef", "0.01"], "--kl-coef applies to --loss grpo only"),
    (["--ref-model", "other"], "--ref-model is only used with --kl-coef > 0"),
    (["--loss", "sft", "--entropy-coef", "0.01"], "--entropy-coef applies to --loss grpo or drpo"),
])
def test_a_term_the_loss_has_no_place_for_is_a_usage_error(tiny_model, tmp_path, capsys, args, message):
    code, err, _ = _update(tmp_path, capsys, _rows(1, advantage=1.0), "-m", tiny_model, *args)
    assert code == 2 and message in err
    assert not (tmp_path / "ck").exists()  # refused before anything is loaded or written


def test_an_unwritable_out_dir_is_a_usage_error(tiny_model, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    write_jsonl(tmp_path / "in.jsonl", _rows(1, advantage=1.0))
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "file" / "ck", tmp_path / "in.jsonl"], capsys)
    assert code == 2 and "not writable" in err


def test_out_of_memory_suggests_a_smaller_micro_batch(tiny_model, tmp_path):
    """A real OOM cannot be provoked on this CPU machine; the forward raises torch's OutOfMemoryError."""
    from er.errors import ErError
    from er.train.data import Example, StepBatch
    from er.train.trainer import Trainer, UpdateConfig

    trainer = Trainer(tiny_model, str(tmp_path / "ck"), UpdateConfig(max_tokens_per_micro_batch=4096))

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    trainer.module.forward = boom
    with pytest.raises(ErError, match="lower --max-tokens-per-micro-batch \\(now 4096\\)"):
        trainer.run_step(StepBatch([Example(ids=[10, 11, 12], prompt_len=1, advantage=1.0)], 1, 1))
