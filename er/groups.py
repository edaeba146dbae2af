"""Contiguous groups of a record stream (DESIGN.md, Groups).

`er sample` writes the G samples of a prompt contiguously. Stages that need whole groups read them
with `iter_groups`, which never regroups: a `group_id` that reappears after its group closed, or a
group shorter/longer than its `group_size`, is a data error at that line (or, with `--rejects`,
every row of the broken group goes to the rejects file with the reason). Records without a
`group_id` are groups of one; a `group_id` that is not a string or an integer (an object, a list)
is a data error at its line. `er validate` runs these same checks.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from er.errors import ErError
from er.io import RecordStream, Row


class ClosedIds:
    """The 64-bit hashes of every closed group id, in 8 bytes each: a set of recent ones that is
    merged into a sorted int64 array every 65536 groups. A Python set of 1.25M ids (a 10M-row
    stream of G=8) costs ~75 MB; this costs ~10 MB. (Two different ids sharing a 64-bit hash would
    read as a reappearance: about 1e-7 for a million groups.)"""

    def __init__(self, merge_every: int = 1 << 16):
        import numpy as np

        self._np = np
        self._recent: set[int] = set()
        self._sorted = np.empty(0, dtype=np.int64)
        self._merge_every = merge_every

    def add(self, key: int) -> None:
        self._recent.add(key)
        if len(self._recent) >= self._merge_every:
            np = self._np
            merged = np.concatenate([self._sorted, np.fromiter(self._recent, np.int64, len(self._recent))])
            merged.sort()
            self._sorted = merged
            self._recent = set()

    def __contains__(self, key: int) -> bool:
        if key in self._recent:
            return True
        i = int(self._np.searchsorted(self._sorted, key))
        return i < self._sorted.size and int(self._sorted[i]) == key


def iter_groups(rows: Iterable[Row], stream: RecordStream, *, require_group_id: bool = False) -> Iterator[list[Row]]:
    closed = ClosedIds()
    current: list[Row] = []
    current_id = None

    def finish(group: list[Row]) -> list[Row] | None:
        gid = group[0][2].get("group_id")
        closed.add(hash(gid))
        size = group[0][2].get("group_size")
        if size is not None and len(group) != size:
            reject_group(stream, group, ErError(f"group {gid!r} has {len(group)} rows but group_size {size} "
                                                "(groups must be whole and contiguous)"))
            return None
        return group

    for row in rows:
        record = row[2]
        gid = record.get("group_id")
        if current and gid == current_id:
            current.append(row)
            continue
        if current:  # a different group (or none) begins: the current one is closed
            done = finish(current)
            current = []
            if done:
                yield done
        current_id = gid
        if gid is not None and type(gid) not in (str, int):
            stream.reject(row[0], row[1], f"field 'group_id' should be a string or integer, got {type(gid).__name__}",
                          record)
            current_id = None
            continue
        if gid is None:
            if require_group_id:
                stream.reject(row[0], row[1], "missing field 'group_id' (this stage needs whole groups)", record)
            else:
                yield [row]
            continue
        if hash(gid) in closed:
            stream.reject(row[0], row[1], f"group {gid!r} reappears after its group closed "
                          "(groups must be contiguous; sort by group_id first)", record)
            current_id = None
            continue
        current = [row]
    if current:
        done = finish(current)
        if done:
            yield done


def reject_group(stream: RecordStream, group: list[Row], exc: ErError) -> None:
    for row in group:
        stream.reject_error(row, exc)
