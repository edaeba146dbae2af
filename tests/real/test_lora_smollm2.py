"""LoRA on the real model (SmolLM2-135M-Instruct: Llama, tied embeddings): the loop sample | score | advantage |
update --lora on the transformers and the vLLM backend, vLLM's log-probs after an adapter reload against a
teacher-forced peft pass, and the merged adapter in plain vLLM."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from tests.helpers import parse_jsonl
from tests.real.test_loop_on_smollm2 import sh  # the pipe runner of the full fine-tuning loop

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from arith_task import problems  # noqa: E402

pytestmark = [pytest.mark.real, pytest.mark.slow]

N_PROMPTS, G, MAX_TOKENS = 4, 2, 16


@pytest.fixture(scope="module")
def loop(tmp_path_factory, real_model) -> Path:
    """Step 1 samples from the base (transformers), step 2 from step 1's adapter (vLLM), both train `--lora`."""
    work = tmp_path_factory.mktemp("lora-loop")
    (work / "prompts.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in problems(1, N_PROMPTS)))
    train = (f"$ER score --reward math --reward length:unit=chars,scale=-0.01 | $ER advantage "
             f"| $ER update --lora r=8 --lr 1e-3 --batch-size {N_PROMPTS * G}")
    sh(f"""
        $ER sample -m {real_model} prompts.jsonl -n {G} --max-tokens {MAX_TOKENS} --seed 1 --backend transformers \\
          | {train} -m {real_model} --out ckpt > metrics1.jsonl
        $ER sample -m ckpt/latest prompts.jsonl -n {G} --max-tokens {MAX_TOKENS} --seed 2 --backend vllm --logprobs \\
          | tee samples2.jsonl | {train} -m ckpt/latest --out ckpt2 > metrics2.jsonl
    """, work)
    return work


def test_both_steps_of_the_loop_train_an_adapter(loop, real_model):
    for name in ("metrics1.jsonl", "metrics2.jsonl"):
        [m] = parse_jsonl((loop / name).read_bytes())
        assert m["samples"] == N_PROMPTS * G and m["grad_norm"] > 0
    for ck in ("ckpt", "ckpt2"):
        names = os.listdir(loop / ck / "latest")
        assert "adapter_model.safetensors" in names and "model.safetensors" not in names
        config = json.loads((loop / ck / "latest" / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == os.path.abspath(real_model)
    samples = parse_jsonl((loop / "samples2.jsonl").read_bytes())
    assert len(samples) == N_PROMPTS * G and all(s["policy"]["step"] == 1 for s in samples)
    assert all(len(s["logprobs"]) == s["completion_tokens"] for s in samples)


@pytest.mark.vllm
def test_vllm_logprobs_after_an_adapter_reload_equal_a_teacher_forced_peft_pass(loop, real_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from er.sampling.base import Request, SamplingConfig
    from er.sampling.hf import teacher_forced_logprobs
    from er.sampling.vllm import VLLMBackend

    tok = AutoTokenizer.from_pretrained(real_model)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 30?"}], add_generation_prompt=True,
                                     tokenize=True, return_dict=True)["input_ids"]
    request = [Request(prompt_ids=list(prompt), n=2, max_tokens=12, seed=3)]
    cfg = SamplingConfig(temperature=1.0, logprobs=True)
    backend = VLLMBackend(str(loop / "ckpt" / "latest"), max_model_len=512, max_tokens=12)
    try:
        first = backend.generate(request, cfg)[0]
        seconds = backend.reload(str(loop / "ckpt2" / "latest"))  # what --watch does with a new adapter
        second = backend.generate(request, cfg)[0]
    finally:
        backend.close()
    assert seconds < 5.0
    base = AutoModelForCausalLM.from_pretrained(real_model, dtype=torch.float32)
    for ck, comps in (("ckpt", first), ("ckpt2", second)):
        model = PeftModel.from_pretrained(base, str(loop / ck / "latest")).eval()
        for comp in comps:
            expected = teacher_forced_logprobs(model, list(prompt), comp.token_ids)
            assert max(abs(a - b) for a, b in zip(comp.logprobs, expected)) < 1e-4, ck
        base = model.unload()  # the plain base again for the next adapter
    # the second adapter really was served (a stale first adapter would be a different policy)
    model1 = PeftModel.from_pretrained(base, str(loop / "ckpt" / "latest")).eval()
    gap = teacher_forced_logprobs(model1, list(prompt), second[0].token_ids)
    assert max(abs(a - b) for a, b in zip(second[0].logprobs, gap)) > 1e-4


@pytest.mark.vllm
def test_the_merged_adapter_loads_in_plain_vllm_and_equals_base_plus_adapter(loop, real_model):
    sh("$ER merge --adapter ckpt2/latest --out merged > merge.json", loop)
    script = loop / "plain_vllm.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        if __name__ == "__main__":
            from vllm import LLM, SamplingParams
            llm = LLM(model=sys.argv[1], gpu_memory_utilization=0.3, enforce_eager=True, max_model_len=256,
                      dtype="float32")
            out = llm.generate([{"prompt_token_ids": json.loads(sys.argv[2])}],
                               SamplingParams(max_tokens=8, temperature=0, logprobs=0))
            o = out[0].outputs[0]
            print("RESULT", json.dumps({"ids": list(o.token_ids), "lp": [d[t].logprob for t, d in zip(o.token_ids, o.logprobs)]}))
    """))
    prompt = list(range(100, 120))
    proc = sh(f"{sys.executable} plain_vllm.py merged '{json.dumps(prompt)}'", loop)
    # vLLM logs to stdout too (its shutdown warnings come after the result)
    [got] = [json.loads(line[len("RESULT "):]) for line in proc.stdout.decode().splitlines() if line.startswith("RESULT ")]
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from er.sampling.hf import teacher_forced_logprobs

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(real_model, dtype=torch.float32),
                                      str(loop / "ckpt2" / "latest")).eval()
    expected = teacher_forced_logprobs(model, prompt, got["ids"])
    assert max(abs(a - b) for a, b in zip(got["lp"], expected)) < 1e-4


@pytest.mark.vllm
def test_a_served_adapter_samples_as_the_in_process_engine_and_the_next_one_loads_beside_the_base(loop, real_model):
    """`er serve -m BASE --max-lora-rank 8`, then each step's `er sample --server URL -m ckpt/latest` loads that
    adapter under its own name: its records equal the in-process vLLM engine's on the same seeds (token ids
    exactly, log-probs to 1e-4), and after the next adapter the log-probs are a teacher-forced peft pass of it,
    with the base never reloaded."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from er.sampling.hf import teacher_forced_logprobs
    from er.sampling.server_adapters import adapter_name
    from er.sampling.server_control import ServerControl
    from tests.helpers import ErServe

    server = ErServe(real_model, "--max-lora-rank", "8", "--max-model-len", "512", "--max-tokens", str(MAX_TOKENS),
                     log_path=str(loop / "serve.log"))
    try:
        control = ServerControl(server.url)
        flags = f"prompts.jsonl -n {G} --max-tokens {MAX_TOKENS} --logprobs --server {server.url}"
        sh(f"$ER sample -m ckpt/latest {flags} --seed 2 > served2.jsonl", loop)
        assert sorted(control.adapters()) == [adapter_name(str(loop / "ckpt" / "latest"))]
        sh(f"$ER sample -m ckpt2/latest {flags} --seed 3 > served3.jsonl", loop)
        listed = control.adapters()
        held = control.weights()
    finally:
        server.stop()
    served = parse_jsonl((loop / "served2.jsonl").read_bytes())
    in_process = parse_jsonl((loop / "samples2.jsonl").read_bytes())
    assert [s["token_ids"] for s in served] == [s["token_ids"] for s in in_process]
    assert max(abs(a - b) for s, t in zip(served, in_process) for a, b in zip(s["logprobs"], t["logprobs"])) < 1e-4
    assert {(s["policy"]["step"], s["sampling"]["server"]) for s in served} == {(1, server.url)}
    # both versions listed under their own names, the base as it was
    ckpt2 = os.path.realpath(loop / "ckpt2" / "latest")
    assert listed[adapter_name(ckpt2)] == ckpt2 and len(listed) == 2
    assert os.path.realpath(held.path) == os.path.realpath(real_model)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(real_model, dtype=torch.float32),
                                      ckpt2).eval()
    third = parse_jsonl((loop / "served3.jsonl").read_bytes())
    for s in third:
        expected = teacher_forced_logprobs(model, s["prompt_token_ids"], s["token_ids"])
        assert max(abs(a - b) for a, b in zip(s["logprobs"], expected)) < 1e-4
