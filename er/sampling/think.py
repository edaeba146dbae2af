"""`think_tokens` of a sample record: completion tokens up to and including the end of the think block.

The end marker (`--think-end`, default `</think>`) is looked up in the completion's token ids: first as
the marker's own ids (one id for models whose tokenizer has `</think>` as a special token, e.g. Qwen3,
DeepSeek-R1 distills), then, because BPE can merge the marker with its neighbours differently in context,
by the shortest prefix of the completion whose decoded text contains the marker (a binary search: the
containment is monotone in the prefix length, so log2(n) decodes). No marker: None (the record gets
`think_tokens: null`). A prefill that already closed the think block (e.g. `--mode short`) means the
completion thought for 0 tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def find_ids(ids: Sequence[int], marker: Sequence[int]) -> int:
    """Index just past the first occurrence of `marker` in `ids`, or -1."""
    m = len(marker)
    if not m:
        return -1
    first = marker[0]
    for i, t in enumerate(ids):
        if t == first and list(ids[i:i + m]) == list(marker):
            return i + m
    return -1


def think_tokens(ids: Sequence[int], marker: str, marker_ids: Sequence[int],
                 decode: Callable[[Sequence[int]], str], prefill: str = "") -> int | None:
    """Completion tokens up to and including the end-of-thinking `marker`; 0 if `prefill` closed it; else None."""
    if not marker:
        return None
    if marker in prefill:
        return 0
    end = find_ids(ids, marker_ids)
    if end >= 0:
        return end
    if marker not in decode(ids):
        return None
    lo, hi = 1, len(ids)  # decode(ids[:hi]) contains the marker; find the smallest such hi
    while lo < hi:
        mid = (lo + hi) // 2
        if marker in decode(ids[:mid]):
            hi = mid
        else:
            lo = mid + 1
    return hi
