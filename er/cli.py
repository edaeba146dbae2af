"""The `er` command line: builds the typer app (one line per command) and is the only error handler.

Errors print one line, `er <cmd>: <source>:<line>: <message>`, and exit 1 (bad data) or 2 (bad usage);
`--debug` anywhere on the line shows the traceback instead. A closed downstream pipe (`| head`)
ends quietly with status 0.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from er.config import add_option as add_config_option
from er.helptext import fields_epilog, set_metavars

# (command name, module in er.commands). Each module's `run` is the command; its docstring the help.
COMMANDS = (
    ("sample", "sample"),
    ("score", "score"),
    ("advantage", "advantage"),
    ("update", "update"),
    ("merge", "merge"),
    ("decompose", "decompose"),
    ("synth-tail", "synth_tail"),
    ("eval", "eval"),
    ("plot", "plot"),
    ("schema", "schema"),
    ("validate", "validate"),
    ("serve", "serve"),
)


def build_app(only: str | None = None) -> typer.Typer:
    """The app with every command, or with just `only` (a run of one command does not pay for
    building the others' options: about 70 ms of every start-up)."""
    app = typer.Typer(
        name="er",
        help="Efficient reasoning: small commands over JSONL/Arrow record streams to train and evaluate "
        "LLMs that think concisely. Each command reads records, adds fields, writes records:\n\n"
        "\b\n  er sample -m MODEL prompts.jsonl -n 8 | er score --reward dler \\\n"
        "    | er advantage | er update -m MODEL --out ckpt\n\n"
        "`er COMMAND --help` for each; `er score --list` and `er advantage --list` show the catalog; "
        "`er --version` the version.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        # help wraps at the terminal's width (COLUMNS when set), not click's default cap of 80
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 10_000},
    )
    if only is not None:
        app.callback()(lambda: None)  # stays a group: `er NAME ...` parses as with every command

    for name, module in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            mod = importlib.import_module(f"er.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"er.commands.{module}":
                continue  # not part of this build
            raise
        # The module docstring "er NAME: summary." gives the one-line summary of `er --help`.
        summary = (mod.__doc__ or "").strip().splitlines()[0].split(":", 1)[-1].strip().rstrip(".")
        app.command(name, short_help=summary[:1].upper() + summary[1:], epilog=fields_epilog(name))(mod.run)
    return app


def click_group(only: str | None = None):
    """The click group of build_app(only), every option's metavar saying what to type (er.helptext)."""
    import typer.main

    group = typer.main.get_command(build_app(only))
    for command in group.commands.values():
        set_metavars(command)
        add_config_option(command)
    return group


def _config_defaults(group, argv: list[str]) -> dict | None:
    """click's default_map from `er NAME ... --config FILE` (er.config), or None without one."""
    from er.config import config_path, default_map

    name, path = _command_name(argv), config_path(argv[1:])
    if not name or path is None or name not in group.commands:
        return None
    return {name: default_map(group.commands[name], path)}


def _command_name(argv: list[str]) -> str:
    """The command being run: the first argument, when it names one."""
    return argv[0] if argv and argv[0] in {n for n, _ in COMMANDS} else ""


def main(argv: list[str] | None = None) -> int:
    from typer.exceptions import TyperException

    from er.errors import ErError, OutputError, PipeClosed

    import signal

    # SIGTERM (a scheduler, `kill`, the end of a pipe) unwinds like Ctrl-C, so that worker pools
    # and temporary files are cleaned up; the exit status is the conventional 128 + signal.
    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        pass
    argv = list(sys.argv[1:] if argv is None else argv) or ["--help"]  # bare `er`: the command list, exit 0
    if argv == ["--version"]:  # from the installed package's metadata: no command is built
        from importlib.metadata import version

        print(f"er {version('er')}")
        return 0
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    prefix = " ".join(filter(None, ["er", _command_name(argv)]))
    if _command_name(argv) == "update":  # a bare `--lora` (typer options always take a value)
        from er.train.lora import bare_lora

        argv = bare_lora(argv)
    code = 0
    try:
        group = click_group(only=_command_name(argv) or None)
        result = group.main(args=argv, prog_name="er", standalone_mode=False, default_map=_config_defaults(group, argv))
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = 130
    except TyperException as exc:  # click's usage errors (unknown flag, bad value): exit 2
        if debug:
            raise
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print(f"{prefix}: {message}", file=sys.stderr)
        code = getattr(exc, "exit_code", 2)
    except ErError as exc:
        if debug:
            raise
        print(f"{prefix}: {exc}", file=sys.stderr)
        code = exc.exit_code
        if isinstance(exc, OutputError):
            _quiet_stdout()
    except (BrokenPipeError, PipeClosed):
        _quiet_stdout()
        code = 0
    except KeyboardInterrupt:
        code = 130
    except _Terminated:
        code = 143
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    if _joined_process_group():
        # A gloo worker thread can still hold the last reference to a tensor of the final collective
        # when the interpreter finalizes; its GIL acquire then aborts the rank (SIGABRT, "terminate
        # called without an active exception"; pytorch/pytorch#179291). Everything is written and
        # flushed by now, so the rank leaves without finalizing.
        sys.stderr.flush()
        os._exit(code)
    return code


def _joined_process_group() -> bool:
    trainer = sys.modules.get("er.train.trainer")
    return bool(trainer and trainer.joined_process_group)


class _Terminated(BaseException):
    pass


def _terminate(signum, frame) -> None:
    raise _Terminated()


def _quiet_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
