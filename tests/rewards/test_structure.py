"""`format`: the think-then-answer structure check."""

from __future__ import annotations

import pytest

from er.rewards.structure import Format, has_boxed


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>add them</think> so \\boxed{4}", 1.0),
        ("add them</think> \\boxed{4}", 1.0),  # the prompt often pre-fills <think>
        ("<think>add</think> the answer is 4", 0.0),  # no boxed answer
        ("<think></think> \\boxed{4}", 0.0),  # empty thought
        ("<think>a</think> b </think> \\boxed{4}", 0.0),  # two closing tags
        ("<think>never closes \\boxed{4}", 0.0),  # truncated
        ("<think>x</think> \\boxed{}", 0.0),  # empty box
        ("<think>x</think> \\boxed{\\frac{1}{2}}", 1.0),  # nested braces
    ],
)
def test_boxed_structure(completion, expected):
    assert Format()([{"completion": completion}]) == [expected]


def test_tag_answer_and_required_start():
    f = Format(answer="tag", require_start=True)
    assert f([{"completion": "<think>x</think><answer>4</answer>"}]) == [1.0]
    assert f([{"completion": "x</think><answer>4</answer>"}]) == [0.0]


def test_has_boxed_requires_balanced_braces():
    assert has_boxed("\\boxed{a{b}c}") and not has_boxed("\\boxed{a{b")


def test_bad_answer_form_is_refused():
    with pytest.raises(ValueError):
        Format(answer="json")
