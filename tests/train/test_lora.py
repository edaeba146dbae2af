"""`er update --lora`: peft adapter checkpoints, the adapter-off KL reference, exact resume, merging,
refusals of adapters vLLM cannot serve, DDP (tiny tied-embedding Qwen2 model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from er.train.lora import LoraSpec, bare_lora, parse_lora
from tests.train.helpers import read_jsonl, run_er, write_jsonl

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _rows(groups=4):
    rows = []
    for g in range(groups):
        for i in range(4):
            rows.append({"prompt": f"{g} * {g} =", "group_id": f"g{g}", "group_size": 4,
                         "completion": f" {g * g}" + " 1" * (i + g % 3), "advantage": [1.0, -1.0, 0.5, -0.5][i]})
    return rows


def _adapter(path):
    from safetensors.torch import load_file

    return load_file(os.path.join(path, "adapter_model.safetensors"))


def _update(tiny_model, tmp_path, capsys, out, rows, *extra):
    data = write_jsonl(tmp_path / f"{out}-in.jsonl", rows)
    code, err = run_er(["update", "-m", tiny_model, "--lora", "--lr", "1e-2", "--batch-size", "8", "--out",
                        tmp_path / out, "-o", tmp_path / f"{out}.jsonl", "-q", *extra, data], capsys)
    assert code == 0, err
    return read_jsonl(tmp_path / f"{out}.jsonl")


def test_the_flag_takes_key_values_and_a_bare_flag_takes_the_defaults():
    assert parse_lora("default") == LoraSpec(r=16, alpha=32.0, targets="all-linear", dropout=0.0)
    assert parse_lora("r=4,alpha=8,targets=q_proj+v_proj,dropout=0.1") == LoraSpec(4, 8.0, "q_proj+v_proj", 0.1)
    assert parse_lora(None) is None
    assert bare_lora(["update", "--lora", "--lr", "1e-5"]) == ["update", "--lora", "default", "--lr", "1e-5"]
    assert bare_lora(["update", "--lora", "in.jsonl"]) == ["update", "--lora", "default", "in.jsonl"]
    assert bare_lora(["update", "--lora", "r=1"]) == ["update", "--lora", "r=1"]


@pytest.mark.parametrize("value, message", [
    ("r=0", "r must be >= 1"),
    ("rank=4", "unknown key 'rank'"),
    ("r=x", "is not a number"),
    ("targets=embed_tokens+q_proj", "vLLM cannot serve an adapter with an embedding or LM-head target"),
    ("targets=lm_head", "vLLM cannot serve an adapter with an embedding or LM-head target"),
])
def test_bad_or_unservable_adapters_are_refused_in_one_line(tiny_model, tmp_path, capsys, value, message):
    data = write_jsonl(tmp_path / "in.jsonl", _rows(1))
    code, err = run_er(["update", "-m", tiny_model, "--lora", value, "--out", tmp_path / "o", "-q", data], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not os.path.exists(tmp_path / "o" / "latest")


def test_an_adapter_directory_vllm_would_reject_is_refused_before_training(tiny_model, tmp_path, capsys):
    rows = _rows(1)
    _update(tiny_model, tmp_path, capsys, "ck", rows)
    cfg_path = tmp_path / "ck" / "step-1" / "adapter_config.json"
    config = json.loads(cfg_path.read_text())
    config["use_dora"] = True
    cfg_path.write_text(json.dumps(config))
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    code, err = run_er(["update", "-m", tmp_path / "ck" / "step-1", "--lora", "--out", tmp_path / "o2", "-q", data],
                       capsys)
    assert code == 2 and "DoRA" in err and len(err.strip().splitlines()) == 1, err
    code, err = run_er(["update", "-m", tmp_path / "ck" / "step-1", "--out", tmp_path / "o3", "-q", data], capsys)
    assert code == 2 and "pass --lora" in err, err


def test_other_usage_errors_of_lora(tiny_model, tmp_path, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", _rows(1))
    for args, message in ((["--base-dtype", "bfloat16"], "--base-dtype applies to --lora only"),
                          (["--lora", "--fsdp"], "--fsdp with --lora is not supported"),
                          (["--lora", "r=2,targets=nope_proj"], "nope_proj are not modules of this model")):
        code, err = run_er(["update", "-m", tiny_model, *args, "--out", tmp_path / "o", "-q", data], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_checkpoint_is_a_peft_adapter_dir_that_autopeft_loads_and_the_base_is_untouched(tiny_model, tmp_path,
                                                                                           capsys, monkeypatch):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    metrics = _update(tiny_model, tmp_path, capsys, "ck", _rows(2))
    assert [m["step"] for m in metrics] == [1]
    step = tmp_path / "ck" / "step-1"
    names = set(os.listdir(step))
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "config.json" not in names and "model.safetensors" not in names
    assert os.path.isdir(tmp_path / "ck" / "trainer-state" / "step-1")
    config = json.loads((step / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == os.path.abspath(tiny_model)
    # every linear layer of the decoder, never the (tied) LM head or the embedding
    targets = set(config["target_modules"])
    assert {t.split(".")[-1] for t in targets} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                   "down_proj"}
    tensors = _adapter(step)
    assert all(v.dtype == torch.float32 for v in tensors.values())
    assert not any("embed" in k or "lm_head" in k for k in tensors)
    # loads as it is, from another working directory; the adapter changed the policy
    monkeypatch.chdir(tmp_path / "ck")
    tuned = AutoPeftModelForCausalLM.from_pretrained("step-1").eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ids = torch.arange(3, 30)[None]
    with torch.no_grad():
        assert (tuned(ids).logits - base(ids).logits).abs().max() > 1e-3
        with tuned.disable_adapter():  # the frozen base (tied embeddings included) was not trained
            assert torch.allclose(tuned(ids).logits, base(ids).logits, atol=1e-6)
    assert isinstance(tuned, PeftModel)


def test_the_kl_reference_is_the_base_with_the_adapter_off(tiny_model, tmp_path, capsys):
    metrics = _update(tiny_model, tmp_path, capsys, "kl", _rows(4), "--kl-coef", "0.1")
    # step 1: the new adapter is a no-op (B = 0), so policy == reference; after it, they differ
    assert metrics[0]["kl"] == 0.0
    assert metrics[1]["kl"] > 0


def test_resuming_a_lora_run_is_exact_and_keep_last_prunes_adapters(tiny_model, tmp_path, capsys):
    rows = _rows(4)
    straight = _update(tiny_model, tmp_path, capsys, "a", rows, "--save-every", "1", "--keep-last", "1")
    assert sorted(n for n in os.listdir(tmp_path / "a") if n.startswith("step-")) == ["step-2"]
    first = _update(tiny_model, tmp_path, capsys, "b", rows[:8])
    resumed = _update(tiny_model, tmp_path, capsys, "b", rows[8:], "--resume")
    assert [m["step"] for m in first + resumed] == [1, 2]
    assert abs(resumed[0]["loss"] - straight[1]["loss"]) < 1e-7
    a, b = _adapter(tmp_path / "a" / "step-2"), _adapter(tmp_path / "b" / "step-2")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_of_a_full_checkpoint_with_lora_is_refused(tiny_model, tmp_path, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", _rows(2))
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "full", "-q", data], capsys)
    assert code == 0, err
    code, err = run_er(["update", "-m", tiny_model, "--lora", "--resume", "--out", tmp_path / "full", "-q", data],
                       capsys)
    assert code == 2 and "a full model checkpoint, not a LoRA adapter" in err, err


def test_the_stepwise_loop_trains_the_adapter_on_and_a_bf16_base_works(tiny_model, tmp_path, capsys):
    """`-m ckpt/latest` (an adapter) continues that adapter; --base-dtype bfloat16 keeps adapters float32."""
    rows = _rows(2)
    _update(tiny_model, tmp_path, capsys, "ck", rows)
    before = _adapter(tmp_path / "ck" / "step-1")
    data = write_jsonl(tmp_path / "in2.jsonl", rows)
    code, err = run_er(["update", "-m", tmp_path / "ck" / "latest", "--lora", "--lr", "1e-2", "--batch-size", "8",
                        "--out", tmp_path / "ck2", "-q", "--base-dtype", "bfloat16", data], capsys)
    assert code == 0, err
    after = _adapter(tmp_path / "ck2" / "step-1")
    assert all(v.dtype == torch.float32 for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # trained on from the loaded adapter
    config = json.loads((tmp_path / "ck2" / "step-1" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == os.path.abspath(tiny_model)


def test_merge_adapter_writes_a_plain_model_equal_to_base_plus_adapter(tiny_model, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _update(tiny_model, tmp_path, capsys, "ck", _rows(2))
    code, err = run_er(["merge", "--adapter", tmp_path / "ck" / "latest", "--out", tmp_path / "merged"], capsys)
    assert code == 0, err
    assert "model.safetensors" in os.listdir(tmp_path / "merged")
    assert "adapter_config.json" not in os.listdir(tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model),
                                     str(tmp_path / "ck" / "latest")).eval()
    ids = torch.arange(3, 40)[None]
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft(ids).logits, atol=1e-5)
    code, err = run_er(["merge", "--adapter", tmp_path / "ck" / "latest", "--out", tmp_path / "merged"], capsys)
    assert code == 2 and "exists" in err


def test_the_transformers_sampler_loads_an_adapter_checkpoint(tiny_model, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from er.sampling.hf import HFBackend, teacher_forced_logprobs
    from er.sampling.base import Request, SamplingConfig

    _update(tiny_model, tmp_path, capsys, "ck", _rows(2))
    backend = HFBackend(str(tmp_path / "ck" / "latest"))
    prompt = list(range(5, 15))
    [[comp]] = backend.generate([Request(prompt_ids=prompt, n=1, max_tokens=6, seed=1)],
                                SamplingConfig(temperature=1.0, logprobs=True))
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model),
                                     str(tmp_path / "ck" / "latest")).eval()
    expected = teacher_forced_logprobs(peft, prompt, comp.token_ids)
    assert max(abs(a - b) for a, b in zip(comp.logprobs, expected)) < 1e-4


@pytest.mark.slow
def test_two_gloo_ranks_train_the_same_adapter_as_one_process(tiny_model, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", _rows(3))
    args = ["-m", tiny_model, "--lora", "r=4", "--lr", "1e-2", "--batch-size", "12",
            "--max-tokens-per-micro-batch", "40", "-q", str(tmp_path / "in.jsonl")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    one = subprocess.run([sys.executable, "-m", "er.cli", "update", "--out", str(tmp_path / "one"), *args],
                         capture_output=True, env=env, timeout=180)
    assert one.returncode == 0, one.stderr.decode()[-2000:]
    two = subprocess.run([*TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "er.cli", "update",
                          "--out", str(tmp_path / "two"), *args], capture_output=True, env=env, timeout=180)
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    a, b = _adapter(tmp_path / "one" / "latest"), _adapter(tmp_path / "two" / "latest")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert any(v.abs().max() > 0 for k, v in a.items() if "lora_B" in k)
