"""`emotion-wheel`: AffectGPT's EW mapping and score, worked numbers of spec §5(e) on the shipped toy tables."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from er.rewards import REWARDS
from er.rewards.emotion import EmotionWheel, Wheels, ew_metric, load_tables, predicted_words

GOLD = "happiness, worried"
PRED = "<think>she smiles but frowns</think><answer>joyful, nervous, angry, excited</answer>"


def test_worked_sample_maps_to_joy_fear_and_scores_0_8():
    w = Wheels()
    assert w.sets(["happiness", "worried"], 0) == {"joy", "fear"}
    assert w.sets(["joyful", "nervous", "angry", "excited"], 0) == {"joy", "fear", "anger"}
    assert w.prec_rec(["happiness", "worried"], ["joyful", "nervous", "angry", "excited"], 0) == (2 / 3, 1.0)
    assert EmotionWheel().score_row({"completion": PRED, "answer": GOLD}) == pytest.approx(0.8, abs=1e-6)


def test_dataset_metric_is_f_of_the_averaged_precision_and_recall():
    golds = [["happiness", "worried"], ["sad", "angry"], ["worried"]]
    preds = [["joyful", "nervous", "angry", "excited"], ["sadly"], ["happy"]]  # prec 2/3, 1, 0; rec 1, .5, 0
    m = ew_metric(golds, preds)
    assert m["P"] == pytest.approx(5 / 9, abs=1e-6) and m["R"] == pytest.approx(0.5, abs=1e-6)
    assert m["F"] == pytest.approx(10 / 19, abs=1e-6)
    assert (m["P"], m["F"]) == pytest.approx((0.5556, 0.5263), abs=5e-5)


def test_level2_clusters_follow_the_case3_rules():
    w = Wheels(level="level2")
    assert w.map("joyful", 0) == "happy"  # level-3 word -> its level-2 parent
    assert w.map("anxious", 0) == "anxious"  # level-2 word -> itself
    assert w.map("sadness", 0) == "disappointed"  # level-1 root -> alphabetically first level-2 child
    assert w.map("excited", 0) is None  # unknown surface form is dropped


def test_prediction_parsing_and_empty_predictions():
    assert predicted_words("<answer> Happy , sad,, </answer>") == ["Happy", "sad"]
    assert predicted_words("<think>x</think>calm") == ["calm"]
    assert EmotionWheel().score_row({"completion": "<answer>excited</answer>", "answer": GOLD}) == 0.0


def test_gold_as_a_list_and_unmappable_gold_is_null():
    assert EmotionWheel().score_row({"completion": "<answer>happy</answer>", "answer": ["glad"]}) == 1.0
    assert EmotionWheel().score_row({"completion": "<answer>happy</answer>", "answer": "excited"}) is None


def test_length_penalty_counts_raw_predicted_words_beyond_k():
    row = {"completion": "<answer>happy, glad, joyful, cheerful, delighted, excited</answer>", "answer": "happy"}
    assert EmotionWheel().score_row(row) == 1.0
    assert EmotionWheel(beta=0.1, K_words=4).score_row(row) == pytest.approx(1.0 - 0.2, abs=1e-9)


def test_user_tables_directory_replaces_the_toy_set(tmp_path):
    (tmp_path / "emotion_wheels.json").write_text(json.dumps({"wheels": {"a": {"pos": {"good": []}},
                                                                         "b": {"pos": {"good": []}, "neg": {"bad": []}}}}))
    (tmp_path / "emotion_synonyms.json").write_text(json.dumps({"synonyms": {"good": ["good"], "bad": ["bad"]}}))
    (tmp_path / "emotion_forms.json").write_text(json.dumps({"forms": {"good": ["good"], "bad": ["bad"]}}))
    r = EmotionWheel(tables=str(tmp_path))
    # gold {good, bad}: wheel a knows only good (G={pos}), wheel b knows both (G={pos, neg}); pred {good}
    assert r.score_row({"completion": "good", "answer": "good, bad"}) == pytest.approx((1.0 + 2 / 3) / 2, abs=1e-9)
    load_tables.cache_clear()


@pytest.mark.parametrize("kwargs", [{"level": "level3"}, {"beta": -1.0}, {"K_words": -1}, {"tables": "/nonexistent"}])
def test_bad_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        EmotionWheel(**kwargs)


def test_shipped_tables_say_they_are_a_toy_reconstruction():
    wheels, synonyms, forms = load_tables()
    assert set(wheels) == {"toy"} and "happy" in synonyms and "happiness" in forms
    assert "reconstructed" in EmotionWheel.__doc__ and REWARDS.get("emotion-wheel").provenance == "reconstructed"


VOCAB = ["happy", "happiness", "joyful", "worried", "nervous", "angry", "excited", "sad", "calm", "glad", "zzz"]


@given(gold=st.lists(st.sampled_from(VOCAB), min_size=1, max_size=5),
       pred=st.lists(st.sampled_from(VOCAB), max_size=8), beta=st.sampled_from([0.0, 0.05]))
def test_property_in_unit_interval_without_penalty_null_only_for_unmappable_gold(gold, pred, beta):
    v = EmotionWheel(beta=beta).score_row({"completion": "<answer>" + ", ".join(pred) + "</answer>", "answer": gold})
    if not Wheels().sets(gold, 0):
        assert v is None
    else:
        assert math.isfinite(v) and v <= 1.0 and v >= -beta * len(pred)
        if beta == 0.0:
            assert v >= 0.0


def test_cli_scores_emotion_sets_and_missing_gold_is_a_located_error(tmp_path):
    from tests.rewards.er_bin import er_score

    rc, out, err = er_score(tmp_path, [{"completion": PRED, "answer": GOLD}], "-r", "emotion-wheel")
    assert rc == 0, err
    assert out[0]["reward"] == pytest.approx(0.8, abs=1e-9)
    rc, _, err = er_score(tmp_path, [{"completion": PRED, "answer": GOLD}, {"completion": PRED}], "-r", "emotion-wheel")
    assert rc == 1 and ":2:" in err and "answer" in err
