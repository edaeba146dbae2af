"""Man pages generated from the live typer app, so they cannot drift from `--help`.

    python -m er.manpages man/      # writes man/er.1 and man/er-<command>.1

A test regenerates them into a temporary folder and fails when the committed pages differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from er import __version__
from er.helptext import ENVIRONMENT, EXAMPLES, EXIT_STATUS, FILES


def _roff(text: str) -> str:
    lines = []
    for line in (text or "").strip().splitlines():
        line = line.replace("\\", "\\e").replace("-", "\\-")
        line = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", line)  # `code` renders bold, as man pages set literals
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line if line.strip() else ".PP")
    return "\n".join(lines)


def _examples(name: str) -> list[str]:
    out = [".SH EXAMPLES"]
    for what, command in EXAMPLES.get(name, []):
        out += [".PP", _roff(what), ".PP", ".nf", ".RS 4", _roff(command), ".RE", ".fi"]
    return out if len(out) > 1 else []


def _common_sections() -> list[str]:
    out = [".SH EXIT STATUS"]
    for code, meaning in EXIT_STATUS:
        out += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    out.append(".SH ENVIRONMENT")
    for var, meaning in ENVIRONMENT:
        out += [".TP", f"\\fB{_roff(var)}\\fR", _roff(meaning)]
    out.append(".SH FILES")
    for path, meaning in FILES:
        out += [".TP", f"\\fI{_roff(path)}\\fR", _roff(meaning)]
    return out


def _header(name: str, summary: str) -> list[str]:
    return [f'.TH "{name.upper()}" "1" "" "er {__version__}" "er manual"', ".SH NAME", f"{name} \\- {_roff(summary)}"]


def pages() -> dict[str, str]:
    """{file name: roff text} for `er` and every subcommand."""
    from er.cli import click_group

    group = click_group()
    out: dict[str, str] = {}
    top = _header("er", "small commands to train and evaluate LLMs that think concisely")
    top += [".SH SYNOPSIS", "\\fBer\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIINPUTS\\fR...]",
            ".SH DESCRIPTION", _roff(group.help or ""), ".SH COMMANDS"]
    for name in sorted(group.commands):
        cmd = group.commands[name]
        top += [".TP", f"\\fBer {name}\\fR", _roff(cmd.get_short_help_str(limit=200)), ]
        out[f"er-{name}.1"] = _command_page(name, cmd)
    top += _examples("er") + _common_sections()
    top += [".SH SEE ALSO", ", ".join(f"\\fBer\\-{n}\\fR(1)" for n in sorted(group.commands))]
    out["er.1"] = "\n".join(top) + "\n"
    return out


def _command_page(name: str, cmd) -> str:
    lines = _header(f"er-{name}", cmd.get_short_help_str(limit=200))
    args = " ".join(f"[\\fI{_roff(p.metavar or p.name.upper())}\\fR...]" for p in cmd.params if p.param_type_name == "argument")
    lines += [".SH SYNOPSIS", f"\\fBer {name}\\fR [\\fIOPTIONS\\fR] {args}".rstrip(), ".SH DESCRIPTION",
              _roff(cmd.help or ""), ".PP", _roff(cmd.epilog or "")]
    options = [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]
    if options:
        lines.append(".SH OPTIONS")
    for p in options:
        value = f" \\fI{_roff(p.metavar)}\\fR" if p.metavar and not getattr(p, "is_flag", False) else ""
        flags = ", ".join(f"\\fB{_roff(o)}\\fR" for o in [*p.opts, *p.secondary_opts]) + value
        default = ""
        if p.default not in (None, False, ()) and not callable(p.default) and p.show_default is not False:
            default = f" (default: {_roff(str(p.default))})"
        lines += [".TP", flags, _roff(p.help or "") + default]
    lines += _examples(name) + _common_sections() + [".SH SEE ALSO", "\\fBer\\fR(1)"]
    return "\n".join(lines) + "\n"


def write(folder: str) -> list[Path]:
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages().items():
        path = target / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write(sys.argv[1] if len(sys.argv) > 1 else "man"):
        print(p)
