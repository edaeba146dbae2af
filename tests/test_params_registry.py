"""`NAME[:key=val,...]` specs, typed binding, did-you-mean, dotted user plug-ins."""

from __future__ import annotations

import pytest

from er.errors import UnknownNameError, UsageError
from er.params import bind_params, parse_spec
from er.registry import Registry
from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


def test_parse_spec_forms():
    assert parse_spec("dler") == ("dler", {})
    assert parse_spec("dler:L_T=4000,kappa=0.1") == ("dler", {"L_T": "4000", "kappa": "0.1"})
    assert parse_spec("my.mod:Fn") == ("my.mod:Fn", {})
    assert parse_spec("my.mod:Fn:a=1") == ("my.mod:Fn", {"a": "1"})
    assert parse_spec("mod:Fn:a=1") == ("mod:Fn", {"a": "1"})
    with pytest.raises(UsageError):
        parse_spec("my.mod:Fn:a")


def test_a_parameter_without_value_is_a_usage_error_naming_the_reward():
    proc = run_er("score", "-r", "length:unit", input=b"")
    assert proc.returncode == 2 and "parameters are key=value" in proc.stderr.decode()


class Thing:
    def __init__(self, n: int = 1, x: float = 0.5, on: bool = False, name: str = "a", sizes: tuple[int, ...] = (1,)):
        if n < 0:
            raise ValueError("n must be >= 0")
        self.n, self.x, self.on, self.name, self.sizes = n, x, on, name, sizes


def test_bind_converts_types_from_annotations():
    t = bind_params(Thing, {"n": "3", "x": "1e-3", "on": "true", "sizes": "2/4"}, "--thing t")
    assert (t.n, t.x, t.on, t.name, t.sizes) == (3, 0.001, True, "a", (2, 4))


def test_bind_errors_name_the_parameter():
    with pytest.raises(UsageError, match="--thing t: unknown parameter 'm'; parameters: n, x, on, name, sizes"):
        bind_params(Thing, {"m": "1"}, "--thing t")
    with pytest.raises(UsageError, match="--thing t: n: expected int, got 'x'"):
        bind_params(Thing, {"n": "x"}, "--thing t")
    with pytest.raises(UsageError, match="--thing t: n must be >= 0"):
        bind_params(Thing, {"n": "-1"}, "--thing t")


def test_registry_suggests_close_names():
    reg = Registry("widget")
    reg.register("alpha")(Thing)
    with pytest.raises(UnknownNameError, match="Did you mean 'alpha'"):
        reg.get("alpah")
    assert reg.names() == ["alpha"]


def test_a_dotted_user_reward_is_loaded_only_when_named(tmp_path):
    (tmp_path / "my_rewards.py").write_text(
        "class Shout:\n"
        "    level = 'row'\n"
        "    def __init__(self, bonus: float = 1.0):\n"
        "        self.bonus = bonus\n"
        "    def __call__(self, group):\n"
        "        return [self.bonus * r['completion'].count('!') for r in group]\n"
        "    def close(self):\n"
        "        pass\n")
    rows = [sample_record("a", 0, 1, completion="hi!!")]
    proc = run_er("score", "-r", "my_rewards:Shout:bonus=2", input=jsonl(rows), env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert parse_jsonl(proc.stdout)[0]["rewards"] == {"my_rewards:Shout": 4.0}
    proc = run_er("score", "-r", "nosuchmodule_xyz:Fn", input=b"")
    assert proc.returncode == 2 and "cannot import reward module 'nosuchmodule_xyz'" in proc.stderr.decode()
