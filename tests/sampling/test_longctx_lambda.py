"""LM-Infinite Λ attention (`er sample --attention lambda`): spec data-and-long-context.md §3."""

from __future__ import annotations

import pytest
import torch

from er.sampling.longctx.lambda_attention import (LambdaAttention, encoding_distance, lambda_attention_forward,
                                                   lambda_pattern)

torch.set_num_threads(1)


def fresh(tiny_model, attn="eager"):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation=attn).eval()


def ids_of(n, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, 300, (batch, n), generator=g)


def test_pattern_is_the_spec_worked_example():
    # n = 12, n_global = 2, n_local = 4, d = 4: encoding distance per (query, key), -1 = masked (spec §3.5)
    pos = torch.arange(12)[None]
    band, glob = lambda_pattern(pos, pos, 2, 4)
    d = encoding_distance(pos, pos, band, glob, 4)[0].tolist()
    assert d[0] == [0] + [-1] * 11
    assert d[3] == [3, 2, 1, 0] + [-1] * 8
    assert d[4] == [4, 3, 2, 1, 0] + [-1] * 7
    assert d[5] == [4, 4, 3, 2, 1, 0] + [-1] * 6
    assert d[6] == [4, 4, -1, 3, 2, 1, 0] + [-1] * 5
    assert d[11] == [4, 4] + [-1] * 6 + [3, 2, 1, 0]
    # each query sees at most n_global + n_local keys
    assert int((band | glob).sum(-1).max()) == 6


def test_within_the_window_outputs_equal_plain_attention(tiny_model):
    plain, lam = fresh(tiny_model), fresh(tiny_model)
    LambdaAttention(n_global=4, n_local=64, dist=64).install(lam)
    ids = ids_of(64, batch=2)
    with torch.no_grad():
        a = plain(input_ids=ids).logits
        b = lam(input_ids=ids, position_ids=torch.arange(64)[None]).logits
    assert (a - b).abs().max().item() < 1e-5


def test_beyond_the_window_attention_weights_have_the_lambda_shape(tiny_model):
    lam = fresh(tiny_model)
    LambdaAttention(n_global=3, n_local=8, dist=8).install(lam)
    n = 40
    with torch.no_grad():
        out = lam(input_ids=ids_of(n), position_ids=torch.arange(n)[None], output_attentions=True)
    pos = torch.arange(n)[None]
    band, glob = lambda_pattern(pos, pos, 3, 8)
    visible = (band | glob)[0]
    for w in out.attentions:  # (1, H, n, n) per layer
        assert w.shape[-1] == n
        assert w[0][:, ~visible].abs().max().item() == 0.0
        assert w[0][:, visible].min().item() > 0.0
        assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-5)
    # row 20 sees keys 0, 1, 2 (global) and 13..20 (local): 11 keys
    assert visible[20].nonzero().flatten().tolist() == [0, 1, 2] + list(range(13, 21))


def test_global_column_scores_equal_a_direct_computation_at_the_capped_distance(tiny_model):
    from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

    model = fresh(tiny_model)
    LambdaAttention(n_global=2, n_local=4, dist=5).install(model)
    attn = model.model.layers[0].self_attn
    rotary = model.model.rotary_emb
    n, H, D = 12, attn.config.num_attention_heads, attn.head_dim
    g = torch.Generator().manual_seed(1)
    q_raw = torch.randn(1, H, n, D, generator=g)
    k_raw = torch.randn(1, H // attn.num_key_value_groups, n, D, generator=g)
    v = torch.randn(1, k_raw.shape[1], n, D, generator=g)

    def rot(x, positions):
        cos, sin = rotary(x, torch.tensor([positions]))
        return apply_rotary_pos_emb(x, x, cos, sin)[0]

    pos = list(range(n))
    _, weights = lambda_attention_forward(attn, rot(q_raw, pos), rot(k_raw, pos), v, None, attn.scaling,
                                          position_ids=torch.arange(n)[None])
    kv = k_raw.repeat_interleave(attn.num_key_value_groups, dim=1)
    i = 11  # keys 0, 1 are global (distances 11, 10 -> capped at 5); 8..11 are local (3..0)
    for j, distance in ((0, 5), (1, 5), (8, 3), (9, 2)):
        # independent: q rotated at j + distance, k at j, so their distance is `distance`
        qd = rot(q_raw[:, :, i:i + 1], [j + distance])
        kd = rot(kv[:, :, j:j + 1], [j])
        direct = (qd * kd).sum(-1).squeeze() * attn.scaling
        kd_ref = rot(kv[:, :, 11:12], [11])
        ref = (rot(q_raw[:, :, i:i + 1], [i]) * kd_ref).sum(-1).squeeze() * attn.scaling  # distance 0
        got = weights[0, :, i, j].log() - weights[0, :, i, 11].log()
        assert torch.allclose(got, direct - ref, atol=1e-4), (j, got, direct - ref)
    assert weights[0, :, i, 2:8].abs().max().item() == 0.0


def test_bounded_cache_with_chunked_prefill_matches_the_uncached_lambda_forward(tiny_model):
    full, run_model = fresh(tiny_model), fresh(tiny_model)
    cfg = LambdaAttention(n_global=3, n_local=16, dist=16, chunk=8)
    LambdaAttention(n_global=3, n_local=16, dist=16).install(full)
    cfg.install(run_model)
    n = 70
    ids = ids_of(n, batch=2, seed=3)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding in row 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        run = cfg.begin(run_model, ids, mask, pos)
        assert run.kv_len <= 3 + 16 + 8  # global + local + one chunk of slack, not 70
        ref0 = full(input_ids=ids[:1], position_ids=torch.arange(n)[None]).logits[0, -1]
        ref1 = full(input_ids=ids[1:, 5:], position_ids=torch.arange(n - 5)[None]).logits[0, -1]
        assert (run.logits[0] - ref0).abs().max().item() < 1e-4
        assert (run.logits[1] - ref1).abs().max().item() < 1e-4
        # decode 30 more tokens: the cache stays bounded and the logits follow the uncached forward
        seq = ids[0].tolist()
        nxt = pos[:, -1:] + 1
        for _ in range(30):
            tok = run.logits.argmax(-1, keepdim=True)
            seq.append(int(tok[0]))
            logits = run.step(tok, nxt)
            nxt = nxt + 1
            run.logits = logits
            assert run.kv_len <= 3 + 16 + 8
        ref = full(input_ids=torch.tensor([seq]), position_ids=torch.arange(len(seq))[None]).logits[0, -1]
        assert (run.logits[0] - ref).abs().max().item() < 1e-4


def test_er_sample_with_lambda_equals_plain_sampling_within_the_window(er_sample, tiny_model):
    prompts = [{"id": "a", "prompt": "1 + 2 = 3. the answer is"}, {"id": "b", "prompt": "7 plus"}]
    args = ("-m", tiny_model, "--backend", "transformers", "-n", "2", "--max-tokens", "12", "--seed", "3",
            "--logprobs")
    plain = er_sample(*args, prompts=prompts)
    lam = er_sample(*args, "--attention", "lambda:global=2", prompts=prompts)
    assert plain.code == lam.code == 0
    assert [r["token_ids"] for r in plain.records] == [r["token_ids"] for r in lam.records]
    for a, b in zip(plain.records, lam.records):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)
    assert lam.records[0]["sampling"]["long_context"] == {
        "attention": {"method": "lambda", "global": 2, "local": 2048, "dist": 2048}}


def test_lambda_accepts_prompts_longer_than_the_model_context(er_sample, tiny_model):
    long = " ".join(["1 + 2 = 3."] * 60)
    res = er_sample("-m", tiny_model, "--backend", "transformers", "--max-tokens", "3", "--temperature", "0",
                    "--max-model-len", "64", "--attention", "lambda:global=2,local=32,dist=32,chunk=16",
                    prompts=[{"id": "a", "prompt": long}])
    assert res.code == 0, res.err
    assert res.records[0]["prompt_tokens"] > 64 and res.records[0]["completion_tokens"] == 3


def test_vllm_backend_refuses_long_context_flags(er_sample, tiny_model):
    for flag in ("--attention", "lambda"), ("--context", "xl3m"), ("--memory", "sirllm"):
        res = er_sample("-m", tiny_model, "--backend", "vllm", *flag, prompts=[{"id": "a", "prompt": "x"}])
        assert res.code == 2 and "transformers" in res.err, res.err


def test_unknown_lambda_parameter_is_a_usage_error(er_sample, tiny_model):
    res = er_sample("-m", tiny_model, "--attention", "lambda:width=3", prompts=[{"id": "a", "prompt": "x"}])
    assert res.code == 2 and "global" in res.err and "width" in res.err
