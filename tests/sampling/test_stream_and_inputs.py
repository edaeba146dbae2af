"""The streaming loop (--watch, --loop, --limit), prompt sources (--dataset/--preset, --shard) and bad input."""

from __future__ import annotations

import os
import shutil

import orjson
import pytest

from er.io import RecordStream
from er.sampling.policy import Watcher, checkpoint_step
from er.sampling.run import EngineOptions, sample
from er.sampling.sampler import SampleOptions

from .test_sample_transformers import BASE, PROMPTS

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    from er.tiny import build_tiny

    return build_tiny(str(tmp_path_factory.mktemp("tiny2") / "model"), seed=1)


def point_latest(ckpt, name):
    tmp = os.path.join(ckpt, ".latest.tmp")
    os.symlink(name, tmp)
    os.replace(tmp, os.path.join(ckpt, "latest"))


def test_watch_picks_up_a_new_checkpoint_mid_stream_and_never_loads_a_half_written_one(tmp_path, tiny_model, second_model):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    shutil.copytree(tiny_model, ckpt / "step-0")
    point_latest(ckpt, "step-0")
    events = []

    def rows():
        for i in range(6):
            if i == 2:  # er update writes step-1 and moves latest
                shutil.copytree(second_model, ckpt / "step-1")
                point_latest(ckpt, "step-1")
            if i == 4:  # latest now names a checkpoint without weights yet
                os.makedirs(ckpt / "step-2")
                shutil.copy(os.path.join(second_model, "config.json"), ckpt / "step-2")
                point_latest(ckpt, "step-2")
            events.append(i)
            yield "<rows>", i + 1, {"id": f"p{i}", "prompt": "1 + 2 ="}

    out = tmp_path / "out.jsonl"
    opt = SampleOptions(n=2, max_tokens=4, seed=3)
    with RecordStream("sample", ["-"], output=str(out), quiet=True) as s:
        sample(s, model=None, opt=opt, eng=EngineOptions(backend="transformers", chunk=1), watch=str(ckpt), rows=rows())
    recs = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    steps = [x["policy"]["step"] for x in recs[::2]]
    assert steps == [0, 0, 1, 1, 1, 1]
    assert recs[0]["policy"]["model"] == os.path.join(str(ckpt), "step-0")
    assert recs[-1]["policy"]["model"] == os.path.join(str(ckpt), "step-1")
    # a different model really sampled after the reload: same seed and prompt, other completion
    same = SampleOptions(n=2, max_tokens=4, seed=3)
    out2 = tmp_path / "out2.jsonl"
    with RecordStream("sample", ["-"], output=str(out2), quiet=True) as s:
        sample(s, model=str(ckpt / "step-0"), opt=same, eng=EngineOptions(backend="transformers", chunk=1),
               rows=(("<rows>", i + 1, {"id": f"p{i}", "prompt": "1 + 2 ="}) for i in range(6)))
    base = [orjson.loads(x) for x in out2.read_bytes().splitlines()]
    assert [x["completion"] for x in recs[:4]] == [x["completion"] for x in base[:4]]
    assert [x["completion"] for x in recs[4:]] != [x["completion"] for x in base[4:]]


def test_watcher_only_follows_complete_step_dirs(tmp_path, tiny_model):
    ckpt = tmp_path / "c"
    ckpt.mkdir()
    w = Watcher(str(ckpt))
    assert w.poll() is None  # no latest yet
    (ckpt / "step-5").mkdir()
    (ckpt / "step-5" / "config.json").write_text("{}")
    point_latest(ckpt, "step-5")
    assert w.poll() is None  # no weights: half written
    (ckpt / "step-5" / "model.safetensors").write_bytes(b"x")
    assert w.poll() == os.path.join(str(ckpt), "step-5")
    w.accepted(w.poll())
    assert w.poll() is None  # already in use
    assert checkpoint_step(str(ckpt / "latest")) == 5 and checkpoint_step(tiny_model) is None


def test_a_checkpoint_that_will_not_load_stops_sampling_with_one_error(tmp_path, tiny_model):
    """Sampling on from the old policy would label stale samples as fresh RL data: --watch stops instead."""
    from er.errors import ErError

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    shutil.copytree(tiny_model, ckpt / "step-0")
    point_latest(ckpt, "step-0")

    def rows():
        for i in range(6):
            if i == 2:  # complete-looking, but the weights are not safetensors
                shutil.copytree(tiny_model, ckpt / "step-1")
                (ckpt / "step-1" / "model.safetensors").write_bytes(b"not weights")
                point_latest(ckpt, "step-1")
            yield "<rows>", i + 1, {"id": f"p{i}", "prompt": "1 + 2 ="}

    out = tmp_path / "out.jsonl"
    with pytest.raises(ErError) as info:
        with RecordStream("sample", ["-"], output=str(out), quiet=True) as s:
            sample(s, model=None, opt=SampleOptions(n=1, max_tokens=2, seed=3),
                   eng=EngineOptions(backend="transformers", chunk=1), watch=str(ckpt), rows=rows())
    assert "step-1" in str(info.value) and "cannot load" in str(info.value) and "step 0" in str(info.value)


def test_watch_with_half_written_latest_keeps_the_given_model(er_sample, tmp_path, tiny_model):
    ckpt = tmp_path / "ck"
    (ckpt / "step-9").mkdir(parents=True)
    shutil.copy(os.path.join(tiny_model, "config.json"), ckpt / "step-9")
    point_latest(ckpt, "step-9")
    r = er_sample("-m", tiny_model, "--watch", str(ckpt), "--max-tokens", "2", *BASE, prompts=PROMPTS[:2])
    assert r.code == 0, r.err
    assert [x["policy"] for x in r.records] == [{"model": tiny_model, "step": None}] * 2
    r = er_sample("--watch", str(ckpt), "--max-tokens", "2", *BASE, prompts=PROMPTS[:2])
    assert r.code == 2 and "-m/--model is required" in r.err


def test_loop_cycles_epochs_reshuffled_with_unique_group_ids_and_limit_stops(er_sample, tiny_model):
    r = er_sample("-m", tiny_model, "-n", "2", "--max-tokens", "2", "--loop", "--max-prompts", "9", *BASE,
                  prompts=PROMPTS[:3])
    assert r.code == 0, r.err
    groups = [x["group_id"] for x in r.records[::2]]
    assert len(groups) == 9 and len(set(groups)) == 9
    assert groups[:3] == ["a", "b", "c"]
    assert sorted(groups[3:6]) == ["a#1", "b#1", "c#1"] and sorted(groups[6:]) == ["a#2", "b#2", "c#2"]
    from itertools import islice

    from er.sampling.sampler import iter_epochs

    epochs = list(islice(iter_epochs(list(range(6)), 7, loop=True), 18))
    assert epochs[:6] == list(range(6)) and sorted(epochs[6:12]) == sorted(epochs[12:]) == list(range(6))
    assert epochs[6:12] != epochs[12:] and epochs == list(islice(iter_epochs(list(range(6)), 7, loop=True), 18))
    spaced = list(islice(iter_epochs(list(range(6)), 7, loop=True, spacing=2), 60))
    assert all(len(set(spaced[i:i + 3])) == 3 for i in range(58))  # no repeat within any 3 draws, epochs whole
    assert all(sorted(spaced[i:i + 6]) == list(range(6)) for i in range(0, 60, 6))
    r2 = er_sample("-m", tiny_model, "--max-tokens", "2", "--limit", "2", *BASE, prompts=PROMPTS)
    assert [x["id"] for x in r2.records] == ["a", "b"]


def test_dataset_preset_from_a_local_file(er_sample, tiny_model, tokenizer):
    path = os.path.join(DATA, "gsm8k.jsonl")
    r = er_sample("-m", tiny_model, "--dataset", path, "--preset", "gsm8k", "--max-tokens", "2", "--limit", "2", *BASE)
    assert r.code == 0, r.err
    assert [x["id"] for x in r.records] == ["gsm8k/0", "gsm8k/1"]
    assert [x["answer"] for x in r.records] == ["72", "24000"]
    text = tokenizer.apply_chat_template(r.records[0]["prompt"], add_generation_prompt=True, tokenize=False)
    assert r.records[0]["prompt_tokens"] == len(tokenizer.encode(text, add_special_tokens=False))


def test_shard_takes_every_nth_prompt(er_sample, tiny_model):
    r = er_sample("-m", tiny_model, "--max-tokens", "1", "--shard", "1/2", *BASE, prompts=PROMPTS)
    assert [x["id"] for x in r.records] == ["b", "d"]
    assert "2 dropped (other shard: 2)" in r.err


@pytest.mark.parametrize("args", [["-n", "0"], ["--shard", "3/2"], ["--shard", "x"], ["--top-p", "0"]])
def test_bad_usage_exits_2(er_sample, tiny_model, args):
    r = er_sample("-m", tiny_model, *args, *BASE, prompts=PROMPTS[:1])
    assert r.code == 2
    assert r.err.count("\n") == 1 and r.err.startswith("er sample: ")


def test_model_path_that_does_not_exist_is_one_line_exit_2(er_sample, tmp_path):
    r = er_sample("-m", str(tmp_path / "nope"), *BASE, prompts=PROMPTS[:1])
    assert r.code == 2 and r.err == f"er sample: -m {tmp_path / 'nope'}: no such directory\n"


def test_missing_prompt_stops_naming_the_line_or_goes_to_rejects(er_sample, tiny_model):
    prompts = [PROMPTS[0], {"id": "x", "question": "no prompt"}, PROMPTS[2]]
    r = er_sample("-m", tiny_model, "--max-tokens", "2", *BASE, prompts=prompts)
    assert r.code == 1 and ":2: missing field 'prompt'" in r.err
    r = er_sample("-m", tiny_model, "--max-tokens", "2", *BASE, prompts=prompts, rejects=True)
    assert r.code == 0 and [x["id"] for x in r.records] == ["a", "c"]
    assert [(x["line"], x["error"], x["record"]["id"]) for x in r.rejects] == [(2, "missing field 'prompt'", "x")]
    assert "3 in, 2 out, 1 rejected" in r.err


def test_prompt_longer_than_the_context_is_rejected_naming_the_line(er_sample, tiny_model):
    long = {"id": "long", "prompt": "1 + 2 = 3 " * 40}
    r = er_sample("-m", tiny_model, "--max-tokens", "2", "--max-model-len", "32", *BASE, prompts=[PROMPTS[0], long])
    assert r.code == 1 and ":2: prompt has" in r.err and "the model context is 32" in r.err
    r = er_sample("-m", tiny_model, "--max-tokens", "2", "--max-model-len", "32", *BASE, prompts=[PROMPTS[0], long],
                  rejects=True)
    assert r.code == 0 and [x["id"] for x in r.records] == ["a"] and r.rejects[0]["line"] == 2


def test_the_cap_is_cut_to_what_the_context_leaves(er_sample, tiny_model):
    r = er_sample("-m", tiny_model, "--max-tokens", "50", "--max-model-len", "10", "--no-chat", *BASE, prompts=PROMPTS[:1])
    x = r.records[0]
    assert x["prompt_tokens"] + x["sampling"]["max_tokens"] == 10
