"""Dataset presets turn rows shaped like the real Hub datasets into prompt records."""

from __future__ import annotations

import os

import pytest

from er.data.presets import PRESETS, Preset, get_preset, gpqa_options
from er.errors import UnknownNameError
from er.schema import errors

DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def load(name):
    import datasets

    return datasets.load_dataset("json", data_files=os.path.join(DATA, f"{name}.jsonl"), split="train")


def records(name):
    preset = PRESETS[name]
    return [preset.to_prompt(row, i) for i, row in enumerate(load(name))]


def test_every_preset_is_a_preset_with_the_fields_eval_needs():
    assert set(PRESETS) == {"gsm8k", "math500", "aime24", "amc23", "gpqa"}
    for name, p in PRESETS.items():
        assert isinstance(p, Preset) and p.name == name
        assert p.answer_format in ("number", "latex", "choice")
        assert p.recommended_n >= 1 and p.hf_path and p.default_split
    assert PRESETS["aime24"].recommended_n == 64
    assert PRESETS["math500"].recommended_n == 4
    assert PRESETS["gpqa"].recommended_n == 8


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_rows_become_valid_prompt_records_with_unique_ids(name):
    recs = records(name)
    assert recs
    for r in recs:
        assert errors(r, "prompt") == []
        assert isinstance(r["id"], str) and r["id"].startswith(name + "/")
        assert r["prompt"][0]["role"] == "user" and r["prompt"][0]["content"]
        assert isinstance(r["answer"], str) and r["answer"]
        assert r["dataset"] == name
        assert "level" not in r  # `level` is the TLDR length level, never dataset metadata
    assert len({r["id"] for r in recs}) == len(recs)


def test_gsm8k_gold_is_after_the_hashes_without_thousands_separators():
    recs = records("gsm8k")
    assert [r["answer"] for r in recs] == ["72", "24000", "3"]
    assert recs[0]["id"] == "gsm8k/0"
    assert recs[0]["prompt"][0]["content"].startswith("Natalia sold clips")
    assert recs[0]["prompt"][0]["content"].endswith("within \\boxed{}.")


def test_math500_keeps_latex_answer_and_moves_level_to_difficulty():
    r = records("math500")[0]
    assert r["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert r["id"] == "math500/test/precalculus/807.json"
    assert (r["subject"], r["difficulty"]) == ("Precalculus", 2)
    assert PRESETS["math500"].answer_format == "latex"


def test_aime24_and_amc23_answers_are_integer_strings():
    assert [r["answer"] for r in records("aime24")] == ["204", "113"]
    assert [r["id"] for r in records("aime24")] == ["aime24/60", "aime24/61"]
    assert [r["answer"] for r in records("amc23")] == ["27", "36", "0.75"]


def test_gpqa_shuffles_options_deterministically_and_gold_letter_points_at_correct_answer():
    rows = list(load("gpqa"))
    for row, r in zip(rows, records("gpqa")):
        letter = r["answer"]
        assert letter in "ABCD"
        assert r["choices"]["ABCD".index(letter)] == row["Correct Answer"].strip()
        assert sorted(r["choices"]) == sorted(x.strip() for x in (row["Correct Answer"], row["Incorrect Answer 1"],
                                                                  row["Incorrect Answer 2"], row["Incorrect Answer 3"]))
        assert f"{letter}) {row['Correct Answer'].strip()}" in r["prompt"][0]["content"]
        assert gpqa_options(row) == gpqa_options(dict(row))  # same order every time
    assert records("gpqa")[0]["id"] == "gpqa/rec06pnAkLOr2t2mp"


def test_a_row_missing_a_field_names_it_and_unknown_preset_lists_known():
    from er.errors import ErError

    with pytest.raises(ErError, match="'question'"):
        PRESETS["gsm8k"].to_prompt({"answer": "#### 1"}, 0)
    with pytest.raises(UnknownNameError, match="gsm8k"):
        get_preset("gsm8")
