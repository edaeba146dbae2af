"""Session fixtures shared by every test area."""

from __future__ import annotations

import os
import signal

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# pytest-xdist runs N workers side by side; torch's default of one thread per core in each of them
# oversubscribes the CPUs, and OpenMP threads spinning for a busy core made a forward pass 5x slower.
# Set before torch is imported, so the workers (and the commands they start) share the cores instead.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))
# A test run started in the background by a shell without job control (`make test &`, nohup) inherits
# SIGINT ignored, and so would every command the tests start: the commands rightly keep an inherited
# SIG_IGN, so the Ctrl-C tests could not deliver one. The tests need a terminal's SIGINT: restore it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny Qwen2 model + tokenizer built locally once per test session."""
    from er.tiny import build_tiny

    return build_tiny(str(tmp_path_factory.mktemp("tiny") / "model"))
