"""`--config FILE` on every command with flags: values from a YAML, TOML or JSON file; the command line wins.

Keys are the long flag names without the dashes (`max-tokens: 512`; `max_tokens` works too); a boolean
flag pair takes true/false (`chat: false` is `--no-chat`); a repeatable flag takes a list (`reward:
[dler, "format:weight=0.1"]`). The file's values become click's `default_map` for the command, so any
flag given on the command line overrides them, and they are checked and converted like typed values.
An unknown key, a file that does not parse, or a top level that is not a mapping is a usage error
naming it. `.toml` files are read with tomllib, anything else as YAML (JSON is YAML).

`er update` writes the resolved configuration of its run (every flag's value after the file and the
command line) as `config.json` into each checkpoint's trainer state, `DIR/trainer-state/step-N/`, where
no model loader looks; `er update --config DIR/trainer-state/step-N/config.json` repeats the run.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Optional

import typer  # the command line's own library (er.cli has imported it already)

from er.errors import UsageError

CONFIG_FILE = "config.json"  # the resolved configuration in DIR/trainer-state/step-N/
_NOT_RECORDED = ("config", "debug")


def config_path(argv: list[str]) -> str | None:
    """The FILE of `--config FILE` / `--config=FILE` in `argv` (the last one), or None."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--config="):
            found = arg.split("=", 1)[1]
    return found


def load(path: str) -> dict[str, Any]:
    """The mapping in a YAML/TOML/JSON file (UsageError when it cannot be read or is not a mapping)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    try:
        if path.lower().endswith(".toml"):
            import tomllib

            values = tomllib.loads(data.decode("utf-8"))
        else:
            import yaml

            values = yaml.safe_load(data)
    except Exception as exc:  # yaml and tomllib raise their own kinds; one line for the user
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"--config {path}: not valid {'TOML' if path.endswith('.toml') else 'YAML'} ({first})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"--config {path}: the top level must be a mapping of flag names to values")
    return values


def default_map(command, path: str) -> dict[str, Any]:
    """{click parameter name: value} for `command` (a click command) from the file at `path`."""
    by_flag = {}
    for param in command.params:
        for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
            if opt.startswith("--"):
                by_flag[opt[2:]] = param
    out: dict[str, Any] = {}
    for key, value in load(path).items():
        name = str(key).replace("_", "-")
        param = by_flag.get(name)
        if param is None or name in _NOT_RECORDED:
            raise UsageError(f"--config {path}: unknown key {key!r} for er {command.name} "
                             "(keys are the command's long flag names, e.g. max-tokens)")
        if f"--{name}" in getattr(param, "secondary_opts", []) and isinstance(value, bool):
            value = not value  # `no-chat: true` is `chat: false`
        out[param.name] = value
    return out


def resolved(params: dict[str, Any]) -> dict[str, Any]:
    """{long flag name: value} of a command's resolved parameters (its `run` arguments: a parameter
    is named as its long flag with '_' for '-'), for the record of a run; the inputs are not recorded."""
    return {k.replace("_", "-"): v for k, v in params.items() if k not in _NOT_RECORDED and k != "inputs"}


def record(path: str, values: dict[str, Any]) -> None:
    """Write `values` as DIR/trainer-state/step-N/config.json beside the trainer state of checkpoint `path`."""
    from er.train.checkpoint import state_dir

    target = os.path.join(state_dir(path), CONFIG_FILE)
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, target)


def add_option(command) -> None:
    """Show `--config FILE` in a command's help; main() reads it before the command parses (er.cli)."""
    options = [p for p in command.params if getattr(p, "opts", [""])[0].startswith("-")]
    if options and not any("--config" in p.opts for p in options):  # `er schema KIND` has no flags to set
        command.params.append(_config_param())


_PARAM = None


def _config_param():
    """The `--config FILE` option as typer builds it (its click is typer's own), not passed to `run`."""
    global _PARAM
    if _PARAM is None:
        import typer.main

        app = typer.Typer()

        @app.command()
        def _probe(config: Annotated[Optional[str], typer.Option(
                "--config", metavar="FILE", help="Read flag values from a YAML, TOML or JSON file (keys: the long "
                "flag names); flags on the command line win.")] = None) -> None:
            pass

        _PARAM = next(p for p in typer.main.get_command(app).params if p.name == "config")
        _PARAM.expose_value = False
    return _PARAM
