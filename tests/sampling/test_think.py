"""think_tokens: completion tokens up to and including the end-of-thinking marker (er.sampling.think)."""

from __future__ import annotations

from er.sampling.think import find_ids, think_tokens

# a toy vocabulary: id -> text; "</think>" is one special token (7) but can also be spelled "</" "think>"
VOCAB = {1: "a", 2: "b", 3: " ", 4: "</", 5: "think>", 6: "x", 7: "</think>"}


def decode(ids):
    return "".join(VOCAB[i] for i in ids)


def test_counts_through_the_marker_when_it_is_one_token():
    assert think_tokens([1, 2, 7, 6, 6], "</think>", [7], decode) == 3


def test_counts_through_the_marker_when_bpe_spells_it_in_several_tokens():
    # the marker's own ids are [7], but the model wrote "</" "think>": found by decoding prefixes
    assert think_tokens([1, 1, 1, 4, 5, 6], "</think>", [7], decode) == 5


def test_multi_token_marker_ids_are_matched_in_order():
    assert find_ids([1, 4, 1, 4, 5, 6], [4, 5]) == 5
    assert find_ids([1, 2], [4, 5]) == -1
    assert think_tokens([4, 1, 4, 5], "</think>", [4, 5], decode) == 4


def test_no_marker_is_none_and_a_closed_prefill_is_zero():
    assert think_tokens([1, 2, 3], "</think>", [7], decode) is None
    assert think_tokens([1, 2, 3], "", [], decode) is None
    assert think_tokens([1, 2, 3], "</think>", [7], decode, prefill="<think>\n\n</think>\n\n") == 0


def test_another_marker():
    assert think_tokens([1, 1, 6, 2, 6], "x", [6], decode) == 3
