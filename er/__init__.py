"""er: efficient reasoning. Small Unix-style commands over JSONL/Arrow record streams to train and
evaluate reasoning LLMs that think concisely. The library lives here; `er.commands` holds the thin
command-line layer."""

__version__ = "0.1.0"
