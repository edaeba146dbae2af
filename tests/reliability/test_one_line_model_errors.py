"""A model that cannot be opened is one line and exit 2 (the -m argument names something unusable),
in every command that opens one (er sample, er update), and fast: a Hub name without the network
fails at once instead of a minute of retries. `er update` never saves a checkpoint with an empty
tokenizer. The checks live in er.models."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.helpers import jsonl, run_er

PROMPTS = jsonl([{"id": "p0", "prompt": "1 + 1 ="}])
ROWS = jsonl([{"id": "p0", "prompt": "1 + 1 =", "group_id": "g0", "group_size": 2, "sample_idx": i,
               "completion": " 2", "completion_tokens": 2, "finish_reason": "stop", "advantage": a}
              for i, a in enumerate((1.0, -1.0))])


def one_line(proc) -> str:
    err = proc.stderr.decode()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def sample(model, env=None):
    return run_er("sample", "-m", model, "--backend", "transformers", "-n", "2", "--max-tokens", "4",
                  input=PROMPTS, env=env)


def update(model, out):
    return run_er("update", "-m", model, "--out", str(out), "--batch-size", "2", input=ROWS)


@pytest.fixture
def no_tokenizer(tiny_model, tmp_path):
    path = tmp_path / "no-tokenizer"
    path.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(os.path.join(tiny_model, name), path / name)
    return str(path)


@pytest.fixture
def broken_config(tiny_model, tmp_path):
    path = tmp_path / "broken-config"
    shutil.copytree(tiny_model, path)
    (path / "config.json").write_text('{"model_type": "qwen2", "hidden_size": ')
    return str(path)


@pytest.mark.parametrize("env", [
    {"HF_HUB_OFFLINE": "1"},
    # online, but the Hub does not answer (a closed local port): one probe, no retries
    {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"},
], ids=["offline", "unreachable"])
def test_a_hub_name_without_the_network_fails_fast_with_one_line(tmp_path, env):
    env = {**env, "HF_HOME": str(tmp_path / "hf")}  # an empty cache
    started = time.monotonic()
    proc = sample("someorg/somemodel", env=env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2
    err = one_line(proc)
    assert err.startswith("er sample: -m someorg/somemodel: ") and "models must be local directories" in err
    assert elapsed < 40  # the interpreter and imports; the old path retried for more than a minute


def test_a_hub_name_in_the_cache_is_opened_without_the_network(tiny_model, tmp_path):
    hf_home = tmp_path / "hf"
    snapshot = hf_home / "hub" / "models--someorg--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model, snapshot)
    (hf_home / "hub" / "models--someorg--tiny" / "refs").mkdir()
    (hf_home / "hub" / "models--someorg--tiny" / "refs" / "main").write_text("0" * 40)
    proc = sample("someorg/tiny", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)})
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.count(b"\n") == 2


def test_sample_refuses_a_model_without_a_tokenizer(no_tokenizer):
    proc = sample(no_tokenizer)
    assert proc.returncode == 2
    assert one_line(proc).startswith(f"er sample: -m {no_tokenizer}: no tokenizer")


def test_update_refuses_a_model_without_a_tokenizer_and_saves_nothing(no_tokenizer, tmp_path):
    out = tmp_path / "ckpt"
    proc = update(no_tokenizer, out)
    assert proc.returncode == 2
    assert one_line(proc).startswith(f"er update: -m {no_tokenizer}: no tokenizer")
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("command", ["sample", "update"])
def test_a_broken_config_json_is_one_line(broken_config, tmp_path, command):
    proc = sample(broken_config) if command == "sample" else update(broken_config, tmp_path / "ckpt")
    assert proc.returncode == 2
    assert one_line(proc).startswith(f"er {command}: -m {broken_config}: config.json is not valid JSON")


def test_a_tokenizer_file_that_does_not_load_is_one_line(tiny_model, tmp_path):
    path = tmp_path / "bad-tokenizer"
    shutil.copytree(tiny_model, path)
    (path / "tokenizer.json").write_text("{not a tokenizer")
    proc = sample(str(path))
    assert proc.returncode == 2
    assert one_line(proc).startswith(f"er sample: -m {path}: cannot load the tokenizer")
