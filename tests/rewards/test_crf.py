"""CRF: correctness-gated conciseness bonus, with a field or a local CRM model (spec rl-length-methods §6)."""

from __future__ import annotations

import numpy as np
import pytest

import tests.spec_rl_length as spec
from er.rewards import REWARDS
from tests.rewards.catalog import group, rewards, score, usage_error

C = [1, 1, 0, 1]
CONCISE = [0.9, 0.5, 0.3, 0.7]


def worked(**fields):
    return group([10] * 4, C, conciseness=CONCISE, **fields)


@pytest.fixture(scope="module")
def crm(tmp_path_factory) -> str:
    """A tiny Qwen2ForSequenceClassification (one output) built locally with er.tiny's tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    from er.tiny import build_tokenizer

    path = str(tmp_path_factory.mktemp("crm") / "crm")
    tok = build_tokenizer(path)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         num_labels=1, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    Qwen2ForSequenceClassification(config).save_pretrained(path)
    return path


def test_worked_example_matches_the_appendix():
    r = REWARDS.get("crf")(alpha=0.5, anneal="none", s_max=0.8, difficulty="field")
    got = r(worked(difficulty=0.25))
    assert got == pytest.approx(list(spec.R_crf), abs=1e-6)
    assert got == pytest.approx([1.4725, 1.2625, 0.0, 1.3675], abs=1e-6)


def test_worked_example_grpo_advantages_keep_every_correct_row_above_the_wrong_one():
    r = np.array(REWARDS.get("crf")(anneal="none", s_max=0.8, difficulty="field")(worked(difficulty=0.25)))
    adv = (r - r.mean()) / (r.std(ddof=1) + 1e-6)
    assert adv == pytest.approx([0.6485, 0.3437, -1.4883, 0.4961], abs=5e-5)


def test_group_difficulty_is_one_minus_the_pass_rate():
    got = REWARDS.get("crf")(anneal="none", s_max=0.8)(worked())  # pass rate 3/4 -> d = 0.25
    assert got == pytest.approx([1.4725, 1.2625, 0.0, 1.3675], abs=1e-6)


def test_linear_and_cosine_annealing_from_the_policy_step():
    rows = group([10], [1], conciseness=1.0)
    for step, lin, cos in [(0, 1.0, 1.0), (250, 0.75, 0.5 * (1 + np.cos(np.pi / 4))), (1000, 0.0, 0.0), (5000, 0.0, 0.0)]:
        rows[0]["policy"]["step"] = step
        assert REWARDS.get("crf")(difficulty="none")(rows) == pytest.approx([1 + 0.5 * lin])
        assert REWARDS.get("crf")(difficulty="none", anneal="cosine")(rows) == pytest.approx([1 + 0.5 * cos])


def test_wrong_answers_never_gain_and_null_verdicts_are_null():
    got = REWARDS.get("crf")(anneal="none")(group([1, 2, 3], [0, None, 1], conciseness=[1.0, 1.0, 0.1]))
    assert got[0] == 0.0 and got[1] is None and got[2] > 1.0


def test_local_model_is_loaded_once_and_scores_in_the_crm_range(crm):
    r = REWARDS.get("crf")(model=crm, anneal="none", difficulty="none", alpha=1.0)
    rows = group([5, 6, 7], [1, 1, 0], completion=["<think>2+2</think> \\boxed{4}", "4", "no"])
    assert r._model is None
    first = r(rows)
    model = r._model
    second = r(rows)
    assert r._model is model and first == second
    assert first[2] == 0.0 and all(1.1 <= v <= 2.0 for v in first[:2])
    assert first[0] != first[1]  # the model reads the completion
    direct = model([("question q", "<think>2+2</think> \\boxed{4}"), ("question q", "4")])
    assert first[:2] == pytest.approx([1 + c for c in direct], abs=1e-6)


def test_cli_with_a_field_and_with_a_model(tmp_path, crm):
    proc = score(tmp_path, worked(difficulty=0.25), "-r", "crf:anneal=none,s_max=0.8,difficulty=field")
    assert rewards(proc, "crf") == pytest.approx([1.4725, 1.2625, 0.0, 1.3675], abs=1e-6)
    rows = group([5, 6], [1, 0])
    proc = score(tmp_path, rows, "-r", f"crf:model={crm},anneal=none,difficulty=none")
    got = rewards(proc, "crf")
    assert 1.05 <= got[0] <= 1.5 and got[1] == 0.0


def test_cli_missing_conciseness_field_names_the_line(tmp_path):
    rows = worked()
    del rows[3]["conciseness"]
    proc = score(tmp_path, rows, "-r", "crf")
    assert proc.returncode == 1 and ":4:" in proc.stderr.decode() and "conciseness" in proc.stderr.decode()


@pytest.mark.parametrize("spec_,parameter", [
    ("crf:alpha=-1", "alpha"), ("crf:anneal=exp", "anneal"), ("crf:total_steps=0", "total_steps"),
    ("crf:difficulty=hard", "difficulty"),
])
def test_bad_parameters_are_usage_errors_naming_the_parameter(tmp_path, spec_, parameter):
    usage_error(tmp_path, spec_, parameter)
