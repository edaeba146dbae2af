"""The trainer's log-probs are the model's own: the LM head alone where that is exact, the full forward where
the architecture transforms logits after the head (Gemma's final softcapping)."""

from __future__ import annotations

import torch

from er.train.trainer import _Policy, head_reproduces_forward


def _gemma2(softcap: float | None):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                          final_logit_softcapping=softcap, attn_logit_softcapping=None)
    return Gemma2ForCausalLM(config).train()


def _logits_at(model, ids, mask, rows, cols):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits[rows, cols].float()


def test_a_softcapped_model_gets_its_own_logits_and_a_plain_one_the_head_shortcut(tiny_model):
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 9, 13, 2, 7, 0], [3, 4, 8, 1, 0, 0]])
    mask = (ids != 0).long()
    rows, cols = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([2, 3, 4, 2, 3])
    capped = _gemma2(softcap=0.3)
    policy = _Policy(capped)
    assert not policy.head_only and capped.training  # the probe leaves train mode as it found it
    expected = _logits_at(capped.eval(), ids, mask, rows, cols)
    with torch.no_grad():
        got = policy(ids, mask, rows, cols)
    assert torch.allclose(got, expected, atol=1e-6)
    assert float(expected.abs().max()) <= 0.3  # softcapped: the head alone would not be
    assert head_reproduces_forward(_gemma2(softcap=None))
    plain = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    policy = _Policy(plain)
    assert policy.head_only
    with torch.no_grad():
        got = policy(ids, mask, rows, cols)
    assert torch.allclose(got, _logits_at(plain, ids, mask, rows, cols), atol=1e-5)
