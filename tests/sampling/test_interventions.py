"""Sampling interventions: HBPO budgets, target length (L1 / Ruler / MLT), TLDR levels, stop scaling, modes."""

from __future__ import annotations

import math
import random

import pytest

from er.errors import ErError, UsageError
from er.sampling.interventions import HBPO_PREFILL, LEVEL_TEXT, Interventions, parse_budgets

from .test_sample_transformers import BASE, PROMPTS, rendered

CHAT = [{"id": "q", "prompt": [{"role": "user", "content": "what is 3 + 4"}]}]


def test_budgets_split_g_into_contiguous_subgroups_with_budget_in_prompt_and_as_cap(er_sample, tiny_model, tokenizer):
    r = er_sample("-m", tiny_model, "-n", "6", "--budgets", "2,4,7", "--max-tokens", "50", *BASE, prompts=CHAT)
    assert r.code == 0, r.err
    assert [x["budget"] for x in r.records] == [2, 2, 4, 4, 7, 7]
    assert [x["sampling"]["max_tokens"] for x in r.records] == [2, 2, 4, 4, 7, 7]
    assert [x["sample_idx"] for x in r.records] == list(range(6))
    assert {x["group_id"] for x in r.records} == {"q"} and all(x["group_size"] == 6 for x in r.records)
    for x in r.records:
        assert x["completion_tokens"] <= x["budget"]
        assert x["prefix"] == HBPO_PREFILL.format(b=x["budget"]) == f"<think> I will answer the question with {x['budget']} tokens."
        assert x["prompt_tokens"] == len(rendered(tokenizer, CHAT[0]["prompt"], prefill=x["prefix"]))


def test_budget_split_rules():
    iv = Interventions(budgets=[512, 1024, 2048, 2560])
    subs = iv.plan({"prompt": "x"}, 16, random.Random(0))
    assert [(s.start, s.n, s.max_tokens) for s in subs] == [(0, 4, 512), (4, 4, 1024), (8, 4, 2048), (12, 4, 2560)]
    assert [(s.n) for s in iv.plan({"prompt": "x"}, 6, random.Random(0))] == [2, 1, 2, 1]
    # a record's own budget wins over the flag
    assert [(s.n, s.max_tokens) for s in iv.plan({"prompt": "x", "budget": 300}, 4, random.Random(0))] == [(4, 300)]
    with pytest.raises(UsageError):
        iv.plan({"prompt": "x"}, 3, random.Random(0))
    with pytest.raises(UsageError):
        parse_budgets("512,abc")


def test_target_length_l1_states_the_target_in_the_user_turn(er_sample, tiny_model, tokenizer):
    r = er_sample("-m", tiny_model, "-n", "1", "--max-tokens", "3", "--target-length", "50", *BASE, prompts=CHAT)
    x = r.records[0]
    assert x["target_length"] == 50
    assert x["prompt_tokens"] == len(rendered(tokenizer, CHAT[0]["prompt"], suffix="Think for 50 tokens."))
    r = er_sample("-m", tiny_model, "--max-tokens", "3", "--target-length", "900", "--target-style", "ruler", *BASE,
                  prompts=CHAT)
    assert r.records[0]["prompt_tokens"] == len(rendered(
        tokenizer, CHAT[0]["prompt"], suffix="The response should have a word count of more than 800 words."))


def test_target_length_range_is_drawn_per_prompt_from_the_seed(er_sample, tiny_model):
    prompts = [{"id": str(i), "prompt": "1 +"} for i in range(6)]
    a = er_sample("-m", tiny_model, "--max-tokens", "1", "--target-length", "100-4000", *BASE, prompts=prompts)
    b = er_sample("-m", tiny_model, "--max-tokens", "1", "--target-length", "100-4000", *BASE, prompts=prompts)
    ta = [x["target_length"] for x in a.records]
    assert ta == [x["target_length"] for x in b.records]
    assert all(100 <= t <= 4000 for t in ta) and len(set(ta)) > 1


def test_meta_length_tokens_prefill_the_assistant_turn_and_reject_unknown_targets(er_sample, tiny_model, tokenizer):
    r = er_sample("-m", tiny_model, "--max-tokens", "2", "--target-length", "150", "--target-style", "mlt", *BASE,
                  prompts=CHAT)
    x = r.records[0]
    assert x["prefix"] == "[MLT:150]" and x["target_length"] == 150
    assert x["prompt_tokens"] == len(rendered(tokenizer, CHAT[0]["prompt"], prefill="[MLT:150]"))
    r = er_sample("-m", tiny_model, "--max-tokens", "2", "--target-style", "mlt", *BASE,
                  prompts=[{"id": "z", "prompt": "x", "target_length": 123}])
    assert r.code == 1 and ":1:" in r.err and "Meta Length Token" in r.err


def test_tldr_level_instruction_and_field(er_sample, tiny_model, tokenizer):
    r = er_sample("-m", tiny_model, "--max-tokens", "2", "--level", "short", *BASE, prompts=CHAT)
    x = r.records[0]
    assert x["level"] == "short"
    assert x["prompt_tokens"] == len(rendered(tokenizer, CHAT[0]["prompt"], suffix=LEVEL_TEXT["short"]))
    prompts = [{"id": str(i), "prompt": "1 +"} for i in range(12)]
    r = er_sample("-m", tiny_model, "--max-tokens", "1", "--level", "short,medium,long", *BASE, prompts=prompts)
    assert {x["level"] for x in r.records} == {"short", "medium", "long"}
    r = er_sample("-m", tiny_model, "--max-tokens", "1", "--level", "tiny", *BASE, prompts=prompts)
    assert r.code == 2


def test_stop_scale_adds_ln_f_to_the_stop_logit_until_thinking_closes(er_sample, tiny_model, tokenizer, hf_model):
    """Processed log-probs show the exact form: z'[</think>] = z[</think>] + ln F while thinking is open."""
    import torch

    end = tokenizer.convert_tokens_to_ids("</think>")
    F = 30.0
    r = er_sample("-m", tiny_model, "-n", "8", "--max-tokens", "12", "--stop-scale", str(F), "--logprobs", *BASE,
                  prompts=PROMPTS[:1])
    assert r.code == 0, r.err
    assert all(x["sampling"]["stop_scale"] == F for x in r.records)
    closed_seen = False
    prompt = rendered(tokenizer, PROMPTS[0]["prompt"])
    for x in r.records:
        ids = torch.tensor([prompt + x["token_ids"]])
        with torch.inference_mode():
            logits = hf_model(input_ids=ids).logits[0, len(prompt) - 1:-1].double()
        open_ = True
        for t, lp, z in zip(x["token_ids"], x["logprobs"], logits):
            if open_:
                z = z.clone()
                z[end] += math.log(F)
            assert abs(torch.log_softmax(z, -1)[t].item() - lp) < 1e-4
            if t == end:
                open_ = False
                closed_seen = True
    assert closed_seen  # </think> was drawn (p ~ 30/541 per step) so the closed branch was checked


def test_stop_scale_on_eos_shortens_completions(er_sample, tiny_model):
    plain = er_sample("-m", tiny_model, "-n", "4", "--max-tokens", "16", *BASE, prompts=PROMPTS)
    scaled = er_sample("-m", tiny_model, "-n", "4", "--max-tokens", "16", "--stop-scale", "40", "--think-end", "",
                       *BASE, prompts=PROMPTS)
    mean = lambda rs: sum(x["completion_tokens"] for x in rs) / len(rs)  # noqa: E731
    assert mean(scaled.records) < 0.6 * mean(plain.records)
    assert er_sample("-m", tiny_model, "--stop-scale", "0", *BASE, prompts=PROMPTS).code == 2


def test_mode_forces_the_marker_split_halves_and_auto_reports(er_sample, tiny_model, tokenizer):
    r = er_sample("-m", tiny_model, "-n", "4", "--max-tokens", "2", "--mode", "split", *BASE, prompts=CHAT)
    assert [x["mode"] for x in r.records] == ["long", "long", "short", "short"]
    assert [x["prefix"] for x in r.records] == ["<think>\n"] * 2 + ["<think>\n\n</think>\n\n"] * 2
    for x in r.records:
        assert x["prompt_tokens"] == len(rendered(tokenizer, CHAT[0]["prompt"], prefill=x["prefix"]))
    r = er_sample("-m", tiny_model, "-n", "2", "--max-tokens", "2", "--mode", "short", *BASE, prompts=CHAT)
    assert [x["mode"] for x in r.records] == ["short", "short"]
    r = er_sample("-m", tiny_model, "-n", "2", "--max-tokens", "2", "--mode", "auto", *BASE, prompts=CHAT)
    assert all("prefix" not in x and x["mode"] == Interventions().detect_mode(x["completion"]) for x in r.records)
    assert Interventions().detect_mode("<think>\n\n</think>\n\nok") == "short"
    assert Interventions().detect_mode("<think>\nlong") == "long"
    assert Interventions().detect_mode("42") is None


def test_short_mode_prefill_closes_thinking_so_stop_scale_is_off(er_sample, tiny_model, tokenizer, hf_model):
    import torch

    r = er_sample("-m", tiny_model, "-n", "2", "--max-tokens", "6", "--mode", "short", "--stop-scale", "50",
                  "--logprobs", *BASE, prompts=CHAT)
    for x in r.records:
        prompt = rendered(tokenizer, CHAT[0]["prompt"], prefill=x["prefix"])
        with torch.inference_mode():
            logits = hf_model(input_ids=torch.tensor([prompt + x["token_ids"]])).logits[0, len(prompt) - 1:-1]
        ref = torch.log_softmax(logits.double(), -1).gather(-1, torch.tensor(x["token_ids"])[:, None]).squeeze(-1)
        assert max(abs(a - b) for a, b in zip(ref.tolist(), x["logprobs"])) < 1e-4


def test_bad_level_value_in_record_is_rejected():
    with pytest.raises(ErError):
        Interventions().plan({"prompt": "x", "level": "huge"}, 1, random.Random(0))
