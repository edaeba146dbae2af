"""er sample with the transformers backend on a tiny model built locally (CPU, float32)."""

from __future__ import annotations

import math

import pytest

from er.schema import errors
from er.sampling.hf import teacher_forced_logprobs

PROMPTS = [
    {"id": "a", "prompt": "1 + 2 =", "answer": "3", "meta": {"keep": 1}},
    {"id": "b", "prompt": [{"role": "user", "content": "what is 3 + 4 and then the sum of 12 and 30 plus 7"}]},
    {"id": "c", "prompt": "<think> 12"},
    {"id": "d", "prompt": "the answer is the sum of 1234 and 5678 so we get the total of"},
]
BASE = ["--backend", "transformers", "--seed", "7"]


def rendered(tok, prompt, suffix="", prefill="", chat=None):
    """The prompt ids er sample conditions on: a string goes through the chat template by default when the
    tokenizer has one (chat=None), raw with chat=False (--no-chat); a message list always."""
    if isinstance(prompt, str) and (bool(getattr(tok, "chat_template", None)) if chat is None else chat):
        prompt = [{"role": "user", "content": prompt}]
    if isinstance(prompt, list):
        msgs = [dict(m) for m in prompt]
        if suffix:
            msgs[-1]["content"] += "\n" + suffix
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) + prefill
        return tok.encode(text, add_special_tokens=False)
    return tok.encode(prompt + ("\n" + suffix if suffix else "") + prefill)


def test_writes_g_rows_per_prompt_in_input_order_and_valid_sample_records(er_sample, tiny_model, tokenizer):
    r = er_sample("-m", tiny_model, "-n", "3", "--max-tokens", "6", "--batch-size", "2", *BASE, prompts=PROMPTS)
    assert r.code == 0, r.err
    assert [x["group_id"] for x in r.records] == [p["id"] for p in PROMPTS for _ in range(3)]
    assert [x["sample_idx"] for x in r.records] == [0, 1, 2] * 4
    assert all(x["group_size"] == 3 for x in r.records)
    for x in r.records:
        assert errors(x, "sample") == []
        assert x["policy"] == {"model": tiny_model, "step": None}
        assert x["sampling"] == {"temperature": 1.0, "top_p": 1.0, "max_tokens": 6, "seed": 7, "chat": True}
    assert r.records[0]["meta"] == {"keep": 1} and r.records[0]["answer"] == "3"  # unknown fields pass through
    for x, p in zip(r.records[::3], PROMPTS):
        assert x["prompt_tokens"] == len(rendered(tokenizer, p["prompt"]))
    assert "4 in, 12 out, 0 rejected" in r.err
    assert "tok/s" not in r.err  # no progress bar when stderr is not a TTY


def test_token_counts_are_the_generated_ids_and_finish_reason_is_length_exactly_when_the_cap_binds(er_sample, tiny_model, tokenizer):
    # --stop-scale 60 on EOS (--think-end '' is no token) makes EOS likely: both outcomes occur
    r = er_sample("-m", tiny_model, "-n", "6", "--max-tokens", "8", "--stop-scale", "60", "--think-end", "",
                  "--logprobs", *BASE, prompts=PROMPTS)
    assert r.code == 0, r.err
    eos = tokenizer.eos_token_id
    reasons = {x["finish_reason"] for x in r.records}
    assert reasons == {"stop", "length"}
    for x in r.records:
        ids = x["token_ids"]
        assert x["completion_tokens"] == len(ids) == len(x["logprobs"])
        if x["finish_reason"] == "stop":
            assert ids[-1] == eos and eos not in ids[:-1] and len(ids) <= 8
            assert tokenizer.decode(ids[:-1], skip_special_tokens=False) == x["completion"]
        else:
            assert len(ids) == 8 and eos not in ids
            assert tokenizer.decode(ids, skip_special_tokens=False) == x["completion"]


@pytest.mark.parametrize("temperature", ["1.0", "0.7"])
def test_logprobs_match_a_teacher_forced_forward_pass(er_sample, tiny_model, tokenizer, hf_model, temperature):
    r = er_sample("-m", tiny_model, "-n", "2", "--max-tokens", "10", "--logprobs", "--temperature", temperature,
                  "--batch-size", "3", *BASE, prompts=PROMPTS)
    assert r.code == 0, r.err
    for x, p in zip(r.records, [p for p in PROMPTS for _ in range(2)]):
        ref = teacher_forced_logprobs(hf_model, rendered(tokenizer, p["prompt"]), x["token_ids"], float(temperature))
        assert len(ref) == len(x["logprobs"]) == x["completion_tokens"]
        assert max(abs(a - b) for a, b in zip(ref, x["logprobs"])) < 1e-3


def test_raw_logprobs_mode_ignores_temperature_and_top_p(er_sample, tiny_model, tokenizer, hf_model):
    r = er_sample("-m", tiny_model, "-n", "2", "--max-tokens", "6", "--logprobs", "--logprobs-mode", "raw",
                  "--temperature", "0.6", "--top-p", "0.9", *BASE, prompts=PROMPTS[:2])
    assert r.code == 0, r.err
    for x, p in zip(r.records, [p for p in PROMPTS[:2] for _ in range(2)]):
        ref = teacher_forced_logprobs(hf_model, rendered(tokenizer, p["prompt"]), x["token_ids"], 1.0)
        assert max(abs(a - b) for a, b in zip(ref, x["logprobs"])) < 1e-3


def test_top_p_processed_logprobs_are_renormalised_and_tokens_stay_in_the_nucleus(er_sample, tiny_model, tokenizer, hf_model):
    import torch

    r = er_sample("-m", tiny_model, "-n", "2", "--max-tokens", "5", "--logprobs", "--top-p", "0.3", *BASE,
                  prompts=PROMPTS[:1])
    assert r.code == 0, r.err
    prompt = rendered(tokenizer, PROMPTS[0]["prompt"])
    for x in r.records:
        ids = torch.tensor([prompt + x["token_ids"]])
        with torch.inference_mode():
            logits = hf_model(input_ids=ids).logits[0, len(prompt) - 1:-1]
        for t, lp, z in zip(x["token_ids"], x["logprobs"], logits):
            p = torch.softmax(z.double(), -1)
            sp, order = p.sort(descending=True)
            keep = (sp.cumsum(-1) - sp) < 0.3
            kept = order[keep].tolist()
            assert t in kept
            assert abs(lp - math.log(p[t].item() / sp[keep].sum().item())) < 1e-4


def test_same_seed_gives_same_completions_independent_of_batch_size_and_other_seed_differs(er_sample, tiny_model):
    args = ("-m", tiny_model, "-n", "3", "--max-tokens", "8")
    a = er_sample(*args, "--batch-size", "2", *BASE, prompts=PROMPTS)
    b = er_sample(*args, "--batch-size", "16", *BASE, prompts=PROMPTS)
    c = er_sample(*args, "--backend", "transformers", "--seed", "8", prompts=PROMPTS)
    assert [x["completion"] for x in a.records] == [x["completion"] for x in b.records]
    assert [x["completion"] for x in a.records] != [x["completion"] for x in c.records]
    # a prompt's samples do not depend on the others in the file (its position sets its seed)
    d = er_sample(*args, *BASE, prompts=PROMPTS[:2])
    assert [x["completion"] for x in d.records] == [x["completion"] for x in a.records[:6]]


def test_greedy_is_deterministic_and_matches_argmax(er_sample, tiny_model, tokenizer, hf_model):
    import torch

    r = er_sample("-m", tiny_model, "-n", "2", "--max-tokens", "5", "--temperature", "0", "--logprobs",
                  "--backend", "transformers", prompts=PROMPTS[:1])
    x, y = r.records
    assert x["token_ids"] == y["token_ids"]
    ids = rendered(tokenizer, PROMPTS[0]["prompt"])
    for t in x["token_ids"]:
        with torch.inference_mode():
            assert hf_model(input_ids=torch.tensor([ids])).logits[0, -1].argmax().item() == t
        ids = ids + [t]


def test_think_tokens_count_the_completion_through_the_think_end_marker(er_sample, tiny_model, tokenizer):
    # the tiny model writes random text; "a" as the marker occurs in some completions and not in others
    r = er_sample("-m", tiny_model, "-n", "4", "--max-tokens", "12", "--logprobs", "--think-end", "a", *BASE,
                  prompts=PROMPTS)
    assert r.code == 0, r.err
    seen = set()
    for x in r.records:
        assert errors(x, "sample") == []
        ids = x["token_ids"]
        text = tokenizer.decode(ids, skip_special_tokens=False)
        if "a" not in text:
            assert x["think_tokens"] is None
            seen.add("none")
            continue
        k = x["think_tokens"]
        assert "a" in tokenizer.decode(ids[:k], skip_special_tokens=False)
        assert "a" not in tokenizer.decode(ids[:k - 1], skip_special_tokens=False)
        seen.add("some")
    assert seen == {"none", "some"}
