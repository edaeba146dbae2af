"""`er advantage` as a stage: groups, nulls, dynamic sampling, errors."""

from __future__ import annotations

import pytest

from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


def group(gid, rewards, **kw):
    return [sample_record(gid, i, len(rewards), reward=r, **kw) for i, r in enumerate(rewards)]


def test_null_reward_gets_advantage_0_and_is_counted():
    proc = run_er("advantage", input=jsonl(group("g", [1.0, None, 0.0])), check=True)
    out = parse_jsonl(proc.stdout)
    assert out[1]["advantage"] == 0.0
    assert out[0]["advantage"] == pytest.approx(0.7071, abs=1e-3)  # (1 - 0.5) / std([1, 0]) (unbiased)
    assert "1 null rewards given advantage 0" in proc.stderr.decode()


def test_dynamic_sampling_counts_each_reason():
    rows = group("a", [1.0, 1.0]) + group("b", [0.0, 1.0]) + group("c", [None, None]) + group("d", [0.0, 0.0])
    proc = run_er("advantage", "--dynamic-sampling", input=jsonl(rows), check=True)
    assert [r["group_id"] for r in parse_jsonl(proc.stdout)] == ["b", "b"]
    err = proc.stderr.decode()
    assert "8 in, 2 out, 0 rejected; 6 dropped (all rewards equal (0.0): 2, all rewards equal (1.0): 2, all rewards null: 2)" in err


def test_a_group_split_across_the_stream_is_an_error_with_the_line():
    rows = group("a", [1.0, 0.0])[:1] + group("b", [1.0, 0.0]) + group("a", [1.0, 0.0])[1:]
    for r in rows:
        r.pop("group_size")
    proc = run_er("advantage", input=jsonl(rows))
    assert proc.returncode == 1
    assert "<stdin>:4: group 'a' reappears after its group closed" in proc.stderr.decode()


def test_a_short_group_is_an_error():
    proc = run_er("advantage", input=jsonl(group("a", [1.0, 0.0, 1.0])[:2]))
    assert proc.returncode == 1 and "has 2 rows but group_size 3" in proc.stderr.decode()


def test_missing_reward_with_rejects_keeps_the_group_aside():
    rows = group("a", [1.0, 0.0]) + group("b", [1.0, 0.0])
    del rows[2]["reward"]
    proc = run_er("advantage", "--rejects", "/dev/null", input=jsonl(rows), check=True)
    assert [r["group_id"] for r in parse_jsonl(proc.stdout)] == ["a", "a"]
    assert "4 in, 2 out, 2 rejected" in proc.stderr.decode()


def test_string_reward_is_a_type_error_naming_the_line():
    rows = group("a", [1.0, "high"])
    proc = run_er("advantage", input=jsonl(rows))
    assert proc.returncode == 1 and "<stdin>:2: field 'reward' should be a finite number or null" in proc.stderr.decode()


def test_unknown_estimator_suggests_the_closest_name():
    proc = run_er("advantage", "-e", "gpro", input=b"")
    assert proc.returncode == 2 and "Did you mean 'grpo'" in proc.stderr.decode()


def test_unknown_parameter_lists_the_accepted_ones():
    proc = run_er("advantage", "-e", "grpo:epsilon=1", input=b"")
    assert proc.returncode == 2 and "unknown parameter 'epsilon'; parameters: std, eps" in proc.stderr.decode()


def test_list_shows_every_estimator_with_its_summary():
    out = run_er("advantage", "--list", check=True).stdout.decode()
    for name in ("grpo", "dr-grpo", "rloo", "batch", "none"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name


def test_unknown_fields_pass_through():
    rows = group("a", [1.0, 0.0], meta={"run": 7, "tags": ["x"]})
    out = parse_jsonl(run_er("advantage", input=jsonl(rows), check=True).stdout)
    assert out[0]["meta"] == {"run": 7, "tags": ["x"]}


def test_closed_group_ids_survive_the_merge_into_the_compact_array():
    from er.groups import ClosedIds

    ids = ClosedIds(merge_every=4)
    for i in range(10):
        ids.add(hash(f"g{i}"))
    assert all(hash(f"g{i}") in ids for i in range(10))
    assert hash("g10") not in ids and hash("other") not in ids
