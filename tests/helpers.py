"""Test helpers: run the real `er` command line as a subprocess, as a user's shell would; build records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
ER = [sys.executable, "-m", "er.cli"]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_er(*args: str, input: bytes | str | None = None, check: bool = False, env: dict | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess:
    if isinstance(input, str):
        input = input.encode()
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([*ER, *args], input=input, capture_output=True, timeout=timeout, env=full_env,
                          cwd=os.environ.get("ER_TEST_CWD", "/"))
    if check and proc.returncode != 0:
        raise AssertionError(f"er {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


def jsonl(records) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def parse_jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def sample_record(group: str, idx: int, size: int, **fields) -> dict:
    record = {
        "id": group, "prompt": f"question {group}", "answer": "4", "group_id": group, "sample_idx": idx,
        "group_size": size, "completion": "<think>2+2</think> \\boxed{4}", "completion_tokens": 10,
        "prompt_tokens": 5, "finish_reason": "stop", "policy": {"model": "tiny", "step": 0},
        "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 64, "seed": 0},
    }
    record.update(fields)
    return record


class ErServe:
    """`er serve` run as a user runs it, for the tests that need a real server: `url` once it printed it."""

    def __init__(self, model: str, *args: str, log_path: str, timeout: float = 400, env: dict | None = None):
        import select
        import socket
        import time

        with socket.socket() as s:  # a free port, as near to the start as possible
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([*ER, "serve", "-m", model, "--port", str(self.port), *args],
                                     stdout=subprocess.PIPE, stderr=self._log, env={**os.environ, **(env or {})},
                                     cwd=os.environ.get("ER_TEST_CWD", "/"))
        deadline, line = time.monotonic() + timeout, b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                line += chunk
                if chunk:
                    continue
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"er serve printed no URL (exit {self.proc.returncode}): {self.log_tail()}")
        self.url = line.decode().strip()

    def log_tail(self, n: int = 2000) -> str:
        return Path(self.log_path).read_bytes()[-n:].decode(errors="replace")

    def tree(self) -> list[int]:
        """er serve and every process below it (the API server, the engine core, its workers)."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return [root.pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int | None = None, timeout: float = 60) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def alive(pids: list[int]) -> list[int]:
    """The pids of `pids` still running (zombies count as gone)."""
    import psutil

    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def alive_after(pids: list[int], timeout: float = 30) -> list[int]:
    """`alive(pids)` once none is left or `timeout` seconds have passed: a SIGKILLed process with GBs of
    KV cache mapped takes the kernel seconds to tear down."""
    import time

    deadline = time.monotonic() + timeout
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
