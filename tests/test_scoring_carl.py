"""`er score --combine product`: CaRL's rule (arXiv 2504.17838), worked numbers of spec length-control §8(e).

CaRL: r = progress * prod_k f_k with soft factors f_k in [0, 1]. The components here are user rewards
(`module:attr`) reading numbers from the records, as a reward would compute them.
"""

from __future__ import annotations

import pytest

from er.errors import ErError
from er.io import RecordStream
from er.rewards.base import Reward
from er.scoring import Scorer


class Field(Reward):
    """A record's number as a reward component (test helper)."""

    def __init__(self, key: str = "progress"):
        self.key = key
        self.fields = {key: ("number", "null")}

    def score_row(self, record: dict) -> float | None:
        return record[self.key]


HERE = "tests.test_scoring_carl:Field"


def score(records, specs, combine="product"):
    scorer = Scorer(specs, combine=combine, workers=0)
    stream = RecordStream("score", [])
    groups = [[("<test>", i + 1, r)] for i, r in enumerate(records)]
    return [row[2] for g in scorer.run(groups, stream) for row in g], stream


def comfort(k_breached: int) -> float:
    return 1 - 0.5 * k_breached / 6


def speed(over_mps: float) -> float:
    return max(0.0, 1 - over_mps / 2.23)


def test_one_step_with_comfort_and_speed_factors_is_0_1839():
    rec = {"progress": 0.4, "comfort": comfort(2), "speed": speed(1.0)}
    out, _ = score([rec], [f"{HERE}:key=progress", f"{HERE}:key=comfort", f"{HERE}:key=speed"])
    assert comfort(2) == pytest.approx(0.8333, abs=5e-5) and speed(1.0) == pytest.approx(0.5516, abs=5e-5)
    assert out[0]["reward"] == pytest.approx(0.4 * (1 - 1 / 6) * (1 - 1 / 2.23), abs=1e-12)
    assert out[0]["reward"] == pytest.approx(0.1839, abs=5e-5)
    assert set(out[0]["rewards"]) == {HERE, f"{HERE}#2", f"{HERE}#3"}


def test_episode_with_a_ttc_factor_sums_to_1_75():
    steps = [{"progress": p, "ttc": f} for p, f in zip([0.5, 0.6, 0.5, 0.4], [1.0, 1.0, 0.5, 1.0])]
    out, _ = score(steps, [f"{HERE}:key=progress", f"{HERE}:key=ttc"])
    assert [r["reward"] for r in out] == pytest.approx([0.5, 0.6, 0.25, 0.4], abs=1e-12)
    assert sum(r["reward"] for r in out) == pytest.approx(1.75, abs=1e-12)


def test_a_zero_factor_zeroes_the_progress_and_sum_would_not():
    rec = {"progress": 0.5, "lane": 0.0}
    assert score([rec], [f"{HERE}:key=progress", f"{HERE}:key=lane"])[0][0]["reward"] == 0.0
    assert score([rec], [f"{HERE}:key=progress", f"{HERE}:key=lane"], "sum")[0][0]["reward"] == 0.5


def test_weights_are_exponents_and_a_null_factor_makes_the_reward_null():
    rec = {"progress": 0.5, "f": 0.25}
    out, _ = score([rec], [f"{HERE}:key=progress", f"{HERE}:key=f,weight=0.5"])
    assert out[0]["reward"] == pytest.approx(0.5 * 0.25 ** 0.5, abs=1e-12)
    out, stream = score([{"progress": 0.5, "f": None}], [f"{HERE}:key=progress", f"{HERE}:key=f"])
    assert out[0]["reward"] is None and stream.notes["null reward"] == 1


def test_a_row_missing_a_factor_is_a_located_error():
    with pytest.raises(ErError) as exc:
        score([{"progress": 0.5, "f": 1.0}, {"progress": 0.5}], [f"{HERE}:key=progress", f"{HERE}:key=f"])
    assert str(exc.value).startswith("<test>:2:")
