"""HAPO history-aware length reward and its persistent state (spec rl-length-methods §3)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time

import numpy as np
import orjson
import pytest

import tests.spec_rl_length as spec
from er.rewards import REWARDS
from tests.helpers import jsonl, parse_jsonl
from tests.rewards.catalog import ER_BIN, group, rewards, score, usage_error

L, C = [900, 1500, 2600, 700], [1, 1, 1, 0]


def hapo(h=None, **kw):
    r = REWARDS.get("hapo")(**kw)
    if h is not None:
        r.history["q"] = [h, 1]
    return r


def read_state(path) -> dict:
    return {e["id"]: e for e in (orjson.loads(line) for line in open(path, "rb") if line.strip())}


def test_worked_example_cosine_h_1200_then_h_becomes_900():
    r = hapo(1200)
    got = r(group(L, C))
    assert got == pytest.approx([c + spec.hapo_cos(1200, n, c) for n, c in zip(L, C)], abs=1e-6)
    assert got == pytest.approx([1.3827, 0.6173, 0.3000, 0.0], abs=5e-5)
    assert r.history["q"][0] == 900


def test_worked_example_trl_advantages():
    got = np.array(hapo(1200)(group(L, C)))
    adv = (got - got.mean()) / (got.std(ddof=1) + 1e-4)
    assert adv == pytest.approx([1.3583, 0.0712, -0.4625, -0.9670], abs=5e-5)


def test_worked_example_linear_variant():
    r = hapo(1200, type_lr="linear", w=1.0)
    assert [r.length_reward(1200, n, bool(c)) for n, c in zip(L, C)] == pytest.approx([0.25, -0.15, -0.7, 0.0], abs=1e-6)


def test_first_encounter_is_plain_correctness_and_sets_h():
    r = hapo()
    assert r(group(L, C)) == [1.0, 1.0, 1.0, 0.0]
    assert r.history["q"] == [900, 3]


def test_rewards_use_the_old_h_and_the_update_comes_after_the_group():
    r = hapo(1000)
    got = r(group([500, 1000], [1, 1]))
    assert got == pytest.approx([1 + math.cos(math.pi / 4), 1.0])
    assert r.history["q"][0] == 500


def test_mean_mode_keeps_a_count_weighted_running_mean():
    r = hapo(mode="mean")
    r(group([900, 1500, 2600, 700], [1, 1, 1, 0]))
    assert r.history["q"] == [pytest.approx(5000 / 3), 3]
    r(group([1000], [1]))
    assert r.history["q"] == [pytest.approx(6000 / 4), 4]


def test_mean_mode_is_the_papers_running_mean_not_the_codes_integer_per_completion_update():
    # Official: HAPO `grpo_trainer.py` combined_reward_func with HistroyTracker(mode="mean") on one
    # prompt, lengths [901, 902] both correct, then [800 correct, 1000 wrong]: h = 901 (an integer
    # tensor), count 4 (one update per completion), rewards [1.1751741073, -0.1717401796], then h = 866.
    # er keeps the paper's mean (documented departure): h = 901.5, n = 2, then 867.67.
    r = hapo(mode="mean")
    r(group([901, 902], [1, 1]))
    assert r.history["q"] == [901.5, 2]
    got = r(group([800, 1000], [1, 0]))
    assert r.history["q"] == [pytest.approx(2603 / 3), 3]
    assert got != pytest.approx([1.1751741073, -0.1717401796], abs=1e-4)
    # only h differs: given the code's h = 901, er's formula gives the code's rewards
    assert [c + r.length_reward(901, n, bool(c)) for n, c in ((800, 1), (1000, 0))] == pytest.approx(
        [1.1751741073, -0.1717401796], abs=1e-9)


def test_mean_mode_departure_is_stated_in_the_list_line():
    line = REWARDS.get("hapo").__doc__.splitlines()[0]
    assert "mode=mean is the paper's" in line and "one update per completion" in line


@pytest.mark.parametrize("type_lr", ["cosine", "linear"])
def test_h_zero_is_no_history_as_the_code(type_lr):
    # Official: HAPO `utils.py` compute_len_reward / compute_len_reward_linear(history_len=0,
    # seq_len=500 or 600, ...) = 0 (the `history_len > 0` guard); combined_reward_func after a correct
    # empty completion (h = 0) gives the group [500 correct, 600 wrong] the rewards [1.0, 0.0] and h stays 0.
    r = hapo(type_lr=type_lr)
    assert r(group([0, 700], [1, 0])) == [1.0, 0.0]
    assert r.history["q"][0] == 0
    assert r(group([500, 600], [1, 0])) == [1.0, 0.0]
    assert r.history["q"][0] == 0


def test_a_state_with_h_zero_round_trips_through_the_cli(tmp_path):
    state = tmp_path / "state.jsonl"
    first = score(tmp_path, group([0, 700], [1, 0]), "-r", "hapo:type_lr=linear", "--state", str(state))
    assert rewards(first, "hapo") == [1.0, 0.0]
    assert read_state(state) == {"q": {"id": "q", "h": 0, "n": 1}}
    # same official values as above: h = 0 is no history, and it stays 0
    second = score(tmp_path, group([500, 600], [1, 0]), "-r", "hapo:type_lr=linear", "--state", str(state))
    assert rewards(second, "hapo") == [1.0, 0.0]
    assert read_state(state)["q"]["h"] == 0


def test_a_negative_h_in_the_state_is_a_data_error(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"id": "a", "h": -1, "n": 1}\n')
    proc = score(tmp_path, group([10], [1]), "-r", "hapo", "--state", str(path))
    assert proc.returncode == 1 and f"{path}:1:" in proc.stderr.decode()


def test_no_correct_row_means_no_update_and_null_verdicts_are_null():
    r = hapo(1200)
    assert r(group([100, 300], [0, None])) == [0.0, None]
    assert r.history["q"] == [1200, 1]


def test_repetition_penalty_is_off_by_default_and_counts_repeated_word_ngrams():
    rows = group([10], [1], completion="a b c a b c a b c")
    assert hapo()(rows) == [1.0]
    # 7 trigrams, 3 distinct: penalty 0.5 * (1 - 3/7)
    assert hapo(rep_penalty=0.5)(rows) == pytest.approx([1 - 0.5 * (4 / 7)])


def test_state_is_saved_atomically_reloaded_and_save_every_k_groups(tmp_path):
    path = tmp_path / "h.jsonl"
    r = hapo(save_every=2)
    r.use_state(str(path))
    r(group([900], [1], gid="a"))
    assert not path.exists()
    r(group([800], [1], gid="b"))
    assert read_state(path) == {"a": {"id": "a", "h": 900, "n": 1}, "b": {"id": "b", "h": 800, "n": 1}}
    r(group([500], [1], gid="a"))
    r.close()
    assert read_state(path)["a"]["h"] == 500
    again = hapo()
    again.use_state(str(path))
    assert again(group([600], [1], gid="a")) == pytest.approx([1 + math.cos(math.pi / 2 * 600 / 500)])
    # no temporaries left; the writer lock's file stays (er.locking)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".h.jsonl.er-writer.lock", "h.jsonl"]


def test_a_corrupt_state_file_is_a_data_error_naming_its_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"id": "a", "h": 5, "n": 1}\n{"id": "b", "h": "x"}\n')
    proc = score(tmp_path, group([10], [1]), "-r", "hapo", "--state", str(path))
    assert proc.returncode == 1 and f"{path}:2:" in proc.stderr.decode()


def test_cli_state_file_carries_history_between_runs(tmp_path):
    state = tmp_path / "state.jsonl"
    first = score(tmp_path, group(L, C), "-r", "hapo", "--state", str(state))
    assert rewards(first, "hapo") == [1.0, 1.0, 1.0, 0.0]
    assert read_state(state) == {"q": {"id": "q", "h": 900, "n": 3}}
    second = score(tmp_path, group([900, 1800], [1, 1]), "-r", "hapo", "--state", str(state))
    assert rewards(second, "hapo") == pytest.approx([1.0, 0.3])


def test_state_survives_kill_9_between_groups_and_a_restart_continues(tmp_path):
    state = tmp_path / "state.jsonl"
    proc = subprocess.Popen([ER_BIN, "score", "-", "--workers", "0", "-r", "hapo", "--state", str(state)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        # groups a and b, then the first row of c (which closes b); c never completes
        proc.stdin.write(jsonl(group([900, 1200], [1, 1], gid="a") + group([400, 700], [0, 1], gid="b")
                               + group([50], [1], gid="c")[:1]))
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if state.exists() and set(read_state(state)) == {"a", "b"}:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the state file never held groups a and b")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = read_state(state)  # every line parses: the file was replaced whole
    assert saved == {"a": {"id": "a", "h": 900, "n": 2}, "b": {"id": "b", "h": 700, "n": 1}}
    restart = score(tmp_path, group([450, 1400], [1, 1], gid="a") + group([50], [1], gid="c"),
                    "-r", "hapo", "--state", str(state))
    assert rewards(restart, "hapo") == pytest.approx([1 + math.cos(math.pi / 4), 1 - 0.7, 1.0])
    assert read_state(state) == {"a": {"id": "a", "h": 450, "n": 4}, "b": {"id": "b", "h": 700, "n": 1},
                                 "c": {"id": "c", "h": 50, "n": 1}}


def test_cli_without_id_is_a_data_error_naming_the_line(tmp_path):
    rows = group([10, 20], [1, 1])
    del rows[1]["id"]
    proc = score(tmp_path, rows, "-r", "hapo")
    assert proc.returncode == 1 and ":2:" in proc.stderr.decode() and "'id'" in proc.stderr.decode()


def test_cli_state_without_a_stateful_reward_is_a_usage_error(tmp_path):
    proc = score(tmp_path, group([10], [1]), "-r", "dler", "--state", str(tmp_path / "s"))
    assert proc.returncode == 2


@pytest.mark.parametrize("spec_,parameter", [
    ("hapo:w=2", "w"), ("hapo:type_lr=square", "type_lr"), ("hapo:mode=max", "mode"),
    ("hapo:save_every=0", "save_every"), ("hapo:floor=-3", "floor"),
])
def test_bad_parameters_are_usage_errors_naming_the_parameter(tmp_path, spec_, parameter):
    usage_error(tmp_path, spec_, parameter)


def test_outputs_parse_back(tmp_path):
    proc = score(tmp_path, group(L, C), "-r", "hapo")
    assert [r["reward"] for r in parse_jsonl(proc.stdout)] == [1.0, 1.0, 1.0, 0.0]
