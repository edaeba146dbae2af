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


def test_a_lora_adapter_is_refused_by_er_serve_and_by_a_weight_move_in_one_line(adapter):
    """Served sampling moves full weights only: an adapter is one usage line naming the way out (er merge
    --adapter), before anything starts and before any server is paused."""
    from er.sampling.server_control import ServerControl

    with pytest.raises(UsageError, match="is a LoRA adapter.*er merge --adapter"):
        resolve_model(adapter)
    with pytest.raises(UsageError, match="is a LoRA adapter"):
        ServerControl("http://127.0.0.1:9").move_weights(adapter)  # port 9: nothing listens; never reached
