"""Fixtures for the sampling tests: run `er sample` in this process (fast) and read what it wrote."""

from __future__ import annotations

import os

import orjson
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Result:
    def __init__(self, code, records, err, rejects):
        self.code, self.records, self.err, self.rejects = code, records, err, rejects


@pytest.fixture
def er_sample(tmp_path, capsys):
    """er_sample(*args, prompts=[...]) -> Result; runs `er sample ARGS -o out.jsonl` via er.cli.main."""
    from er.cli import main

    counter = [0]

    def run(*args, prompts=None, rejects=False):
        counter[0] += 1
        out = tmp_path / f"out{counter[0]}.jsonl"
        argv = ["sample", *args, "-o", str(out)]
        if prompts is not None:
            src = tmp_path / f"prompts{counter[0]}.jsonl"
            src.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in prompts))
            argv.insert(1, str(src))
        rej = tmp_path / f"rejects{counter[0]}.jsonl"
        if rejects:
            argv += ["--rejects", str(rej)]
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        records = [orjson.loads(x) for x in out.read_bytes().splitlines()] if out.exists() else []
        rj = [orjson.loads(x) for x in rej.read_bytes().splitlines()] if rej.exists() else []
        return Result(code, records, err, rj)

    return run


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="session")
def hf_model(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
