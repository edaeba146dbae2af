"""Log-probs through the LM head in chunks equal the full-logits computation: values, entropies, gradients."""

from __future__ import annotations

import pytest
import torch

from er.train.logprobs import chunk_size, head_logprobs_entropy
from er.train.losses import token_logprobs_entropy
from er.train.trainer import _Policy


def _grads(params, fn, g_logp, g_ent):
    for p in params:
        p.grad = None
    logp, ent = fn()
    loss = (logp * g_logp).sum() + (0 if ent is None or not ent.requires_grad else (ent * g_ent).sum())
    loss.backward()
    return [logp.detach(), None if ent is None else ent.detach()] + [p.grad.clone() for p in params]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_head_equals_full_logits_in_value_entropy_and_gradients(bias, chunk):
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 300, bias=bias)
    h = torch.randn(50, 16, requires_grad=True)
    labels = torch.randint(0, 300, (50,))
    temps = torch.rand(50) + 0.5
    g_logp, g_ent = torch.randn(50), torch.randn(50)
    params = [h, *head.parameters()]
    full = _grads(params, lambda: token_logprobs_entropy(head(h).float() / temps[:, None], labels, "grad"),
                  g_logp, g_ent)
    mine = _grads(params, lambda: head_logprobs_entropy(h, head, labels, temps, "grad", chunk=chunk), g_logp, g_ent)
    for a, b in zip(full, mine):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)


def test_entropy_modes_none_and_detached_carry_no_entropy_gradient():
    torch.manual_seed(1)
    head = torch.nn.Linear(8, 40, bias=False)
    h = torch.randn(10, 8, requires_grad=True)
    labels = torch.randint(0, 40, (10,))
    logp, ent = head_logprobs_entropy(h, head, labels, entropy="none")
    assert ent is None and logp.requires_grad
    logp, ent = head_logprobs_entropy(h, head, labels, entropy="detached")
    assert not ent.requires_grad
    _, ref = token_logprobs_entropy(head(h), labels, "detached")
    assert torch.allclose(ent, ref, atol=1e-6)
    logp.sum().backward()  # the detached entropy needs no gradient and gets none
    assert h.grad is not None


def test_a_chunk_holds_a_bounded_number_of_logits():
    assert chunk_size(49152) == (1 << 22) // 49152 == 85
    assert chunk_size(10**9) == 16  # never fewer rows than this
    assert chunk_size(512) == 8192


def _qwen(tied: bool, vocab: int = 97):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied)
    return Qwen2ForCausalLM(cfg).train()


def _batch(vocab):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, vocab, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 6:] = 0
    rows = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)
    cols = torch.tensor(list(range(5, 11)) + list(range(4, 8)) + [3, 4])
    labels = ids[rows, cols + 1]
    temps = torch.tensor([0.7] * 6 + [1.0] * 4 + [1.3] * 2)
    return ids, mask, rows, cols, labels, temps


@pytest.mark.parametrize("tied", [True, False])
def test_policy_log_probs_and_parameter_gradients_equal_the_full_forward(tied):
    """The whole model: chunked head vs the model's own logits (full forward), every parameter's gradient."""
    lm = _qwen(tied)
    assert (lm.get_output_embeddings().weight is lm.get_input_embeddings().weight) == tied
    policy = _Policy(lm)
    assert policy.head_only
    ids, mask, rows, cols, labels, temps = _batch(97)
    g = torch.randn(len(labels), generator=torch.Generator().manual_seed(5))
    params = list(lm.parameters())

    def full():
        logits = lm(input_ids=ids, attention_mask=mask).logits[rows, cols].float() / temps[:, None]
        return token_logprobs_entropy(logits, labels, "grad")

    want = _grads(params, full, g, -g)
    got = _grads(params, lambda: policy(ids, mask, rows, cols, temps, labels, "grad"), g, -g)
    for a, b in zip(want, got):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_a_softcapped_model_keeps_the_full_forward_and_its_own_log_probs():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    lm = Gemma2ForCausalLM(Gemma2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                        final_logit_softcapping=0.3, attn_logit_softcapping=None)).eval()
    policy = _Policy(lm)
    assert not policy.head_only
    ids, mask, rows, cols, labels, temps = _batch(64)
    with torch.no_grad():
        logits = lm(input_ids=ids, attention_mask=mask).logits[rows, cols].float() / temps[:, None]
        want, _ = token_logprobs_entropy(logits, labels, "none")
        got, _ = policy(ids, mask, rows, cols, temps, labels, "none")
    assert torch.allclose(want, got, atol=1e-6)
