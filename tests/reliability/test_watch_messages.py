"""`er sample --watch` says what happened to the checkpoint it follows.

A checkpoint pruned between the poll and its first load is reported as removed, and `latest` taken again
(its name, `ckpt/step-N`, is spelled like a Hub name: it used to read as a network failure). A `latest`
that cannot name a checkpoint (a regular file, a directory, a dangling or looping symlink, a link to
something not named step-N) is ignored with one warning, not without a word.
"""

from __future__ import annotations

import os
import shutil

import orjson
import pytest

from er.train.checkpoint import point_latest


def test_a_checkpoint_pruned_between_poll_and_first_load_is_reported_as_removed(tiny_model, tmp_path, monkeypatch,
                                                                                capsys):
    from er.models import load_tokenizer, model_dir
    from er.sampling.policy import Watcher, open_first

    monkeypatch.chdir(tmp_path)  # `--watch ckpt`, relative, as a user types it
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for n in (1, 2):
        shutil.copytree(tiny_model, ckpt / f"step-{n}")
    point_latest(str(ckpt), "step-1")
    pruned = []

    def open_policy(path):
        if not pruned:  # er update --keep-last 1 runs ahead: step-2 is written, step-1 removed
            point_latest(str(ckpt), "step-2")
            shutil.rmtree(ckpt / "step-1")
            pruned.append(path)
        path = model_dir(path)
        return path, load_tokenizer(path)

    name, (path, _tokenizer) = open_first(Watcher("ckpt"), None, open_policy)
    assert pruned == [os.path.join("ckpt", "step-1")]
    assert name == path == os.path.join("ckpt", "step-2")
    err = capsys.readouterr().err
    assert err == (f"er sample: {os.path.join('ckpt', 'step-1')} was removed (er update --keep-last pruned it) before "
                   f"it could be loaded; taking {os.path.join('ckpt', 'latest')} again\n")
    assert "network" not in err and "HF_HUB_OFFLINE" not in err


def make_latest(ckpt, kind: str) -> str:
    """DIR/latest in a state that names no checkpoint; returns what the warning must say."""
    link = ckpt / "latest"
    if kind == "regular file":
        link.write_text("step-1\n")
        return f"{link} is a regular file, not a symlink to a step-N checkpoint"
    if kind == "directory":
        link.mkdir()
        return f"{link} is a directory, not a symlink to a step-N checkpoint"
    if kind == "dangling":
        os.symlink("step-7", link)
        return f"{link} dangles (step-7 does not exist)"
    if kind == "loop":
        os.symlink("latest", link)
        return f"{link} loops"
    os.symlink("../elsewhere", link)
    return f"{link} points at ../elsewhere, not a step-N checkpoint"


@pytest.mark.parametrize("kind", ["regular file", "directory", "dangling", "loop", "not a step"])
def test_a_latest_that_names_no_checkpoint_is_ignored_with_one_warning(tmp_path, capsys, kind):
    from er.sampling.policy import Watcher

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (tmp_path / "elsewhere").mkdir()
    why = make_latest(ckpt, kind)
    watcher = Watcher(str(ckpt))
    assert watcher.poll() is None and watcher.poll() is None
    assert capsys.readouterr().err == (f"er sample: warning: --watch: {why}; ignored until er update points it "
                                       "at a new checkpoint\n")  # once, not at every poll


def test_er_sample_keeps_sampling_from_m_and_says_why_latest_was_ignored(tiny_model, tmp_path, capsys):
    from er.cli import main

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    why = make_latest(ckpt, "dangling")
    (tmp_path / "p.jsonl").write_bytes(orjson.dumps({"id": "a", "prompt": "1 + 1 ="}) + b"\n")
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    code = main(["sample", "-m", tiny_model, "--watch", str(ckpt), str(tmp_path / "p.jsonl"), "-n", "1",
                 "--max-tokens", "2", "--backend", "transformers", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"er sample: warning: --watch: {why}; ignored until er update points it at a new checkpoint\n" in err
    assert orjson.loads(out.read_bytes())["policy"] == {"model": tiny_model, "step": None}
