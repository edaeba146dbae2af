"""The loop on a real pretrained instruct model (SmolLM2-135M-Instruct: Llama, 49k vocabulary, a chat template).

What the toy model hid: chat templates, a real vocabulary, loaders that glob `*.safetensors`, vLLM's CPU KV
cache. Every command runs as a user's shell runs it (subprocesses, default flags, small sizes), and the
checkpoint is read back by plain transformers and plain `vllm.LLM`, without er.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.helpers import ER, parse_jsonl

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from arith_task import problems  # noqa: E402

# One worker runs this whole file (`--dist loadfile` in `make test`): the fixture below is built once, and the
# --watch test's new step cannot race the tests that read step-2.
pytestmark = [pytest.mark.real, pytest.mark.slow]

N_PROMPTS, G, MAX_TOKENS = 6, 2, 24


def sh(script: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ER": " ".join(ER)}
    proc = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=cwd, env=env, capture_output=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc


@pytest.fixture(scope="module")
def loop(tmp_path_factory, real_model) -> Path:
    """The project card's pipe, once, with default flags: sample | score | advantage | update."""
    work = tmp_path_factory.mktemp("real-loop")
    (work / "prompts.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in problems(1, N_PROMPTS)))
    sh(f"""
        $ER sample -m {real_model} prompts.jsonl -n {G} --max-tokens {MAX_TOKENS} --seed 1 \\
          | tee samples.jsonl \\
          | $ER score --reward math --reward length:unit=chars,scale=-0.001 | tee scored.jsonl \\
          | $ER advantage | tee advantaged.jsonl \\
          | $ER update -m {real_model} --out ckpt --batch-size {N_PROMPTS * G // 2} --lr 1e-5 --keep-last 1 \\
          > metrics.jsonl
    """, work)
    return work


def test_a_string_prompt_gets_the_chat_template_by_default(loop, real_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(real_model)
    samples = parse_jsonl((loop / "samples.jsonl").read_bytes())
    assert len(samples) == N_PROMPTS * G
    assert all(s["sampling"]["chat"] is True for s in samples)
    first = tok.decode(samples[0]["prompt_token_ids"])
    assert first.startswith("<|im_start|>system") and "<|im_start|>user\n" + samples[0]["prompt"] in first
    assert first.endswith("<|im_start|>assistant\n")
    # an instruct model given its template answers: (raw text gave mostly empty completions)
    assert sum(bool(s["completion"].strip()) for s in samples) >= len(samples) - 1
    assert all(0 < s["completion_tokens"] <= MAX_TOKENS for s in samples)


def test_score_advantage_and_update_run_on_the_real_model(loop):
    scored = parse_jsonl((loop / "scored.jsonl").read_bytes())
    assert all(type(s["correct"]) is bool and s["reward"] is not None for s in scored)
    advantaged = parse_jsonl((loop / "advantaged.jsonl").read_bytes())
    assert any(abs(a["advantage"]) > 0 for a in advantaged)
    metrics = parse_jsonl((loop / "metrics.jsonl").read_bytes())
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["samples"] == N_PROMPTS * G // 2 and m["grad_norm"] > 0 for m in metrics)


def test_keep_last_leaves_one_step_and_latest_points_at_it(loop):
    ckpt = loop / "ckpt"
    assert sorted(os.listdir(ckpt)) == [".er-writer.lock", "latest", "step-2", "trainer-state"]
    assert os.readlink(ckpt / "latest") == "step-2"
    assert os.listdir(ckpt / "trainer-state") == ["step-2"]


def test_plain_transformers_loads_the_checkpoint_and_it_holds_the_trained_weights(loop, real_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = loop / "ckpt" / "latest"
    assert [n for n in os.listdir(path) if n.endswith(".safetensors")] == ["model.safetensors"]
    model = AutoModelForCausalLM.from_pretrained(path)
    base = AutoModelForCausalLM.from_pretrained(real_model)
    assert model.config.vocab_size == 49152
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])]
    assert len(changed) > 100  # every layer moved
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


@pytest.mark.vllm
def test_plain_vllm_loads_the_checkpoint(loop):
    """No er code: vllm.LLM on step-N (CPU build settings only: memory share, eager mode, a short context)."""
    script = loop / "plain_vllm.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        if __name__ == "__main__":
            from vllm import LLM, SamplingParams
            llm = LLM(model=sys.argv[1], gpu_memory_utilization=0.3, enforce_eager=True, max_model_len=512)
            out = llm.generate(["The capital of France is"], SamplingParams(max_tokens=4, temperature=0))
            print(json.dumps({"tokens": len(out[0].outputs[0].token_ids)}))
    """))
    proc = subprocess.run([sys.executable, str(script), str(loop / "ckpt" / "latest")], capture_output=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    results = [line for line in proc.stdout.splitlines() if line.startswith(b'{"tokens"')]  # vLLM logs to stdout too
    assert [orjson.loads(line) for line in results] == [{"tokens": 4}]


class Lines:
    """Lines of a pipe, read by a thread, so the test can wait for one with a deadline."""

    def __init__(self, pipe):
        self.lines: list[bytes] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in iter(pipe.readline, b""):
            self.lines.append(line)

    def wait_for(self, want, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            while seen < len(self.lines):
                record = orjson.loads(self.lines[seen])
                seen += 1
                if want(record):
                    return record
            time.sleep(0.2)
        raise AssertionError(f"no such record within {timeout} s ({len(self.lines)} lines)")


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(x) for x in f.read().split()}


@pytest.mark.vllm
def test_watch_on_vllm_reloads_a_new_step_in_place_and_samples_from_it(loop, real_model):
    """`er sample --backend vllm --watch` with default engine flags (a small --chunk: reloads happen between
    chunks) follows `er update`'s new step without
    restarting the engine, and the records after the reload come from the new weights."""
    ckpt = loop / "ckpt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    sampler = subprocess.Popen([*ER, "sample", "--backend", "vllm", "--watch", str(ckpt), "--loop",
                                str(loop / "prompts.jsonl"), "-n", "2", "--max-tokens", "12", "--seed", "0",
                                "--logprobs", "--chunk", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = Lines(sampler.stdout)
    try:
        first = out.wait_for(lambda r: True, timeout=600)
        assert first["policy"]["step"] == 2
        engine = children(sampler.pid)
        assert engine, "the vLLM engine runs in a child process"
        # a much larger step, so the new policy is unmistakably another one
        update = subprocess.run([*ER, "update", "-m", str(ckpt / "latest"), "--out", str(ckpt), "--resume",
                                 str(loop / "advantaged.jsonl"), "--batch-size", str(N_PROMPTS * G), "--lr", "1e-3",
                                 "--keep-last", "1"], capture_output=True, env=env, timeout=600)
        assert update.returncode == 0, update.stderr.decode()[-2000:]
        assert os.readlink(ckpt / "latest") == "step-3"
        after = out.wait_for(lambda r: r["policy"]["step"] == 3, timeout=600)
        assert children(sampler.pid) == engine  # the same engine process: reloaded in place
    finally:
        sampler.send_signal(signal.SIGINT)
        try:
            code = sampler.wait(timeout=120)
        except subprocess.TimeoutExpired:
            sampler.kill()
            raise
    err = sampler.stderr.read().decode()
    assert code == 130, err[-2000:]
    assert f"policy step 3 from {ckpt}/step-3 (reloaded in place in" in err, err[-2000:]

    # the logprobs vLLM reported after the reload are those of the step-3 weights, not of the base model
    import torch
    from transformers import AutoModelForCausalLM

    from er.sampling.hf import teacher_forced_logprobs

    def gap(model_path) -> float:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
        ref = teacher_forced_logprobs(model, after["prompt_token_ids"], after["token_ids"],
                                      after["sampling"]["temperature"])
        return max(abs(a - b) for a, b in zip(ref, after["logprobs"]))

    assert gap(ckpt / "step-3") < 2e-3
    assert gap(real_model) > 0.05
