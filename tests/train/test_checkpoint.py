"""Atomic checkpoints: DIR/step-N (a plain save_pretrained dir), DIR/trainer-state/step-N, relative DIR/latest,
resume exactness (also from the earlier layout), --keep-last, kill -9 safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from er.errors import OutputError
from er.train.checkpoint import (clean_temporaries, is_old_layout, latest_checkpoint, load_state, prune, read_step,
                                 save_checkpoint)
from tests.train.helpers import read_jsonl, run_er, write_jsonl


def _load(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)


def test_save_writes_step_dirs_and_a_relative_latest_symlink(tiny_model, tmp_path):
    model, tok = _load(tiny_model)
    out = str(tmp_path / "ck")
    p1 = save_checkpoint(model, tok, out, 1, {"json": {"x": 1}, "tensors": {"t": torch.arange(3.0)}})
    p2 = save_checkpoint(model, tok, out, 2, {})
    assert p1.endswith("step-1") and p2.endswith("step-2")
    assert os.readlink(os.path.join(out, "latest")) == "step-2"  # relative
    assert latest_checkpoint(out) == os.path.realpath(p2)
    assert read_step(os.path.join(out, "latest")) == 2 and read_step(p1) == 1
    meta, tensors = load_state(p1)
    assert meta["x"] == 1 and meta["step"] == 1 and tensors["t"].tolist() == [0.0, 1.0, 2.0]
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in os.listdir(p1))
    # an existing step is never overwritten (DESIGN.md): saving it again is refused
    with pytest.raises(OutputError, match="never overwritten"):
        save_checkpoint(model, tok, out, 2, {})
    assert sorted(n for n in os.listdir(out) if not n.startswith(".")) == ["latest", "step-1", "step-2", "trainer-state"]


def test_a_step_dir_holds_only_what_a_model_loader_reads(tiny_model, tmp_path):
    """vLLM loads every *.safetensors of a model dir: the optimizer state must live elsewhere."""
    model, tok = _load(tiny_model)
    out = str(tmp_path / "ck")
    path = save_checkpoint(model, tok, out, 1, {"json": {"x": 1}, "tensors": {"optim.w.exp_avg": torch.ones(2)}})
    names = set(os.listdir(path))
    assert [n for n in names if n.endswith(".safetensors")] == ["model.safetensors"]
    assert not any(n.startswith("er_state") for n in names)
    assert sorted(os.listdir(os.path.join(out, "trainer-state", "step-1"))) == ["er_state.json", "er_state.safetensors"]
    # the model dir is exactly what save_pretrained + the tokenizer write
    plain = tmp_path / "plain"
    model.save_pretrained(plain)
    tok.save_pretrained(plain)
    assert names == set(os.listdir(plain))


def test_checkpoint_files_get_the_umask_mode_so_other_users_can_load_them(tiny_model, tmp_path):
    """save_pretrained alone leaves the weights 0600; a sampler run by another user could not read them."""
    model, tok = _load(tiny_model)
    old = os.umask(0o022)
    try:
        path = save_checkpoint(model, tok, str(tmp_path / "ck"), 1, {"tensors": {"t": torch.ones(1)}})
    finally:
        os.umask(old)
    state = os.path.join(str(tmp_path / "ck"), "trainer-state", "step-1")
    for folder in (path, state):
        assert os.stat(folder).st_mode & 0o777 == 0o755
        for name in os.listdir(folder):
            assert os.stat(os.path.join(folder, name)).st_mode & 0o777 == 0o644, name


def test_resume_reads_a_checkpoint_of_the_earlier_layout(tiny_model, tmp_path, capsys):
    """State files inside step-N (er before the trainer-state tree) still resume, with a hint on moving them."""
    rows = _pg_rows(4)
    write_jsonl(tmp_path / "a.jsonl", rows[:8])
    write_jsonl(tmp_path / "b.jsonl", rows[8:])
    common = ["-m", tiny_model, "--lr", "1e-3", "--batch-size", "8"]
    code, err = run_er(["update", *common, "--out", tmp_path / "ck", tmp_path / "a.jsonl", "-o", tmp_path / "m.jsonl"], capsys)
    assert code == 0, err
    state = tmp_path / "ck" / "trainer-state" / "step-1"
    os.remove(state / "config.json")  # the run's flags (er.config): the earlier layout had no such file
    for name in os.listdir(state):  # make it an old-layout checkpoint
        os.rename(state / name, tmp_path / "ck" / "step-1" / name)
    os.rmdir(state)
    assert is_old_layout(str(tmp_path / "ck" / "latest"))
    assert read_step(str(tmp_path / "ck" / "latest")) == 1
    code, err = run_er(["update", *common, "--out", tmp_path / "ck", "--resume", tmp_path / "b.jsonl",
                        "-o", tmp_path / "m2.jsonl"], capsys)
    assert code == 0, err
    assert "resuming from" in err and "mv " in err and "er_state" in err
    assert [m["step"] for m in read_jsonl(tmp_path / "m2.jsonl")] == [2]
    assert not is_old_layout(str(tmp_path / "ck" / "step-2"))


def test_keep_last_removes_older_checkpoints_only_after_the_new_one_is_complete(tiny_model, tmp_path):
    model, tok = _load(tiny_model)
    out = tmp_path / "ck"
    for step in range(1, 6):
        save_checkpoint(model, tok, str(out), step, {"json": {}}, keep_last=2)
        kept = sorted(n for n in os.listdir(out) if n.startswith("step-"))
        assert kept == [f"step-{s}" for s in range(max(1, step - 1), step + 1)]
        assert sorted(os.listdir(out / "trainer-state")) == kept
        assert os.readlink(out / "latest") == f"step-{step}" and latest_checkpoint(str(out)).endswith(f"step-{step}")
    # latest's target is never removed, even when it is not among the newest (a rewound run)
    os.unlink(out / "latest")
    os.symlink("step-4", out / "latest")
    save_checkpoint(model, tok, str(out), 6, {"json": {}}, keep_last=1)
    # save_checkpoint repointed latest to step-6, so step-4 may go now; prune() alone keeps latest's target
    assert sorted(n for n in os.listdir(out) if n.startswith("step-")) == ["step-6"]
    os.unlink(out / "latest")
    os.symlink("step-6", out / "latest")
    save_checkpoint(model, tok, str(out), 7, {"json": {}})
    os.unlink(out / "latest")
    os.symlink("step-6", out / "latest")
    assert prune(str(out), 1) == []  # step-7 is newest, step-6 is latest's target: both stay
    (out / "step-9").mkdir()  # an incomplete (in-progress) newer step dir is not counted and not removed
    assert prune(str(out), 1) == []
    assert (out / "step-9").is_dir()


def test_update_keep_last_flag(tiny_model, tmp_path, capsys):
    write_jsonl(tmp_path / "rows.jsonl", _pg_rows(4))
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--batch-size", "4", "--save-every", "1",
                        "--keep-last", "2", tmp_path / "rows.jsonl", "-o", tmp_path / "m.jsonl"], capsys)
    assert code == 0, err
    assert sorted(n for n in os.listdir(tmp_path / "ck") if n.startswith("step-")) == ["step-3", "step-4"]
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck2", "--keep-last", "0",
                        tmp_path / "rows.jsonl"], capsys)
    assert code == 2 and "--keep-last" in err


def test_leftover_temporaries_do_not_count_and_are_cleaned(tiny_model, tmp_path):
    model, tok = _load(tiny_model)
    out = tmp_path / "ck"
    save_checkpoint(model, tok, str(out), 3, {})
    (out / ".tmp-step-4-abcd").mkdir()
    (out / ".tmp-step-4-abcd" / "config.json").write_text("{")  # a half-written checkpoint
    (out / "step-9").mkdir()  # an incomplete step dir (no er_state.json): ignored
    (out / "trainer-state" / ".tmp-step-5-x").mkdir()  # a half-written trainer state
    (out / "trainer-state" / "step-8").mkdir()  # state written, killed before the model was renamed in
    (out / "trainer-state" / "step-8" / "er_state.json").write_text('{"step": 8}')
    assert read_step(latest_checkpoint(str(out))) == 3
    os.unlink(out / "latest")
    assert read_step(latest_checkpoint(str(out))) == 3  # falls back to the highest complete step
    clean_temporaries(str(out))
    assert not (out / ".tmp-step-4-abcd").exists()
    assert not (out / "trainer-state" / ".tmp-step-5-x").exists()


def test_latest_checkpoint_is_none_for_an_empty_dir(tmp_path):
    assert latest_checkpoint(str(tmp_path)) is None
    assert latest_checkpoint(str(tmp_path / "missing")) is None
    assert read_step(str(tmp_path)) is None


def _pg_rows(n_groups, start=0, size=4):
    rows = []
    for g in range(start, start + n_groups):
        for i in range(size):
            rows.append({"id": f"p{g}", "prompt": f"{g} + {g} =", "group_id": f"g{g}", "group_size": size,
                         "completion": f" {(g * 7 + i * 3) % 100} " * (1 + (g + i) % 4),
                         "advantage": [1.0, -1.0, 0.5, -0.5][i % 4]})
    return rows


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_model, tmp_path, capsys):
    rows = _pg_rows(8)
    write_jsonl(tmp_path / "all.jsonl", rows)
    write_jsonl(tmp_path / "a.jsonl", rows[:16])
    write_jsonl(tmp_path / "b.jsonl", rows[16:])
    common = ["-m", tiny_model, "--lr", "1e-3", "--warmup", "3", "--batch-size", "8", "--ppo-epochs", "2"]
    code, err = run_er(["update", *common, "--out", tmp_path / "one", tmp_path / "all.jsonl",
                        "-o", tmp_path / "m1.jsonl"], capsys)
    assert code == 0, err
    code, err = run_er(["update", *common, "--out", tmp_path / "two", tmp_path / "a.jsonl",
                        "-o", tmp_path / "m2a.jsonl"], capsys)
    assert code == 0, err
    code, err = run_er(["update", *common, "--out", tmp_path / "two", "--resume", tmp_path / "b.jsonl",
                        "-o", tmp_path / "m2b.jsonl"], capsys)
    assert code == 0, err
    assert "resuming from" in err
    m1 = read_jsonl(tmp_path / "m1.jsonl")
    m2 = read_jsonl(tmp_path / "m2a.jsonl") + read_jsonl(tmp_path / "m2b.jsonl")
    assert [m["step"] for m in m2] == [1, 2, 3, 4]
    assert [m["lr"] for m in m2] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3])
    for a, b in zip(m1, m2):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    w1, _ = _load(str(tmp_path / "one" / "latest"))
    w2, _ = _load(str(tmp_path / "two" / "latest"))
    for (n, p), (_, q) in zip(w1.named_parameters(), w2.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=0), n


def test_kill_9_at_any_moment_leaves_the_previous_checkpoint_loadable(tiny_model, tmp_path):
    write_jsonl(tmp_path / "rows.jsonl", _pg_rows(200))
    out = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-m", "er.cli", "update", "-m", tiny_model, "--out", str(out),
                             "--batch-size", "4", "--save-every", "1", str(tmp_path / "rows.jsonl"), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.time() + 120
        while not os.path.lexists(out / "latest") and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert os.path.lexists(out / "latest"), proc.stderr.read().decode() if proc.poll() is not None else "timeout"
        kills = 0
        seen = set()
        while kills < 1 and time.time() < deadline:
            # kill while a later checkpoint is being written (a .tmp-step-* dir exists), or after a few saves
            names = os.listdir(out)
            seen.update(names)
            if any(n.startswith(".tmp-step-") for n in names) or len([n for n in names if n.startswith("step-")]) >= 4:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    found = latest_checkpoint(str(out))
    assert found is not None
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(str(out / "latest"))
    step = read_step(str(out / "latest"))
    assert step is not None and step >= 1
    meta, tensors = load_state(str(out / "latest"))
    assert meta["step"] == step and "rng.torch" in tensors
