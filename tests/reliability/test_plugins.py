"""Promise: a plug-in reward (`--reward module:Attr`) is held to the built-ins' rules: the per-row
deadline (`--timeout`) kills one that blocks, and one that raises or returns the wrong count, a
string or 10^400 is one line naming the reward and the row (exit 1), or a reject with --rejects."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import jsonl, run_er, sample_record

PLUGIN = '''
import time

class Reward:
    """A user's reward that misbehaves as told."""

    def __init__(self, how: str = "ok"):
        self.how = how

    def __call__(self, group):
        if self.how == "block" and any(r["id"] == "bad" for r in group):
            time.sleep(3600)
        if self.how == "raise" and any(r["id"] == "bad" for r in group):
            raise KeyError("boom")
        if self.how == "count":
            return [1.0] * (len(group) + 1)
        if self.how == "string":
            return ["1.0" if r["id"] == "bad" else 1.0 for r in group]
        if self.how == "huge":
            return [10**400 if r["id"] == "bad" else 1.0 for r in group]
        return [0.5] * len(group)
'''

ROWS = [sample_record("good", 0, 1), {**sample_record("bad", 0, 1), "id": "bad"}, sample_record("also", 0, 1)]


@pytest.fixture
def env(tmp_path):
    (tmp_path / "my_reward.py").write_text(PLUGIN)
    return {"PYTHONPATH": str(tmp_path)}


def score(env, how: str, *flags: str):
    return run_er("score", "--reward", f"my_reward:Reward:how={how}", "--timeout", "1", *flags,
                  input=jsonl(ROWS), env=env, timeout=60)


@pytest.mark.parametrize("how, words", [
    ("block", ["no result within 1 s", "killed"]),
    ("raise", ["raised KeyError: 'boom'"]),
    ("count", ["returned 2 values for 1 row(s)"]),
    ("string", ["returned str '1.0'"]),
    ("huge", ["integer of 401 digits"]),
])
def test_a_misbehaving_plugin_is_one_line_naming_the_reward_and_the_row(env, how, words):
    start = time.monotonic()
    proc = score(env, how)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    line = "1" if how == "count" else "2"  # a wrong count is wrong for every row: the first is named
    assert err.startswith(f"er score: <stdin>:{line}: reward my_reward:Reward"), err
    for w in words:
        assert w in err, err
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("how", ["block", "raise", "string", "huge"])
def test_with_rejects_the_bad_row_is_kept_aside_and_the_others_scored(env, tmp_path, how):
    proc = score(env, how, "--rejects", str(tmp_path / "rej.jsonl"))
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == ["good", "also"]
    rejected = [json.loads(line) for line in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert [(r["line"], r["record"]["id"]) for r in rejected] == [(2, "bad")]
    assert "reward my_reward:Reward" in rejected[0]["error"]


def test_a_plugin_that_behaves_scores_as_before(env):
    proc = score(env, "ok")
    assert proc.returncode == 0, proc.stderr.decode()
    assert [json.loads(line)["reward"] for line in proc.stdout.splitlines()] == [0.5, 0.5, 0.5]
