"""Experiment trackers for `er update --report-to` and `er eval --report-to` (Hugging Face Trainer's / TRL's
spelling: `trackio,wandb,tensorboard,mlflow`, `all`, or `none`, the default).

Each tracker uses its library's own API (the optional extra `er[track]`) and logs the numeric fields of
every record at its `step` (nested objects such as `rewards_mean` flattened as `rewards_mean/NAME`; strings
and nulls left out). The metrics stream on stdout stays the source of truth: a tracker that fails to
start is a usage error before any training; one that fails mid-run is a warning on stderr and is not
called again, and the stream goes on.

Where each writes, by default in the working directory (nothing leaves the machine unless configured):

- trackio: its local SQLite store (`TRACKIO_DIR`, else trackio's default under HF_HOME); `trackio show`.
- wandb: offline mode (`./wandb/offline-run-*`, `wandb sync` uploads later) unless the user configured it
  (`WANDB_MODE`, or `WANDB_API_KEY` which means online); `WANDB_DIR`, `WANDB_PROJECT` as wandb reads them.
- tensorboard: `runs/RUN_NAME` (Trainer's `runs/` default) through `torch.utils.tensorboard`; `TB_LOG_DIR`
  overrides the `runs` parent.
- mlflow: `MLFLOW_TRACKING_URI`, else MLflow's own default (`sqlite:///mlflow.db` in the working
  directory); `--project` is the experiment.

The libraries print banners; they are sent to stderr so that stdout carries records only.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time

from er.errors import UsageError
from er.io import log

TRACKERS = ("trackio", "wandb", "tensorboard", "mlflow")


def parse_report_to(spec: str | list[str] | None) -> list[str]:
    """Tracker names from `--report-to` (comma list, repeatable; `none`, `all`)."""
    items = spec if isinstance(spec, list) else [spec or "none"]
    names: list[str] = []
    for item in items:
        for name in (p.strip().lower() for p in str(item).split(",")):
            if not name or name == "none":
                continue
            if name == "all":
                names.extend(TRACKERS)
            elif name in TRACKERS:
                names.append(name)
            else:
                from er.errors import UnknownNameError

                raise UnknownNameError("--report-to tracker", name, [*TRACKERS, "all", "none"])
    return list(dict.fromkeys(names))


def flatten(record: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of `record` (booleans as 0/1), nested objects as `key/sub`; `step` left out."""
    out: dict[str, float] = {}
    for k, v in record.items():
        if k == "step" and not prefix:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        elif type(v) in (int, float, bool) and math.isfinite(v):
            out[key] = float(v)
    return out


@contextlib.contextmanager
def _stdout_to_stderr(fd_too: bool = False):
    """Library banners go to stderr. With `fd_too`, file descriptor 1 as well, so that helper processes
    a library starts (wandb's service) never inherit stdout."""
    sys.stdout.flush()
    saved = None
    if fd_too:
        saved = os.dup(1)
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


class _Trackio:
    def __init__(self, project, run_name, config):
        import trackio

        self.lib = trackio
        self.run = trackio.init(project=project, name=run_name, config=config, auto_log_cpu=False,
                                auto_log_gpu=False, embed=False)

    def log(self, values, step):
        self.run.log(values, step=step)

    def close(self):
        self.lib.finish()  # the module's finish also forgets the run: no second finish at exit


class _Wandb:
    def __init__(self, project, run_name, config):
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or project, name=run_name, config=config,
                              mode=mode, reinit="create_new",
                              settings=wandb.Settings(console="off", x_disable_stats=True, quiet=True))

    def log(self, values, step):
        self.run.log(values, step=step)

    def close(self):
        self.run.finish()


class _TensorBoard:
    def __init__(self, project, run_name, config):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = os.path.join(os.environ.get("TB_LOG_DIR") or "runs", run_name)
        self.writer = SummaryWriter(log_dir=self.dir)
        if config:
            self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))

    def log(self, values, step):
        for k, v in values.items():
            self.writer.add_scalar(k, v, global_step=step)
        self.writer.flush()  # a dashboard shows each step as it comes

    def close(self):
        self.writer.close()


class _MLflow:
    def __init__(self, project, run_name, config):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()  # MLFLOW_TRACKING_URI, else MLflow's local default
        exp = self.client.get_experiment_by_name(project)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(project)
        self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        if config:
            from mlflow.entities import Param

            self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in config.items()])

    def log(self, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def close(self):
        self.client.set_terminated(self.run_id)


_CLASSES = {"trackio": _Trackio, "wandb": _Wandb, "tensorboard": _TensorBoard, "mlflow": _MLflow}
_PACKAGES = {"trackio": "trackio", "wandb": "wandb", "tensorboard": "tensorboard", "mlflow": "mlflow"}


def default_run_name(command: str) -> str:
    return f"er-{command}-{time.strftime('%Y%m%d-%H%M%S')}"


class Trackers:
    """The trackers of one run; `log(record)` sends a record's numbers to each (see module doc)."""

    def __init__(self, names: list[str], run_name: str, project: str, config: dict | None, command: str):
        self.command = command
        self.live: dict[str, object] = {}
        config = {k: v for k, v in (config or {}).items() if v is None or isinstance(v, (str, int, float, bool))}
        for name in names:
            try:
                with _stdout_to_stderr(fd_too=name == "wandb"):
                    self.live[name] = _CLASSES[name](project, run_name, config)
            except ModuleNotFoundError as exc:
                self.close()
                raise UsageError(f"--report-to {name}: {exc.name} is not installed "
                                 f"(pip install 'er[track]' or {_PACKAGES[name]})") from None
            except Exception as exc:  # the library's own failure: one line, before any work
                self.close()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UsageError(f"--report-to {name}: could not start ({first})") from None

    def log(self, record: dict, step: int | None = None, prefix: str = "") -> None:
        step = record.get("step") if step is None else step
        values = flatten(record, prefix)
        if not values:
            return
        for name, tracker in list(self.live.items()):
            try:
                with _stdout_to_stderr():
                    tracker.log(values, step)
            except Exception as exc:
                log(f"er {self.command}: warning: --report-to {name} failed and is stopped ({exc}); "
                    f"the records on stdout are complete")
                del self.live[name]

    def close(self) -> None:
        for name, tracker in list(self.live.items()):
            try:
                with _stdout_to_stderr(fd_too=name == "wandb"):
                    tracker.close()
            except Exception as exc:
                log(f"er {self.command}: warning: --report-to {name} did not close cleanly ({exc})")
        self.live.clear()


def open_trackers(report_to, run_name: str | None, project: str | None, config: dict | None,
                  command: str) -> Trackers | None:
    """Start the trackers `report_to` names (None for none); a failure is a UsageError (exit 2)."""
    names = parse_report_to(report_to)
    if not names:
        return None
    return Trackers(names, run_name or default_run_name(command), project or "er", config, command)


def log_reports(trackers: Trackers, reports: list[dict]) -> None:
    """`er eval --report-to`: each report's numbers under `eval/DATASET/`, at its `step` (else the step of a
    `step-N` checkpoint it evaluated, else 0), so held-out points line up with the training steps."""
    from er.train.checkpoint import checkpoint_step

    for r in reports:
        step = r.get("step")
        if type(step) is not int:
            step = checkpoint_step(str(r.get("model") or "")) or 0
        trackers.log(r, step=step, prefix=f"eval/{r.get('dataset')}/")
