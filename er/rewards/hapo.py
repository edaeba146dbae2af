"""`hapo`: History-Aware Policy Optimization (Huang, Zhang, Cardie; arXiv 2505.11225; code HCY123902/HAPO).

Per problem q (the record's `id`) a history h_q is kept: the minimum length of all correct responses
seen for q so far (`mode=min`, default) or their count-weighted running mean (`mode=mean`); null at
first. Lengths are `completion_tokens`. As in the code (guard `history_len > 0` in `utils.py`), h_q = 0
(a correct empty completion) counts as no history: r_len = 0, for both length rewards; under `min`
it then stays 0, so the problem keeps plain correctness rewards, as the code's table does.

Cosine length reward (`type_lr=cosine`, default; code `utils.py`):

    u = cos(pi/2 * l / h_q) if l < 2 h_q else -1
    r_len = 0 if h_q is null or 0;  max(floor, u) if correct (floor = -0.7);  min(0, u) if wrong

Linear variant (`type_lr=linear`, tolerance tau = 0.1):
    correct: 1 - l/h if l < h; 0 if l < (1+tau) h; else max(floor, -(l - (1+tau) h) / h)
    wrong:   0 if l < (1+tau) h; else max(-1, -(l - (1+tau) h) / h)

Combined (code `grpo_trainer.py`): R = 1[c] + w * r_len + r_rep, w = 1 (must lie in [0, 1], so any
correct row beats any wrong one). r_rep is the optional n-gram repetition penalty, off by default
(`rep_penalty=0`, n = 3); here it is -rep_penalty * (1 - distinct n-grams / n-grams) over whitespace
words of the completion. Departure (only with rep_penalty > 0): the code's
`compute_repetition_penalty_reward` works on tokenizer ids and averages a per-token penalty over the
positions covered by a repeated n-gram ("a b c a b c a b c": code 6/9, here 4/7 of rep_penalty).

History update (after the group's rewards are computed with the old h_q):
    min:  h_q <- min(h_q, min{l_i : c_i = 1})           (null = +inf)
    mean: h_q <- n_new/(n_old+n_new) * mean_new + n_old/(n_old+n_new) * h_q;  n_old += n_new
No correct row -> no update. Rows with a null verdict get a null reward and do not update.
`mode=mean` is the paper's formula, not the code's (a departure): the code stores h in an integer
tensor (h truncated towards 0) and runs the update once per completion of the problem rather than
once per batch, so n grows G times too fast and the G-1 repeated updates pull h towards mean_new.
E.g. lengths [901, 902] (both correct) then [800 correct, 1000 wrong]: here h = 901.5, n = 2, then
h = 867.67; the code has h = 901, n = 4, rewards [1.1752, -0.1717], then h = 866.

State file (`er score --reward hapo --state FILE`): JSONL, one line per problem
`{"id": ..., "h": number >= 0 or null, "n": count of correct lengths seen}`, loaded at start (missing file
= empty history), rewritten atomically (temp file in the same directory, fsync, os.replace) after
every `save_every` groups (default 1) and at the end of the stream, so a crash between groups
leaves the last complete state and a restart continues from it. Without --state the history lives
only for the one stream. One process at a time uses a state file: a second `er score --state FILE`
while one runs is refused (exit 2) naming the holder (er.locking; the lock dies with its process).

Departures from the code: the code updates h after each training step (batch of prompts) and
gathers per-rank tables by elementwise min; here the update is applied after each group, so a
problem that appears in two groups of the same step sees its first group's update (identical when
each problem appears once per step, the code's setup). The code's 100000 sentinel is stored as null.
Validation-set entries are not kept separately.

Worked (spec §3e, h = 1200, w = 1): l = [900, 1500, 2600, 700], c = [1, 1, 1, 0] ->
r_len = [0.3827, -0.3827, -0.7, 0], R = [1.3827, 0.6173, 0.3, 0]; then h = 900.
Linear: r_len = [0.25, -0.15, -0.7, 0]. First encounter: R = [1, 1, 1, 0], h becomes 900.
"""

from __future__ import annotations

import math
import os
from typing import Any

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.base import Reward, tokens
from er.rewards.dler import LENGTH_FIELDS, finished_correct


def repetition(text: str, n: int) -> float:
    """1 - distinct/total word n-grams (0 for text shorter than n words)."""
    words = text.split()
    if len(words) < n:
        return 0.0
    grams = list(zip(*(words[i:] for i in range(n))))
    return 1.0 - len(set(grams)) / len(grams)


@REWARDS.register("hapo")
class Hapo(Reward):
    """HAPO history-aware cosine length reward vs the problem's shortest correct length so far (state: --state FILE); departures: h updated per group (code: per step), mode=mean is the paper's (code: integer h, one update per completion), rep_penalty on distinct word n-grams (code: token positions).

    R = 1[c] + w r_len, r_len = max(-0.7, u) if correct, min(0, u) if wrong, u = cos(pi/2 l/h) if l < 2h
    else -1, 0 while h is null or 0 (as the code); h = min (or mean) correct length of the problem so far.
    arXiv 2505.11225. Defaults from the code: w 1, cosine, min, floor -0.7, repetition penalty off.
    """

    needs_correct = True
    fields = {**LENGTH_FIELDS, "id": ("string", "integer")}
    provenance = "code"

    def __init__(self, w: float = 1.0, type_lr: str = "cosine", mode: str = "min", tolerance: float = 0.1,
                 floor: float = -0.7, rep_penalty: float = 0.0, rep_ngram: int = 3, save_every: int = 1):
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"w must be in [0, 1], not {w}")
        if type_lr not in ("cosine", "linear"):
            raise ValueError(f"type_lr must be cosine or linear, not {type_lr!r}")
        if mode not in ("min", "mean"):
            raise ValueError(f"mode must be min or mean, not {mode!r}")
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, not {tolerance}")
        if not -1.0 <= floor <= 0.0:
            raise ValueError(f"floor must be in [-1, 0], not {floor}")
        if rep_penalty < 0:
            raise ValueError(f"rep_penalty must be >= 0, not {rep_penalty}")
        if rep_ngram < 1:
            raise ValueError(f"rep_ngram must be >= 1, not {rep_ngram}")
        if save_every < 1:
            raise ValueError(f"save_every must be >= 1, not {save_every}")
        self.w, self.type_lr, self.mode, self.tolerance, self.floor = w, type_lr, mode, tolerance, floor
        self.rep_penalty, self.rep_ngram, self.save_every = rep_penalty, rep_ngram, save_every
        self.history: dict[Any, list] = {}  # id -> [h or None, n]
        self.path: str | None = None
        self._unsaved = 0

    # ---- the reward ------------------------------------------------------------------------------
    def length_reward(self, h: float | None, n: int, correct: bool) -> float:
        if h is None or h <= 0:  # the code's `history_len > 0` guard: h = 0 is no history
            return 0.0
        if self.type_lr == "cosine":
            u = math.cos(math.pi / 2 * n / h) if n < 2 * h else -1.0
            return max(self.floor, u) if correct else min(0.0, u)
        edge = (1.0 + self.tolerance) * h
        if correct:
            if n < h:
                return 1.0 - n / h
            return 0.0 if n < edge else max(self.floor, -(n - edge) / h)
        return 0.0 if n < edge else max(-1.0, -(n - edge) / h)

    def __call__(self, group: list[dict]) -> list[float | None]:
        out: list[float | None] = []
        new: dict[Any, list[int]] = {}
        for r in group:
            c = finished_correct(r)
            if c is None:
                out.append(None)
                continue
            n = tokens(r)
            h = self.history.get(r["id"], [None, 0])[0]
            value = float(c) + self.w * self.length_reward(h, n, c)
            if self.rep_penalty:
                value -= self.rep_penalty * repetition(r["completion"], self.rep_ngram)
            out.append(value)
            if c:
                new.setdefault(r["id"], []).append(n)
        for key, lengths in new.items():
            self.update(key, lengths)
        if new:
            self._unsaved += 1
            if self.path is not None and self._unsaved >= self.save_every:
                self.save()
        return out

    def update(self, key: Any, lengths: list[int]) -> None:
        h, n_old = self.history.get(key, [None, 0])
        n_new = len(lengths)
        if self.mode == "min":
            h = min(lengths) if h is None else min(h, min(lengths))
        else:
            mean_new = sum(lengths) / n_new
            h = mean_new if h is None else (n_new * mean_new + n_old * h) / (n_old + n_new)
        self.history[key] = [h, n_old + n_new]

    # ---- state -----------------------------------------------------------------------------------
    def use_state(self, path: str) -> None:
        """Load the history from `path` (JSONL; a missing file is an empty history) and save there."""
        import orjson

        from er.locking import WriterLock

        # one writer per state file: a second run would rewrite the file from its own history
        self._lock = WriterLock(path, flag="--state", what="this state file", command="er score")
        self.path = path
        self.history = {}
        if not os.path.exists(path):
            return
        with open(path, "rb") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = orjson.loads(line)
                    key, h, n = entry["id"], entry["h"], entry.get("n", 0)
                    if not isinstance(key, (str, int)) or isinstance(key, bool):
                        raise ValueError("id")
                    if h is not None and (not isinstance(h, (int, float)) or isinstance(h, bool) or h < 0):
                        raise ValueError("h")
                    if not isinstance(n, int) or n < 0:
                        raise ValueError("n")
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise ErError(f"bad HAPO state entry ({exc}); expected "
                                  '{"id": ..., "h": number >= 0 or null, "n": count}', path, line_no) from None
                self.history[key] = [h, n]

    def save(self) -> None:
        """Write the whole history atomically (er.io.OutputFile: temp file beside it, fsync, os.replace).

        The file gets the mode of the file it replaces, else the umask's (0644 under umask 022); a
        write that fails (a full disk) is one line and leaves the previous state file as it was.
        """
        import orjson

        from er.io import OutputFile

        if self.path is None:
            return
        out = OutputFile(self.path, flag="--state")
        try:
            for key, (h, n) in self.history.items():
                out.write(orjson.dumps({"id": key, "h": h, "n": n}, option=orjson.OPT_APPEND_NEWLINE))
            out.commit(sync=True)
        except BaseException:
            out.discard()
            raise
        self._unsaved = 0

    def close(self) -> None:
        try:
            if self._unsaved:
                self.save()
        finally:
            lock, self._lock = getattr(self, "_lock", None), None
            if lock is not None:
                lock.release()
