"""The tokenizer memo (er.tokenizer_memo): AutoTokenizer's tokenizer, without AutoTokenizer's imports
once its class is remembered, and the Auto path whenever the memo cannot vouch for the answer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from er import tokenizer_memo
from er.models import load_tokenizer

# A fresh process: load through er.models.load_tokenizer, say what got imported and what came out.
PROBE = """
import json, sys
from er.models import load_tokenizer
tok = load_tokenizer(sys.argv[1])
msgs = [{"role": "user", "content": "What is 2 + 3? Think briefly."}]
print(json.dumps({
    "heavy": [m for m in ("torch", "sklearn", "transformers.models.auto.tokenization_auto") if m in sys.modules],
    "class": type(tok).__module__ + "." + type(tok).__name__,
    "backend": tok.backend_tokenizer.to_str(),
    "special": {k: str(v) for k, v in tok.special_tokens_map.items()},
    "eos": tok.eos_token_id, "pad": tok.pad_token_id,
    "chat_template": tok.chat_template,
    "rendered": tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) if tok.chat_template else None,
    "ids": tok.encode("The quick brown fox, 12345 <|endoftext|> naïve café\\n\\tend"),
    "decoded": tok.decode(tok.encode("x = 3.14; print(x)")),
}))
"""


def probe(path: str, cache: str) -> dict:
    env = {**os.environ, "ER_CACHE": cache}
    proc = subprocess.run([sys.executable, "-c", PROBE, path], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def entries(cache) -> list[str]:
    d = os.path.join(cache, "tokenizer-class")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_a_remembered_class_gives_autotokenizers_tokenizer_without_torch(tiny_model, tmp_path):
    cache = str(tmp_path / "cache")
    first = probe(tiny_model, cache)  # the Auto path: imports torch, remembers the class
    assert "transformers.models.auto.tokenization_auto" in first["heavy"]
    assert len(entries(cache)) == 1
    second = probe(tiny_model, cache)
    assert second.pop("heavy") == []
    first.pop("heavy")
    assert second == first  # the same class, backend, special tokens, template and encodings


def test_each_input_of_autotokenizers_choice_is_in_the_key(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ER_CACHE", str(tmp_path / "cache"))
    model = str(tmp_path / "model")
    shutil.copytree(tiny_model, model)
    calls = []

    def auto(path):
        calls.append(path)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)

    tokenizer_memo.load(model, auto)
    tokenizer_memo.load(model, auto)
    assert len(calls) == 1  # remembered
    config_file = os.path.join(model, "tokenizer_config.json")
    config = json.loads(open(config_file).read())
    config["model_max_length"] = 77
    open(config_file, "w").write(json.dumps(config))
    assert tokenizer_memo.load(model, auto).model_max_length == 77
    assert len(calls) == 2  # another tokenizer_config.json: another key
    open(os.path.join(model, "added_tokens.json"), "w").write("{}")
    tokenizer_memo.load(model, auto)
    assert len(calls) == 3  # another set of tokenizer files: another key
    assert len(entries(tmp_path / "cache")) == 3


def test_remote_code_is_never_remembered(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ER_CACHE", str(tmp_path / "cache"))
    model = str(tmp_path / "model")
    shutil.copytree(tiny_model, model)
    config_file = os.path.join(model, "tokenizer_config.json")
    config = json.loads(open(config_file).read())
    config["auto_map"] = {"AutoTokenizer": ["my_tokenizer.MyTokenizer", None]}
    open(config_file, "w").write(json.dumps(config))
    calls = []
    for _ in range(2):
        tokenizer_memo.load(model, lambda path: calls.append(path) or "tok")
    assert calls == [model, model]
    assert entries(tmp_path / "cache") == []


def test_a_path_transformers_forces_onto_the_plain_backend_takes_the_auto_path(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("ER_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "deepseek-ai" / "deepseek-coder-1.3b"
    shutil.copytree(tiny_model, model)
    monkeypatch.chdir(tmp_path)
    relative = "deepseek-ai/deepseek-coder-1.3b"  # what AutoTokenizer matches against its Hub-id list
    calls = []

    def auto(path):
        calls.append(path)
        return load_tokenizer(path)

    tokenizer_memo.load(str(model), auto)  # an absolute path matches no Hub id: remembered
    assert len(calls) == 1
    tokenizer_memo.load(relative, auto)  # the same files under a name on the list: the Auto path
    assert len(calls) == 2


def test_an_unusable_cache_costs_the_import_and_nothing_else(tiny_model, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("ER_CACHE", str(blocker))  # cannot hold an entry: every write fails
    assert load_tokenizer(tiny_model).encode("hello") == load_tokenizer(tiny_model).encode("hello")
    monkeypatch.setenv("ER_CACHE", str(tmp_path / "cache"))
    load_tokenizer(tiny_model)
    (name,) = entries(tmp_path / "cache")
    for garbage in (b"{not json", b"[1, 2]", json.dumps({"module": "os", "class": "system"}).encode(),
                    json.dumps({"module": "transformers.nowhere", "class": "X"}).encode()):
        (tmp_path / "cache" / "tokenizer-class" / name).write_bytes(garbage)
        assert load_tokenizer(tiny_model).encode("hello") == load_tokenizer(tiny_model).encode("hello")
    assert os.listdir(tmp_path / "cache" / "tokenizer-class") == [name]  # no temporary file left beside it


def test_a_bad_tokenizer_is_still_one_usage_line(tmp_path, monkeypatch):
    from er.errors import UsageError

    monkeypatch.setenv("ER_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2"}')
    (model / "tokenizer.json").write_text("{broken")
    with pytest.raises(UsageError, match=r"cannot load the tokenizer"):
        load_tokenizer(str(model))
