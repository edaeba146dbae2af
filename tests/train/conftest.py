"""Shared fixtures for the training tests: one tiny model per session, helpers to write records and run `er`."""

from __future__ import annotations

import json
import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from er.tiny import build_tiny

    return build_tiny(str(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture
def model_copy(tiny_model, tmp_path) -> str:
    """A private copy (tests that train must not change the shared model)."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model, dst)
    return str(dst)


def write_jsonl(path, records) -> str:
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return str(path)


def read_jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_er(args: list[str], capsys) -> tuple[int, str]:
    """Run `er` in-process (torch stays imported between calls); returns (exit code, stderr)."""
    from er.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err
