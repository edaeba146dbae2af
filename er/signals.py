"""Writing that a Ctrl-C must not cut in half.

`er sample` writes each finished group as soon as it is done; a SIGINT that lands while a group's
bytes are being written would leave half a record at the end of the output. `atomic_writes()`
holds SIGINT for the few microseconds of a write and delivers it (KeyboardInterrupt, exit 130)
right after, so the output always ends on a record boundary. Outside the main thread (a program
embedding `er`) signal handlers cannot be set, and the block is a plain pass-through.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def atomic_writes() -> Iterator[None]:
    """Defer SIGINT until the block ends; then raise KeyboardInterrupt if one arrived."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt()
