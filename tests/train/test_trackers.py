"""`er update --report-to`: every step's values reach trackio, wandb, TensorBoard and MLflow, read back with
each library's own reader; a tracker that cannot start stops the run before training; one that fails
mid-run is a warning and the metrics stream stays whole."""

from __future__ import annotations

import glob
import importlib.util
import os
import struct

import pytest

from er.train.trackers import Trackers, flatten, parse_report_to
from tests.train.helpers import read_jsonl, run_er, write_jsonl

# found, not imported: trackio reads TRACKIO_DIR when it is imported, inside the run below
pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("wandb", "mlflow", "trackio")),
                                reason="needs er[track]")


def _rows():
    rows = []
    for g in range(3):
        for i in range(2):
            rows.append({"id": f"p{g}", "prompt": f"{g} + 1 =", "group_id": f"g{g}", "group_size": 2,
                         "sample_idx": i, "completion": " 1" + " 0" * i, "completion_tokens": 1 + i,
                         "finish_reason": "stop", "reward": float(i), "correct": bool(i), "advantage": 1.0 - 2 * i,
                         "rewards": {"math": float(i), "len": -0.1 * i}})
    return rows


@pytest.fixture(scope="module")
def tracked_run(tiny_model, tmp_path_factory):
    """One 3-step run logged to all four trackers, in its own working directory."""
    work = tmp_path_factory.mktemp("tracked")
    env = {"TRACKIO_DIR": str(work / "trackio"), "WANDB_DIR": str(work), "WANDB_MODE": "offline",
           "MLFLOW_TRACKING_URI": f"file:{work / 'mlruns'}", "MLFLOW_ALLOW_FILE_STORE": "true",
           "WANDB_SILENT": "true"}
    saved = {k: os.environ.get(k) for k in [*env, "WANDB_API_KEY", "TB_LOG_DIR"]}
    os.environ.update(env)
    for k in ("WANDB_API_KEY", "TB_LOG_DIR"):
        os.environ.pop(k, None)
    cwd = os.getcwd()
    os.chdir(work)
    src = write_jsonl(work / "in.jsonl", _rows())
    try:
        from er.cli import main

        code = main(["update", "-m", tiny_model, "--out", str(work / "ck"), "--batch-size", "2",
                     "--report-to", "all", "--run-name", "r1", "--project", "proj", src,
                     "-o", str(work / "metrics.jsonl")])
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code == 0
    metrics = read_jsonl(work / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    return work, metrics


def _expected(metrics, key):
    return [(m["step"], pytest.approx(m[key], rel=1e-5)) for m in metrics]


def test_tensorboard_event_files_hold_every_step(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, metrics = tracked_run
    acc = EventAccumulator(str(work / "runs" / "r1"))
    acc.Reload()
    for key in ("loss", "accuracy", "completion_tokens_mean", "rewards_mean/math"):
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        want = [(m["step"], pytest.approx(flatten(m)[key], rel=1e-5)) for m in metrics]
        assert got == want, key


def test_mlflow_file_store_holds_every_step(tracked_run):
    from mlflow.tracking import MlflowClient

    work, metrics = tracked_run
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = MlflowClient(f"file:{work / 'mlruns'}")
    exp = client.get_experiment_by_name("proj")
    [run] = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "r1" and run.info.status == "FINISHED"
    for key in ("loss", "reward_std", "truncated_frac"):
        got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert got == _expected(metrics, key), key
    assert run.data.params["lr"] == str(metrics[0]["lr"])


def test_trackio_local_store_holds_every_step(tracked_run):
    work, metrics = tracked_run
    os.environ["TRACKIO_DIR"] = str(work / "trackio")
    from trackio.sqlite_storage import SQLiteStorage

    if not str(SQLiteStorage.get_project_db_path("proj")).startswith(str(work)):
        pytest.skip("trackio was imported earlier with another TRACKIO_DIR")
    logs = SQLiteStorage.get_logs("proj", "r1")
    for key in ("loss", "grad_norm", "accuracy"):
        got = [(r["step"], r[key]) for r in logs if key in r]
        assert got == _expected(metrics, key), key


def _wandb_records(path):
    """The records of a W&B offline transaction log (LevelDB log format: 32 KiB blocks of CRC, length,
    type, payload; type 1 full, 2 first, 3 middle, 4 last), decoded with wandb's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    pos, block, chunks = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        payload = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            continue
        chunks = payload if kind in (1, 2) else chunks + payload
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(chunks)
            yield record


def test_wandb_offline_run_holds_every_step(tracked_run):
    import orjson

    work, metrics = tracked_run
    [path] = glob.glob(str(work / "wandb" / "offline-run-*" / "run-*.wandb"))
    history = {}
    for record in _wandb_records(path):
        if record.WhichOneof("record_type") == "history":
            items = {"/".join(i.nested_key) or i.key: orjson.loads(i.value_json) for i in record.history.item}
            history[record.history.step.num] = items
        if record.WhichOneof("record_type") == "run":
            assert record.run.display_name == "r1" and record.run.project == "proj"
    for key in ("loss", "entropy", "reward_std"):
        got = sorted((s, h[key]) for s, h in history.items() if key in h)
        assert got == _expected(metrics, key), key


def test_unknown_tracker_and_one_that_cannot_start_are_usage_errors_before_training(tiny_model, tmp_path, capsys,
                                                                                    monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", _rows())
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--report-to", "wandb,comet", src],
                       capsys)
    assert code == 2 and "unknown --report-to tracker 'comet'" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://x")
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--report-to", "mlflow", src],
                       capsys)
    assert code == 2 and "--report-to mlflow: could not start" in err, err
    assert not (tmp_path / "ck" / "latest").exists()  # nothing trained


def test_a_tracker_failing_mid_run_is_a_warning_and_the_others_go_on(capsys):
    class Broken:
        def log(self, values, step):
            raise OSError("disk full")

    class Kept:
        def __init__(self):
            self.seen = []

        def log(self, values, step):
            self.seen.append((step, values))

    trackers = Trackers([], "r", "p", None, "update")
    kept = Kept()
    trackers.live = {"wandb": Broken(), "mlflow": kept}
    trackers.log({"step": 1, "loss": 0.5, "checkpoint": None, "rewards_mean": {"a": 1}})
    trackers.log({"step": 2, "loss": 0.25})
    err = capsys.readouterr().err
    assert err.count("--report-to wandb failed") == 1 and "disk full" in err
    assert kept.seen == [(1, {"loss": 0.5, "rewards_mean/a": 1.0}), (2, {"loss": 0.25})]


def test_report_to_spelling():
    assert parse_report_to("none") == [] and parse_report_to(None) == []
    assert parse_report_to("all") == ["trackio", "wandb", "tensorboard", "mlflow"]
    assert parse_report_to(["wandb, TensorBoard", "wandb"]) == ["wandb", "tensorboard"]


def test_eval_report_to_logs_each_report_at_its_checkpoint_step(tmp_path, capsys, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [{"group_id": "g", "sample_idx": i, "group_size": 4, "completion": "x", "correct": i < 3,
             "completion_tokens": 10 * (i + 1), "policy": {"model": "ck/step-20", "step": 20}} for i in range(4)]
    src = write_jsonl(tmp_path / "gsm8k.jsonl", rows)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TB_LOG_DIR", raising=False)
    code, err = run_er(["eval", src, "--report-to", "tensorboard", "--run-name", "ev", "-o", tmp_path / "r.jsonl"],
                       capsys)
    assert code == 0, err
    [report] = read_jsonl(tmp_path / "r.jsonl")
    acc = EventAccumulator(str(tmp_path / "runs" / "ev"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("eval/gsm8k/accuracy")] == [(20, 0.75)] == [
        (20, report["accuracy"])]
    assert [(e.step, e.value) for e in acc.Scalars("eval/gsm8k/mean_tokens")] == [(20, 25.0)]
