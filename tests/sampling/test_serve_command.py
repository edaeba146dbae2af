"""What `er serve` hands vLLM, without starting it: the model it resolves and the flags it sets."""

from __future__ import annotations

import os

import pytest

from er.errors import UsageError
from er.sampling.serve import resolve_model, server_command


@pytest.fixture(scope="module")
def ckpt(tiny_model, tmp_path_factory):
    """ckpt/step-1 and ckpt/step-2 (latest), written as er update writes them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from er.train.checkpoint import save_checkpoint

    out = str(tmp_path_factory.mktemp("ckpt") / "ckpt")
    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    for step in (1, 2):
        save_checkpoint(model, tok, out, step)
    return out


def test_a_checkpoint_directory_or_its_latest_link_serves_the_newest_step_with_its_number(ckpt, tiny_model):
    step2 = os.path.realpath(os.path.join(ckpt, "step-2"))
    assert resolve_model(ckpt) == (step2, 2)
    assert resolve_model(os.path.join(ckpt, "latest")) == (step2, 2)
    assert resolve_model(os.path.join(ckpt, "step-1")) == (os.path.realpath(os.path.join(ckpt, "step-1")), 1)
    assert resolve_model(tiny_model) == (os.path.realpath(tiny_model), None)


def test_a_directory_that_is_neither_a_model_nor_a_checkpoint_dir_is_one_usage_line(tmp_path):
    with pytest.raises(UsageError, match="neither a model directory nor a checkpoint directory"):
        resolve_model(str(tmp_path))


def test_the_server_gets_ers_extension_processor_neutral_defaults_and_the_cpu_settings(tiny_model):
    argv = server_command(tiny_model, host="127.0.0.1", port=8123, max_model_len=256, max_tokens=64,
                          logprobs_mode="raw", max_num_seqs=32, max_num_batched_tokens=None,
                          vllm_args=["--seed", "3"], on_gpu=False)
    joined = " ".join(argv)
    for expected in ("-m vllm.entrypoints.launchers.api_server.entry", f"--model {tiny_model}",
                     "--host 127.0.0.1 --port 8123",
                     "--worker-extension-cls er.sampling.vllm_worker.ReloadExtension",
                     "--logits-processors er.sampling.vllm_worker:StopScaleProcessor", "--generation-config vllm",
                     "--logprobs-mode raw_logprobs", "--max-num-seqs 32", "--dtype float32", "--enforce-eager",
                     "--no-enable-chunked-prefill", "--max-model-len 256", "--max-num-batched-tokens 8192"):
        assert expected in joined, expected
    assert "--kv-cache-memory-bytes" in argv
    assert argv[-2:] == ["--seed", "3"]  # passed through last: it wins over er's settings


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    """A peft LoRA adapter directory, as `er update --lora` writes step-N/."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = str(tmp_path_factory.mktemp("adapter") / "step-1")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=4, target_modules="all-linear"))
    model.save_pretrained(path)
    return path


def test_a_lora_adapter_is_served_on_its_base_with_lora_on_at_a_rank_vllm_accepts(adapter, tiny_model):
    """`er serve -m step-N` of `er update --lora`: the engine runs the base, LoRA on (rank 4 -> vLLM's 8),
    and the adapter is loaded once the server answers; a weight move still takes full weights only."""
    from er.sampling.serve import lora_settings
    from er.sampling.server_control import ServerControl

    real = os.path.realpath(adapter)
    assert resolve_model(adapter) == (real, 1)
    engine, loaded, flags = lora_settings(real, None, [])
    assert (engine, loaded) == (os.path.realpath(tiny_model), real)
    assert flags == ["--enable-lora", "--max-lora-rank", "8", "--max-loras", "2", "--max-cpu-loras", "4"]
    assert lora_settings(real, 32, [])[2][:3] == ["--enable-lora", "--max-lora-rank", "32"]
    # the user's own LoRA flags after -- decide the rest
    assert lora_settings(real, None, ["--max-lora-rank", "64"])[2] == ["--enable-lora"]
    with pytest.raises(UsageError, match="--max-lora-rank 2: .* has rank 4"):
        lora_settings(real, 2, [])
    with pytest.raises(UsageError, match="is a LoRA adapter, not full weights"):
        ServerControl("http://127.0.0.1:9").move_weights(adapter)  # port 9: nothing listens; never reached


def test_max_lora_rank_turns_lora_on_for_a_base_and_without_it_nothing_changes(tiny_model):
    from er.sampling.serve import lora_settings

    assert lora_settings(tiny_model, None, []) == (tiny_model, None, [])
    engine, loaded, flags = lora_settings(tiny_model, 16, [])
    assert (engine, loaded, flags[:3]) == (tiny_model, None, ["--enable-lora", "--max-lora-rank", "16"])
    with pytest.raises(UsageError, match="exceeds vLLM's largest max_lora_rank"):
        lora_settings(tiny_model, 1024, [])


def test_an_adapter_version_is_named_after_its_path_and_its_weights(adapter, tmp_path):
    """vLLM keys its prefix cache by (name, path): a name is never reused for other weights."""
    import shutil

    from er.sampling.server_adapters import adapter_name

    name = adapter_name(adapter)
    assert name.startswith("er-step-1-") and adapter_name(adapter) == name
    copy = str(tmp_path / "step-1")
    shutil.copytree(adapter, copy)
    assert adapter_name(copy) != name  # same step, another path
    weights = os.path.join(copy, "adapter_model.safetensors")
    before = adapter_name(copy)
    os.utime(weights, ns=(0, 12345))
    assert adapter_name(copy) != before  # same path, rewritten weights
