"""SirLLM memory (`er sample --memory sirllm`): spec data-and-long-context.md §5."""

from __future__ import annotations

import pytest
import torch

from er.sampling.longctx.sirllm import SirLLM, keep_indices, surprisal

torch.set_num_threads(1)

TURN1 = [5.0, 0.2, 3.1, 0.1, 0.4]
TURN2 = [6.2, 0.3, 2.5, 0.2, 0.1]


@pytest.mark.parametrize("decay, kept", [(1.0, [0, 2, 5, 9]), (0.7, [0, 5, 7, 9])])
def test_eviction_order_is_the_spec_worked_example(decay, kept):
    # S = 1, R = 0, E = 7 (capacity 8); turn 1 decayed once before turn 2 arrives; 4 tokens incoming at turn 3
    scores = [s * decay for s in TURN1] + TURN2
    assert keep_indices(scores, start=1, recent=0, keep=7, incoming=4) == kept


def test_eviction_by_hand_with_recent_tokens_and_sinks():
    # capacity 2 + 1 + 3 = 6, 8 cached, 2 incoming: top (3 - 2) = 1 by score (index 5: 9.0),
    # sinks 0, 1, then newest backwards until 6 - 2 = 4 kept: 7
    scores = [0.1, 0.2, 5.0, 1.0, 4.0, 9.0, 0.3, 0.4]
    assert keep_indices(scores, start=2, recent=1, keep=3, incoming=2) == [0, 1, 5, 7]
    # nothing is evicted while everything fits
    assert keep_indices(scores, start=2, recent=1, keep=5, incoming=0) == list(range(8))


def test_surprisal_is_minus_log_p_of_the_realised_token_and_the_first_gets_the_max():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]))
    ids = torch.tensor([2, 1, 0])
    got = surprisal(logits, ids).tolist()
    assert got[1] == pytest.approx(-torch.log(torch.tensor(0.25)).item(), abs=1e-6)  # p(1 | ...) from row 0
    assert got[2] == pytest.approx(-torch.log(torch.tensor(0.1)).item(), abs=1e-6)
    assert got[0] == pytest.approx(max(got[1:]), abs=1e-6)


def test_turn_by_turn_prefill_evicts_decays_and_pos_shifts_the_cache(hf_model):
    from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

    model = hf_model
    g = torch.Generator().manual_seed(0)
    turns = [6, 5, 4]
    ids = torch.randint(10, 300, (sum(turns),), generator=g).tolist()
    cfg = SirLLM(keep=5, decay=0.5, start=2, recent=0)  # capacity 7
    with torch.no_grad():
        run = cfg.begin(model, ids, turns, "cpu")
        # turn 2: 6 cached + 5 incoming > 7 -> top (5 - 5) = 0, sinks 0, 1, newest back to 7 - 5 = 2 -> [0, 1]
        assert run.evictions[0] == [0, 1]
        # turn 3: 2 + 5 cached + 4 incoming > 7 -> top 1 by score, sinks, newest back to 3
        kept2 = run.evictions[1]
        assert len(kept2) == 3 and kept2[:2] == [0, 1]
        assert run.kv_len == 3 + 4
        # scores: the sinks carry turn 1's maximum surprisal (first token) and their own, decayed twice
        plain = model(input_ids=torch.tensor([ids[:6]])).logits[0]
        s1 = surprisal(plain, torch.tensor(ids[:6]))
        assert run.scores[:2].tolist() == pytest.approx((s1[:2] * 0.25).tolist(), abs=1e-5)
        # pos-shift: layer-0 keys depend only on the token and its position, so the kept cache's layer-0 keys
        # must equal the kept tokens' keys rotated at contiguous positions 0..6
        cache_tokens = ids[:2] + ids[6:11]
        kept_tokens = [cache_tokens[i] for i in kept2] + ids[11:]
        attn = model.model.layers[0].self_attn
        hidden = model.model.layers[0].input_layernorm(model.model.embed_tokens(torch.tensor([kept_tokens])))
        k_raw = attn.k_proj(hidden).view(1, len(kept_tokens), -1, attn.head_dim).transpose(1, 2)
        cos, sin = model.model.rotary_emb(k_raw, torch.arange(len(kept_tokens))[None])
        expected = apply_rotary_pos_emb(k_raw, k_raw, cos, sin)[1]
        assert torch.allclose(run.cache.layers[0].keys, expected, atol=1e-5)


def test_chat_turns_are_split_at_user_messages_and_sampling_runs(er_sample, tiny_model, tokenizer):
    from er.sampling.sampler import SampleOptions, Sampler, Policy
    from er.sampling.longctx import parse_options

    messages = [{"role": "user", "content": "1 2 3 4 5 6"}, {"role": "assistant", "content": "7 8"},
                {"role": "user", "content": "9 10"}, {"role": "assistant", "content": "11"},
                {"role": "user", "content": "what of 12"}]
    opt = SampleOptions(longctx=parse_options(None, None, "sirllm:keep=8,start=2"))
    sampler = Sampler(Policy(None, "m", None), tokenizer, opt)
    text, _, msgs = sampler._render({"prompt": messages}, "")
    turns = sampler._turns(text, msgs)
    enc = tokenizer.encode(text, add_special_tokens=False)
    assert len(turns) == 3 and sum(turns) == len(enc)
    first = tokenizer.apply_chat_template(messages[:2], tokenize=False)
    assert turns[0] == len(tokenizer.encode(first, add_special_tokens=False))
    res = er_sample("-m", tiny_model, "--backend", "transformers", "-n", "2", "--max-tokens", "4", "--seed", "1",
                    "--memory", "sirllm:keep=8,start=2,decay=0.7", prompts=[{"id": "c", "prompt": messages}])
    assert res.code == 0, res.err
    assert [r["sample_idx"] for r in res.records] == [0, 1]
    assert res.records[0]["sampling"]["long_context"]["memory"] == {
        "method": "sirllm", "keep": 8, "decay": 0.7, "start": 2, "recent": 0}


def test_sirllm_with_a_cache_that_holds_everything_equals_plain_sampling(er_sample, tiny_model):
    messages = [{"role": "user", "content": "1 2 3"}, {"role": "assistant", "content": "4"},
                {"role": "user", "content": "5 6"}]
    args = ("-m", tiny_model, "--backend", "transformers", "-n", "2", "--max-tokens", "8", "--seed", "5", "--logprobs")
    plain = er_sample(*args, prompts=[{"id": "c", "prompt": messages}])
    sir = er_sample(*args, "--memory", "sirllm:keep=1000", prompts=[{"id": "c", "prompt": messages}])
    assert [r["token_ids"] for r in plain.records] == [r["token_ids"] for r in sir.records]
    for a, b in zip(plain.records, sir.records):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)
