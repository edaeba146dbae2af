"""`er serve` on the real pretrained model (SmolLM2-135M-Instruct: Llama, 49k vocabulary, tied embeddings,
a 8k context that vLLM on CPU must size its KV cache for): it starts, answers a token-id prompt as
transformers would, and Ctrl-C (SIGINT) stops it and every engine process."""

from __future__ import annotations

import json
import signal
import urllib.request

import pytest

from er.sampling.server_control import ServerControl
from tests.helpers import ErServe, alive

pytestmark = [pytest.mark.real, pytest.mark.vllm, pytest.mark.slow]
pytest.importorskip("vllm")


def test_er_serve_of_smollm2_answers_greedily_as_transformers_and_stops_on_ctrl_c(real_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(real_model)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}],
                                           add_generation_prompt=True, tokenize=True, return_dict=False)
    server = ErServe(real_model, "--max-model-len", "1024", log_path=str(tmp_path / "serve.log"))
    try:
        control = ServerControl(server.url)
        assert control.served_model().max_model_len == 1024
        body = {"model": control.served_model().name, "prompt": prompt, "max_tokens": 12, "temperature": 0.0,
                "logprobs": 0, "return_token_ids": True, "skip_special_tokens": False}
        request = urllib.request.Request(server.url + "/v1/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            choice = json.loads(response.read())["choices"][0]
        model = AutoModelForCausalLM.from_pretrained(real_model, dtype=torch.float32).eval()
        expected = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)[0, len(prompt):]
        assert choice["token_ids"] == expected.tolist()[:len(choice["token_ids"])]
        assert len(choice["token_ids"]) == 12 or choice["token_ids"][-1] == tokenizer.eos_token_id
        tree = server.tree()
        assert len(tree) >= 3
    finally:
        code = server.stop(signal.SIGINT)
    assert code == 130, server.log_tail()
    assert alive(tree) == []
