"""User rewards (`--reward module:Attr`) under the same rules as the built-in ones.

A plug-in is code `er` did not write: it may block, raise, or return anything. `PluginReward` wraps
the instance that `er.params.bind_params` built and calls it in a worker process of `er.pool`
(the pool math-verify runs in), so that

- every call has a hard deadline of `timeout` seconds per row in it (`er score --timeout`, the
  per-row deadline of answer checking): a plug-in still busy then is killed (SIGKILL, wherever it
  is, C code included) and its worker replaced;
- an exception, a result that is not a list of one number (or null) per row, a bool or a string, or
  a number no float holds (10^400) is an `ErError` naming the reward: `er score` turns it into one
  line at the row (exit 1), or, with `--rejects`, a reject of the rows it refuses (row-level
  plug-ins are probed row by row, as built-ins are).

What the worker changes: the plug-in runs in a forked copy of the process, so it scores copies of
the rows (changes it makes to them are not kept; it returns values only), and state it keeps lives
in the worker, which starts from the parent's copy again after a timeout.
"""

from __future__ import annotations

import math
import traceback
from typing import Any

from er.errors import ErError

# what the scorer reads from a reward; a batch-level plug-in's `score_batch` and a stateful one's
# `use_state` are passed through and run in this process (no deadline there: not covered here)
_PASSED = ("level", "fields", "needs_correct", "verifies_correct", "judges_correct", "batch_groups",
           "score_batch", "use_state")


def _call(reward: Any):
    """The worker's function: one ("ok", values) or ("error", why) per call, never an exception
    (that would end the worker) and never an object that does not pickle back."""

    def call(records: list[dict]):
        try:
            value = reward(records)
        except ErError as exc:  # a plug-in may refuse a row as built-ins do
            yield ("error", exc.message)
            return
        except BaseException as exc:  # noqa: BLE001 - any failure of code er did not write
            frame = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" (at {frame[0].filename}:{frame[0].lineno})" if frame else ""
            yield ("error", f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}{where}")
            return
        yield _checked(value, len(records))

    return call


def _checked(value: Any, n: int) -> tuple[str, Any]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
        return "error", f"returned {got} for {n} row(s); it must return a list of one number (or null) per row"
    out = []
    for v in value:
        try:
            out.append(_number(v))
        except (TypeError, ValueError):
            return "error", f"returned {type(v).__name__} {str(v)[:60]!r}, not a number or null"
        except OverflowError:
            return "error", f"returned an integer of {len(str(v))} digits, beyond any float"
    return "ok", out


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) and type(value).__module__ != "numpy":
        raise TypeError(type(value).__name__)
    number = float(value)  # OverflowError for an integer no float holds
    return number if math.isfinite(number) else None


class PluginReward:
    """A user reward called in a worker process with a per-row deadline and checked results."""

    def __init__(self, reward: Any, name: str, timeout: float):
        self.reward, self.name, self.timeout = reward, name, timeout
        for attr in _PASSED:
            if hasattr(reward, attr):
                setattr(self, attr, getattr(reward, attr))
        self._pool = None

    def __call__(self, records: list[dict]) -> list[float | None]:
        from er.pool import Failure, OrderedPool

        if self._pool is None:
            self._pool = OrderedPool(_call(self.reward), workers=1, item_timeout=self.timeout,
                                     resume=lambda payload, k: payload[k:], size=lambda payload: 1)
            self._pool.__enter__()
        self._pool.item_timeout = self.timeout * max(1, len(records))
        [(_, [result])] = list(self._pool.imap([(0, records)]))
        what = f"reward {self.name}"
        if isinstance(result, Failure):
            if result.reason == "timeout":
                raise ErError(f"{what}: no result within {self._pool.item_timeout:g} s "
                              f"(--timeout {self.timeout:g} s per row); killed")
            raise ErError(f"{what}: its worker process died ({result.reason})")
        status, value = result
        if status == "error":
            raise ErError(value if value.startswith(what) else f"{what}: {value}")
        return value

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        close = getattr(self.reward, "close", None)
        if callable(close):
            close()
