"""man/ is generated from the live command line; this fails when the committed pages are stale."""

from __future__ import annotations

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
