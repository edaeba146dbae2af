"""The micro-batch token budget comes from memory; --gradient-checkpointing changes memory, not the step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from er.train import batching
from er.train.batching import activation_bytes_per_token, auto_micro_batch_tokens
from tests.train.helpers import run_er, write_jsonl


class _Cfg:
    def __init__(self, **kw):
        base = dict(hidden_size=576, num_hidden_layers=30, intermediate_size=1536, num_attention_heads=9,
                    num_key_value_heads=3, head_dim=64, vocab_size=49152)
        base.update(kw)
        self.__dict__.update(base)


def test_activation_memory_per_token_follows_the_formula_and_scales_with_the_model():
    c = _Cfg()
    per_layer = 4 * (10 * 576 + 4 * 192 + 5 * 1536)
    assert activation_bytes_per_token(c) == 30 * per_layer
    assert activation_bytes_per_token(c, gradient_checkpointing=True) == 30 * 4 * 576 + per_layer
    assert activation_bytes_per_token(c, full_logits=True) == 30 * per_layer + 3 * 4 * 49152
    assert activation_bytes_per_token(_Cfg(num_hidden_layers=60)) == 2 * activation_bytes_per_token(c)
    assert activation_bytes_per_token(_Cfg(hidden_size=1152, intermediate_size=3072, head_dim=128)) > \
        1.9 * activation_bytes_per_token(c)
    # the vocabulary costs nothing per token unless logits are transformed after the head
    assert activation_bytes_per_token(_Cfg(vocab_size=256000)) == activation_bytes_per_token(c)


def test_less_memory_means_smaller_micro_batches_within_the_clamps():
    per, gib, state = 1 << 16, 1 << 30, 1 << 28  # 64 KiB per token, 256 MiB of gradients + moments
    cpu = [auto_micro_batch_tokens(per, int(avail * gib), state, "cpu") for avail in (0.5, 1, 2, 8, 64)]
    assert cpu == [1024, 3072, 7168, 24576, 24576]  # 1/4 of what is left, at most 1.5 GiB of activations
    assert auto_micro_batch_tokens(per, 0, state, "cpu") == 256  # no room: the smallest micro-batch
    gpu = [auto_micro_batch_tokens(per, avail * gib, state, "cuda") for avail in (1, 2, 40)]
    assert gpu == [6144, 14336, 65536]  # half of the free device memory, at most 65,536 tokens
    real = _Cfg()  # SmolLM2-135M: ~1.6 MiB per token, ~0.12 MiB with checkpointing
    plain = auto_micro_batch_tokens(activation_bytes_per_token(real), 8 * gib, gib, "cpu")
    ckpt = auto_micro_batch_tokens(activation_bytes_per_token(real, True), 8 * gib, gib, "cpu")
    assert (plain, ckpt) == (768, 12544)


def test_the_trainer_takes_auto_from_free_memory_and_logs_it(tiny_model, tmp_path, monkeypatch, capsys):
    from er.train.trainer import Trainer, UpdateConfig

    monkeypatch.setattr("er.train.trainer._stderr_is_tty", lambda: True)  # logged on a terminal only
    monkeypatch.setattr(batching, "available_memory", lambda device: 64 << 30)
    roomy = Trainer(tiny_model, str(tmp_path / "a"), UpdateConfig())
    assert "--max-tokens-per-micro-batch auto: " in capsys.readouterr().err
    monkeypatch.setattr(batching, "available_memory", lambda device: 8 << 20)
    tight = Trainer(tiny_model, str(tmp_path / "b"), UpdateConfig())
    assert tight.micro_tokens < roomy.micro_tokens
    assert f"auto: {tight.micro_tokens} tokens" in capsys.readouterr().err
    fixed = Trainer(tiny_model, str(tmp_path / "c"), UpdateConfig(max_tokens_per_micro_batch=777))
    assert fixed.micro_tokens == 777
    assert "auto" not in capsys.readouterr().err


def test_a_bad_micro_batch_value_is_a_usage_error(tiny_model, tmp_path, capsys):
    rows = write_jsonl(tmp_path / "in.jsonl", [])
    code, err = run_er(["update", rows, "-m", tiny_model, "--out", tmp_path / "ck",
                        "--max-tokens-per-micro-batch", "lots"], capsys)
    assert code == 2 and "--max-tokens-per-micro-batch must be auto or a positive integer" in err


def _step(tiny_model, out, **cfg):
    from er.train.data import Example, StepBatch
    from er.train.trainer import Trainer, UpdateConfig

    trainer = Trainer(tiny_model, out, UpdateConfig(lr=1e-3, max_tokens_per_micro_batch=64, **cfg))
    g = torch.Generator().manual_seed(0)
    exs = [Example(ids=torch.randint(5, 200, (int(n),), generator=g).tolist(), prompt_len=4,
                   advantage=a, group=k // 4, temperature=0.8)
           for k, (n, a) in enumerate(zip([9, 14, 20, 11, 30, 7, 16, 12], [1.0, -1.0, 0.5, -0.5] * 2))]
    metrics = trainer.run_step(StepBatch(exs, 2, len(exs)))
    return metrics, [p.detach().clone() for p in trainer.lm.parameters()], trainer


def test_gradient_checkpointing_gives_the_same_step(tiny_model, tmp_path):
    plain, p_plain, _ = _step(tiny_model, str(tmp_path / "a"), entropy_coef=0.01)
    ckpt, p_ckpt, trainer = _step(tiny_model, str(tmp_path / "b"), entropy_coef=0.01, gradient_checkpointing=True)
    assert trainer.lm.is_gradient_checkpointing
    assert plain["micro_batches"] > 1
    for k in ("loss", "grad_norm", "entropy", "tokens"):
        assert ckpt[k] == pytest.approx(plain[k], rel=1e-5, abs=1e-7), k
    for a, b in zip(p_plain, p_ckpt):
        assert torch.allclose(a, b, atol=1e-6)


_MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys
    import torch
    torch.set_num_threads(1)
    from er.train.data import Example, StepBatch
    from er.train.trainer import Trainer, UpdateConfig
    trainer = Trainer(sys.argv[1], sys.argv[2], UpdateConfig(lr=1e-6))
    g = torch.Generator().manual_seed(0)
    exs = [Example(ids=torch.randint(5, 32000, (160,), generator=g).tolist(), prompt_len=32,
                   advantage=(-1.0) ** k, group=k // 8) for k in range(16)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    m = trainer.run_step(StepBatch(exs, 2, len(exs)))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (after - before) / 1024, "tokens": m["tokens"], "micro": m["micro_batches"]}))
""")


def test_an_update_on_a_large_vocabulary_never_holds_all_logits(tiny_model, tmp_path):
    """2,048 completion tokens x 32,768 vocabulary = 256 MiB per float32 copy of the logits. The full-logits
    path (before chunking) grew the process by 1.29 GB in this step; the chunked path, with at most three
    [128 x V] blocks at once, by 0.09 GB."""
    import shutil

    from transformers import Qwen2Config, Qwen2ForCausalLM

    path = tmp_path / "bigvocab"
    shutil.copytree(tiny_model, path)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=32768, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(path), str(tmp_path / "ck")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["tokens"] == 16 * 128 and r["micro"] == 1  # one pass over all 2,048 tokens
    assert r["growth_mb"] < 300, r
