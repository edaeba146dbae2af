"""A checkpoint of another model is refused, never silently used (er.model_identity).

`er update -m A --out D --resume` where D holds a checkpoint of model B (another architecture, or the
same shapes with another tokenizer) is a usage error before anything loads, D untouched. An
`er sample --watch` reload of a checkpoint with another tokenizer stops the command (exit 1, one line)
on both backends, as any checkpoint that will not load does.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from er.train.checkpoint import point_latest
from tests.train.helpers import run_er as run_in_process

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


@pytest.fixture(scope="module")
def other_models(tiny_model, tmp_path_factory) -> dict[str, str]:
    """'architecture': the tiny model's tokenizer on narrower layers; 'tokenizer': its config and weights with a
    tokenizer of the same size trained on other text."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from er.tiny import build_tokenizer, default_corpus

    root = tmp_path_factory.mktemp("others")
    arch = root / "architecture"
    arch.mkdir()
    for name in os.listdir(tiny_model):
        if name in TOKENIZER_FILES:
            shutil.copy(os.path.join(tiny_model, name), arch)
    config = AutoConfig.from_pretrained(tiny_model)
    config.hidden_size, config.num_attention_heads, config.num_key_value_heads = 64, 2, 1
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(config).save_pretrained(arch)

    tok = root / "tokenizer"
    shutil.copytree(tiny_model, tok)
    rng = random.Random(5)
    other_text = [" ".join(rng.sample(line.split(), len(line.split())))[::-1] for line in default_corpus()]
    vocab = len(build_tokenizer(str(tok), other_text, vocab_size=AutoConfig.from_pretrained(tiny_model).vocab_size))
    assert vocab == AutoConfig.from_pretrained(tiny_model).vocab_size  # the same shapes, only the tokenizer differs
    return {"architecture": str(arch), "tokenizer": str(tok)}


def checkpoint_dir(model: str, out: Path, step: int) -> Path:
    """DIR holding `model` as its checkpoint step-N (the layout er update writes), latest pointing at it."""
    shutil.copytree(model, out / f"step-{step}")
    (out / "trainer-state" / f"step-{step}").mkdir(parents=True)
    (out / "trainer-state" / f"step-{step}" / "er_state.json").write_text(f'{{"step": {step}}}')
    point_latest(str(out), f"step-{step}")
    return out


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("other, why", [("architecture", "another architecture: hidden_size 96 vs 64"),
                                        ("tokenizer", "another tokenizer: ")])
def test_resume_from_a_checkpoint_of_another_model_is_refused_before_anything_loads(tiny_model, other_models, tmp_path,
                                                                                    capsys, other, why):
    out = checkpoint_dir(other_models[other], tmp_path / "ckpt", 3)
    before = tree(out)
    (tmp_path / "rows.jsonl").write_text('{"prompt": "1 + 1 =", "completion": " 2"}\n')
    code, err = run_in_process(["update", "-m", tiny_model, "--out", out, "--resume", "--loss", "sft",
                                tmp_path / "rows.jsonl"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"er update: --resume: {out / 'step-3'} is not a checkpoint of -m {tiny_model} ({why}")
    assert tree(out) == sorted(before + [".er-writer.lock"])  # nothing written but the lock's file


def test_resume_from_a_checkpoint_of_the_same_model_passes_the_check(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from er.train.outdir import check_resume_matches

    saved = tmp_path / "saved"  # what er update writes: from_pretrained then save_pretrained
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(saved)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(saved)
    check_resume_matches(tiny_model, str(saved))


def watch_until_another_tokenizer(tiny_model: str, other: str, tmp_path: Path, backend: str) -> str:
    """Sample with --watch from a checkpoint of the tiny model; mid-stream latest moves to `other`."""
    from er.errors import ErError
    from er.io import RecordStream
    from er.sampling.run import EngineOptions, sample
    from er.sampling.sampler import SampleOptions

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    shutil.copytree(tiny_model, ckpt / "step-1")
    point_latest(str(ckpt), "step-1")

    def rows():
        for i in range(4):
            if i == 2:
                shutil.copytree(other, ckpt / "step-2")
                point_latest(str(ckpt), "step-2")
            yield "<rows>", i + 1, {"id": f"p{i}", "prompt": "1 + 2 ="}

    out = tmp_path / "out.jsonl"
    with pytest.raises(ErError) as info:
        with RecordStream("sample", ["-"], output=str(out), quiet=True) as s:
            sample(s, model=None, opt=SampleOptions(n=1, max_tokens=2, seed=3),
                   eng=EngineOptions(backend=backend, chunk=1, max_model_len=256), watch=str(ckpt), rows=rows())
    assert info.value.exit_code == 1
    return str(info.value)


def test_a_watch_reload_with_another_tokenizer_stops_the_transformers_sampler(tiny_model, other_models, tmp_path):
    message = watch_until_another_tokenizer(tiny_model, other_models["tokenizer"], tmp_path, "transformers")
    assert message.startswith(f"{tmp_path / 'ckpt' / 'step-2'}: --watch cannot load this checkpoint (another "
                              "tokenizer: ") and "stopping rather than sampling on from step 1" in message
    assert "\n" not in message


@pytest.mark.vllm
def test_a_watch_reload_with_another_tokenizer_stops_the_vllm_sampler(tiny_model, other_models, tmp_path):
    pytest.importorskip("vllm")
    message = watch_until_another_tokenizer(tiny_model, other_models["tokenizer"], tmp_path, "vllm")
    assert message.startswith(f"{tmp_path / 'ckpt' / 'step-2'}: --watch cannot load this checkpoint (another "
                              "tokenizer: ") and "stopping rather than sampling on from step 1" in message
