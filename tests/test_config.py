"""`--config FILE` on every command (YAML, TOML, JSON; the command line wins; unknown keys refused), and
`er update` records the resolved configuration beside each checkpoint's trainer state."""

from __future__ import annotations

import json

import pytest

from er.cli import COMMANDS
from tests.helpers import jsonl, parse_jsonl, run_er

ROW = {"completion": "x y z", "completion_tokens": 3, "group_id": "a", "sample_idx": 0, "group_size": 1, "prompt": "p"}


@pytest.mark.parametrize("name, text", [
    ("c.yaml", "reward: [length]\nworkers: 0\n"),
    ("c.toml", 'reward = ["length"]\nworkers = 0\n'),
    ("c.json", '{"reward": ["length"], "workers": 0}'),
])
def test_a_config_file_gives_the_flags(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    (row,) = parse_jsonl(run_er("score", "--config", str(path), "-q", input=jsonl([ROW]), check=True).stdout)
    assert row["rewards"] == {"length": 3.0}


def test_the_command_line_wins_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("reward: [length]\nworkers: 0\n")
    out = run_er("score", "--config", str(path), "-r", "length:scale=2", "-q", input=jsonl([ROW]), check=True)
    assert parse_jsonl(out.stdout)[0]["rewards"] == {"length": 6.0}


def test_an_unknown_key_is_a_usage_error_naming_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("reward: [length]\nrewrad: [math]\n")
    proc = run_er("score", "--config", str(path), input=jsonl([ROW]))
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith(f"er score: --config {path}: unknown key 'rewrad' for er score")


def test_a_file_that_does_not_parse_or_is_not_a_mapping_is_a_usage_error(tmp_path):
    for text in ("reward: [length\n", "- a\n- b\n"):
        path = tmp_path / "c.yaml"
        path.write_text(text)
        proc = run_er("score", "--config", str(path), input=b"")
        assert proc.returncode == 2 and f"--config {path}" in proc.stderr.decode(), proc.stderr


@pytest.mark.parametrize("command", [name for name, _ in COMMANDS if name != "schema"])  # schema: no flags
def test_every_command_takes_config(command):
    assert "--config FILE" in run_er(command, "--help", check=True).stdout.decode()


def test_update_records_the_resolved_configuration_and_it_repeats_the_run(tiny_model, tmp_path):
    rows = [{"id": f"p{g}", "prompt": f"{g} + 1 =", "group_id": f"g{g}", "group_size": 2, "sample_idx": i,
             "completion": f" {g + i}", "reward": float(i), "advantage": 1.0 if i else -1.0} for g in range(2) for i in range(2)]
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(rows))
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"model: {tiny_model}\nlr: 0.001\nbatch-size: 4\nseed: 3\n")
    run_er("update", "--config", str(cfg), "--out", str(tmp_path / "a"), "--weight-decay", "0", str(src), "-q",
           check=True)
    recorded = tmp_path / "a" / "trainer-state" / "step-1" / "config.json"
    values = json.loads(recorded.read_text())
    assert values["lr"] == 0.001 and values["batch-size"] == 4 and values["seed"] == 3
    assert values["weight-decay"] == 0 and values["model"] == tiny_model and values["loss"] == "grpo"
    assert "config" not in values and "debug" not in values
    run_er("update", "--config", str(recorded), "--out", str(tmp_path / "b"), str(src), "-q", check=True)
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "step-1" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "step-1" / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)  # the recorded configuration repeats the run exactly
