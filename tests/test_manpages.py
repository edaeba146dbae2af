"""man/ is generated from the live command line; this fails when the committed pages are stale."""

from __future__ import annotations

import re
from pathlib import Path

from er.manpages import pages

MAN = Path(__file__).resolve().parents[1] / "man"


def test_committed_man_pages_match_the_command_line():
    fresh = pages()
    committed = {p.name: p.read_text() for p in MAN.glob("*.1")}
    assert sorted(committed) == sorted(fresh), "run `make man` and commit man/"
    stale = [name for name, text in fresh.items() if committed[name] != text]
    assert stale == [], f"stale man pages {stale}: run `make man` and commit man/"


def test_there_is_a_page_per_command():
    names = set(pages())
    for command in ("sample", "score", "advantage", "update", "merge", "decompose", "synth-tail", "eval"):
        assert f"er-{command}.1" in names
    assert "er.1" in names


def test_pages_have_examples_exit_status_environment_and_files_and_render_backticks():
    for name, text in pages().items():
        for section in (".SH EXAMPLES", ".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES"):
            assert section in text, (name, section)
        assert "HF_HUB_OFFLINE" in text and "`" not in text, name
        assert not re.search(r"\.SH OPTIONS\n\.SH", text), name  # never an empty OPTIONS section
    assert "er sample \\-m ckpt/latest prompts.jsonl \\-n 8 | er score \\-\\-reward dler" in pages()["er.1"]
    assert ".SH OPTIONS" not in pages()["er-schema.1"]  # schema has no options
    assert "Reads:" in pages()["er-score.1"] and "\\fBrewards\\fR" in pages()["er-score.1"]


def test_the_package_installs_the_man_pages_beside_bin():
    # pip puts data-files under the environment's prefix, so man-db finds PREFIX/share/man from PATH
    text = (MAN.parent / "pyproject.toml").read_text()
    assert re.search(r'\[tool\.setuptools\.data-files\]\n(#.*\n)*"share/man/man1" = \["man/\*\.1"\]', text)
