"""An ordered process pool with a hard deadline for every item, for CPU-bound scoring.

Why not `concurrent.futures` or threads: math-verify (like any sympy-based checker) can hang inside C
code where no signal reaches it, and `signal.alarm` does not work in threads at all; TRL and verl
silently score such rows 0. Here each worker is a process that streams back one result per item; if
an item is not answered within `item_timeout` seconds, the worker is killed (SIGKILL), the item gets a
`Failure("timeout")`, and the rest of its task is resumed on a fresh worker. A worker that dies gets
`Failure("worker died")` for the item it was on. Results come back in task order.

    pool = OrderedPool(verify_items, workers=2, item_timeout=10, resume=lambda p, k: (p[0], p[1][k:]))
    for task_key, results in pool.imap((key, payload) for ...): ...
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator


@dataclass(frozen=True)
class Failure:
    """An item the pool could not finish; the caller turns it into a null and counts the reason."""

    reason: str


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies, even mid-row (no orphans, ever)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends an idle worker
        pass


def _worker_main(conn: Connection, fn: Callable[[Any], Iterable[Any]], parent: int) -> None:
    # The parent owns the terminal: a Ctrl-C goes to the whole process group, and the parent decides.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A SIGTERM to the whole group (e.g. a pipe's trap) ends a worker quietly; it holds no state.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the request above took effect
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, payload = message
        for result in fn(payload):
            conn.send((task_id, result))
        conn.send((task_id, _DONE))


_DONE = "__er_pool_done__"


class _Worker:
    def __init__(self, ctx, fn):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, fn, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.task: list | None = None  # [task_id, payload, results so far, len(results) at dispatch]
        self.deadline = 0.0

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class OrderedPool:
    def __init__(
        self,
        fn: Callable[[Any], Iterable[Any]],
        workers: int,
        item_timeout: float,
        resume: Callable[[Any, int], Any],
        size: Callable[[Any], int],
        window: int | None = None,
    ):
        self.fn = fn
        self.n_workers = max(1, workers)
        self.item_timeout = item_timeout
        self.resume = resume
        self.size = size
        self.window = window or self.n_workers * 4
        self._ctx = mp.get_context("fork")
        self._workers: list[_Worker] = []
        self.restarts = 0

    def __enter__(self) -> "OrderedPool":
        self._workers = [_Worker(self._ctx, self.fn) for _ in range(self.n_workers)]
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in self._workers:
            w.process.join(1)
            w.kill()
        self._workers = []

    def _dispatch(self, worker: _Worker, task_id: int, payload: Any, done: list) -> None:
        worker.task = [task_id, payload, done, len(done)]
        worker.deadline = time.monotonic() + self.item_timeout
        worker.conn.send((task_id, payload))

    def _replace(self, index: int) -> _Worker:
        self._workers[index].kill()
        self._workers[index] = _Worker(self._ctx, self.fn)
        self.restarts += 1
        return self._workers[index]

    def imap(self, tasks: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, list]]:
        if not self._workers:
            self.__enter__()
        source = iter(tasks)
        keys: dict[int, Any] = {}
        finished: dict[int, list] = {}
        pending: deque[tuple[int, Any, list]] = deque()  # (task_id, payload, results so far)
        next_id = next_out = 0
        exhausted = False
        while True:
            # Keep the window full.
            while not exhausted and next_id - next_out < self.window:
                try:
                    key, payload = next(source)
                except StopIteration:
                    exhausted = True
                    break
                keys[next_id] = key
                if self.size(payload) == 0:
                    finished[next_id] = []
                else:
                    pending.append((next_id, payload, []))
                next_id += 1
            for w in self._workers:
                if w.task is None and pending:
                    self._dispatch(w, *pending.popleft())
            while next_out in finished:
                yield keys.pop(next_out), finished.pop(next_out)
                next_out += 1
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                if exhausted and not pending:
                    return
                continue
            now = time.monotonic()
            ready = wait([w.conn for w in busy], timeout=max(0.0, min(w.deadline for w in busy) - now))
            now = time.monotonic()
            for i, w in enumerate(self._workers):
                if w.task is None:
                    continue
                task_id, payload, done, base = w.task
                if w.conn in ready:
                    try:
                        while w.conn.poll():
                            tid, result = w.conn.recv()
                            if result == _DONE:
                                finished[task_id] = done
                                w.task = None
                                break
                            done.append(result)
                            w.deadline = time.monotonic() + self.item_timeout
                        continue
                    except (EOFError, OSError):
                        failure = Failure("worker died")
                elif now >= w.deadline:
                    failure = Failure("timeout")
                else:
                    continue
                # The item in progress failed: record it, resume the rest on a fresh worker.
                done.append(failure)
                w.task = None
                self._replace(i)
                done_here = len(done) - base
                if done_here >= self.size(payload):
                    finished[task_id] = done
                else:
                    pending.appendleft((task_id, self.resume(payload, done_here), done))


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
