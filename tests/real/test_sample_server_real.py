"""`er sample --server` on the real pretrained model (SmolLM2-135M-Instruct: its chat template, 49k
vocabulary, tied embeddings): the records equal those of the in-process vLLM backend on the same seeds."""

from __future__ import annotations

import orjson
import pytest

from tests.helpers import ErServe, jsonl, run_er

pytestmark = [pytest.mark.real, pytest.mark.vllm, pytest.mark.slow]
pytest.importorskip("vllm")

PROMPTS = [{"id": "a", "prompt": "What is 2 + 3?"}, {"id": "b", "prompt": "Name a prime number."},
           {"id": "c", "prompt": "Say hello in French."}]


def test_served_records_equal_in_process_vllm_records_on_smollm2(real_model, tmp_path):
    flags = ["-m", real_model, "-n", "2", "--max-tokens", "24", "--seed", "11", "--logprobs"]
    server = ErServe(real_model, "--max-model-len", "1024", log_path=str(tmp_path / "serve.log"))
    try:
        served = run_er("sample", "--server", server.url, *flags, input=jsonl(PROMPTS))
    finally:
        server.stop()
    local = run_er("sample", "--backend", "vllm", "--max-model-len", "1024", *flags, input=jsonl(PROMPTS))
    assert served.returncode == local.returncode == 0, served.stderr + local.stderr
    a = [orjson.loads(x) for x in served.stdout.splitlines()]
    b = [orjson.loads(x) for x in local.stdout.splitlines()]
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):
        assert x["sampling"].pop("server") == server.url
        assert x["token_ids"] == y["token_ids"]
        assert max(abs(p - q) for p, q in zip(x["logprobs"], y["logprobs"])) < 1e-4
        assert {**x, "logprobs": None} == {**y, "logprobs": None}
