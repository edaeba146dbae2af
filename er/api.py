"""The commands as Python functions over iterables of dicts, for notebooks and scripts.

    import er.api as er

    samples = er.sample(prompts, model="HuggingFaceTB/SmolLM2-135M-Instruct", n=4, max_tokens=256)
    scored = list(er.score(samples, reward=["math"]))
    reports = er.evaluate(scored)                    # [{"accuracy": ..., "pass@4": ..., ...}]
    advantaged = list(er.advantage(scored))
    metrics = er.update(advantaged, model="...", out="ckpt", lr=1e-6, batch_size=16)

Each function runs the command's own code (the same Scorer, AdvantageRunner, Evaluation, sampler and
trainer, on an in-memory RecordStream), so results equal the command line's for the same records and
flags; keyword arguments are the flags' names with `_` for `-`. `score` and `advantage` are generators:
records stream through group by group, as in a pipe. A bad row raises `er.errors.ErError` (located at
its 1-based position in the input) instead of printing a line; bad arguments raise `UsageError`.
Input dicts are not modified (each row is copied before fields are added).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from er.io import RecordStream

SOURCE = "<records>"


class _Records(RecordStream):
    """A RecordStream over an iterable of dicts whose output is collected (or yielded) instead of written."""

    def __init__(self, command: str, records: Iterable[dict]):
        super().__init__(command, output=None, quiet=True)
        self._source = records
        self.out: list[dict] = []

    def records(self):
        for i, record in enumerate(self._source):
            self.n_in += 1
            yield SOURCE, i + 1, dict(record)

    def write(self, record: dict) -> None:
        self.n_out += 1
        self.out.append(record)

    def write_many(self, records: list[dict]) -> None:
        self.n_out += len(records)
        self.out.extend(records)

    def end_group(self) -> None:
        pass

    def take(self) -> list[dict]:
        out, self.out = self.out, []
        return out


def score(records: Iterable[dict], reward: list[str] | str = ("math",), combine: str = "sum", workers: int = 0,
          timeout: float = 10.0, preset: str | None = None) -> Iterator[dict]:
    """`er score`: each record with `rewards`, `reward` and `correct` added (workers=0: in this process)."""
    from er.groups import iter_groups
    from er.scoring import Scorer

    rewards = [reward] if isinstance(reward, str) else list(reward)
    if preset is not None and reward == ("math",):
        from er.data.presets import get_preset

        rewards = [get_preset(preset).verifier]
    scorer = Scorer(rewards, combine=combine, workers=workers, timeout=timeout)
    s = _Records("score", records)
    with s:
        for group in scorer.run(iter_groups(s.records(), s), s):
            yield from (row[2] for row in group)


def advantage(records: Iterable[dict], estimator: str = "grpo", batch_groups: int = 32,
              dynamic_sampling: bool = False, normalize_then_sum: str | None = None) -> Iterator[dict]:
    """`er advantage`: each scored record with `advantage` and `estimator` added."""
    from er.advantaging import AdvantageRunner
    from er.groups import iter_groups

    s = _Records("advantage", records)
    with s:
        runner = AdvantageRunner(estimator, batch_groups, dynamic_sampling, normalize_then_sum=normalize_then_sum)
        for chunk in runner.run(iter_groups(s.records(), s), s):
            yield from chunk


def evaluate(records: Iterable[dict], **options: Any) -> list[dict]:
    """`er eval`: the report records; options are EvalOptions' fields (metric, by, ks, budgets, preset,
    rewards, compare, ...), e.g. `evaluate(rows, preset="gsm8k", ks=[1, 4])`."""
    from er.evaluation.run import EvalOptions, Evaluation

    evaluation = Evaluation(EvalOptions(**options), n_inputs=1)
    with _Records("eval", records) as s:
        return evaluation.run(s)


def sample(prompts: Iterable[dict], model: str, n: int = 1, max_tokens: int = 1024, temperature: float = 1.0,
           top_p: float = 1.0, seed: int | None = None, backend: str = "auto", preset: str | None = None,
           limit: int | None = None, batch_size: int = 64, **options: Any) -> list[dict]:
    """`er sample`: G = n sample records per prompt record (or per row in `preset`'s shape); further
    SampleOptions fields (chat, system, logprobs, ...) as keyword arguments."""
    from er.sampling.longctx import parse_options
    from er.sampling.run import EngineOptions
    from er.sampling.run import sample as run_sample
    from er.sampling.sampler import SampleOptions

    options.setdefault("longctx", parse_options(None, None, None))  # as the command line builds it
    opt = SampleOptions(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, **options)
    eng = EngineOptions(backend=backend, batch_size=batch_size)
    with _Records("sample", prompts) as s:
        run_sample(s, model=model, opt=opt, eng=eng, limit=limit, preset=preset)
        return s.take()


def update(records: Iterable[dict], model: str, out: str, resume: bool = False, estimator: str | None = None,
           allow_zero_signal: bool = False, **config: Any) -> list[dict]:
    """`er update`: train on the records, checkpoints in `out`; returns the metrics records. `config`:
    UpdateConfig's fields (loss, lr, batch_size, kl_coef, save_every, ...)."""
    from er.train.config import UpdateConfig
    from er.train.run import run_update

    cfg = UpdateConfig(**config)
    cfg.check()
    with _Records("update", records) as s:
        run_update(model, out, cfg, s, resume=resume, estimator=estimator, allow_zero_signal=allow_zero_signal)
        return s.take()
