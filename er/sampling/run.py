"""What `er sample` does with its flags: open the policy, pick the prompt source, drive the sampler.

Backends: `transformers` (er.sampling.hf), `vllm` (er.sampling.vllm), `auto` = vllm when it is
importable and a GPU is present, else transformers. Prompt sources: record files/stdin through
RecordStream, or `--dataset NAME [--split S] [--preset P]` through `datasets.load_dataset` (NAME
may be a local .json/.jsonl/.parquet file; a preset name alone means that preset's Hub dataset).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Iterator

from er.errors import ErError, UsageError
from er.io import log
from er.models import load_config, load_tokenizer
from er.sampling.policy import Watcher, checkpoint_step, is_complete_checkpoint, open_first
from er.sampling.sampler import Policy, SampleOptions, Sampler, iter_epochs, run_stream


@dataclass
class EngineOptions:
    backend: str = "auto"
    batch_size: int = 64
    chunk: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    debug: bool = False
    server: object = None  # er.sampling.server_client.ServerOptions: sample from running servers (--server)


def choose_backend(name: str, longctx=None) -> str:
    if name not in ("auto", "transformers", "vllm"):
        raise UsageError(f"--backend must be auto, transformers or vllm, not {name!r}")
    if longctx is not None and longctx.any():
        if name == "vllm":
            raise UsageError(f"{', '.join(longctx.flags())}: only the transformers backend supports these (not vllm)")
        return "transformers"
    if name != "auto":
        return name
    from er.sampling.vllm import vllm_available

    if vllm_available():
        import torch

        if torch.cuda.is_available():
            return "vllm"
    return "transformers"


def open_backend(path: str, kind: str, eng: EngineOptions, opt: SampleOptions, tokenizer):
    if kind == "vllm":
        from er.sampling.vllm import VLLMBackend

        return VLLMBackend(path, seed=opt.seed, max_model_len=eng.max_model_len,
                           tensor_parallel_size=eng.tensor_parallel_size,
                           gpu_memory_utilization=eng.gpu_memory_utilization, logprobs_mode=opt.logprobs_mode,
                           debug=eng.debug, max_tokens=opt.max_tokens)
    from er.sampling.hf import HFBackend

    return HFBackend(path, batch_size=eng.batch_size, eos_ids=[tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [],
                     pad_id=tokenizer.pad_token_id, longctx=opt.longctx)


def open_served(path: str, eng: EngineOptions, opt: SampleOptions, note):
    """The tokenizer of `path` and a ServerBackend whose servers hold `path`. Connecting and moving the
    servers to `path` is waiting on other processes, so it runs in a thread while this one imports and
    loads the tokenizer (seconds of CPU); a failure of either is raised once both are done (a move in
    progress always ends with its server resumed)."""
    from concurrent.futures import ThreadPoolExecutor

    from er.sampling.server_client import ServerBackend

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(ServerBackend, eng.server, path, logprobs_mode=opt.logprobs_mode, note=note)
        try:
            tokenizer = load_tokenizer(path)
        except BaseException:
            if pending.exception() is None:
                pending.result().close()
            raise
        return tokenizer, pending.result()


def model_context(path: str, eng: EngineOptions) -> int | None:
    if eng.max_model_len:
        return eng.max_model_len
    from er.train.lora import config_dir

    cfg = load_config(config_dir(path))
    return getattr(cfg, "max_position_embeddings", None)


def dataset_rows(name: str, split: str | None, preset_name: str | None, stream) -> Iterator[tuple]:
    from er.data.presets import PRESETS, get_preset, load_local
    from er.evaluation.longbench import LONG_PRESETS, prompt_rows

    if preset_name in LONG_PRESETS:  # long-context benchmarks: one document -> several prompts, local files only
        yield from prompt_rows(name, preset_name, stream)
        return

    preset = get_preset(preset_name) if preset_name else None
    local = os.path.exists(name)
    if preset is None and not local and name in PRESETS:
        preset = PRESETS[name]
    import datasets

    try:
        if local:
            data = load_local(name)
        elif preset is not None and name in (preset.name, preset.hf_path):
            data = preset.load(split)
        else:
            data = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # datasets raises many kinds; one line for the user
        raise UsageError(f"--dataset {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    source = f"{name}:{split or (preset.default_split if preset else 'train')}"
    for i, row in enumerate(data):
        stream.n_in += 1
        try:
            record = preset.to_prompt(row, i) if preset is not None else dict(row)
        except ErError as exc:
            stream.reject(source, i + 1, exc.message, dict(row))
            continue
        yield source, i + 1, record


def sample(stream, *, model: str | None, opt: SampleOptions, eng: EngineOptions, watch: str | None = None,
           loop: bool = False, limit: int | None = None, shard=None, dataset: str | None = None,
           split: str | None = None, preset: str | None = None, progress: bool = False, rows=None,
           skip: int = 0) -> None:
    """The whole of `er sample` after flag parsing; writes to `stream` (a RecordStream)."""
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be >= 0, not {limit}")
    if skip < 0:
        raise UsageError(f"--skip must be >= 0, not {skip}")
    if preset is not None and dataset is None and rows is None:
        from er.data.presets import preset_for_files

        preset_for_files(preset)  # a bad name is a usage error before any model loads
    if eng.server is not None:
        from er.sampling.server_client import check_flags

        check_flags(eng.backend, opt)
        if eng.server.api == "chat":
            return sample_chat(stream, model=model, opt=opt, eng=eng, rows=rows, dataset=dataset, split=split,
                               preset=preset, loop=loop, limit=limit, shard=shard, skip=skip, progress=progress)
    kind = "server" if eng.server is not None else choose_backend(eng.backend, opt.longctx)
    watcher = Watcher(watch) if watch else None

    def open_policy(path: str):
        from er.train.lora import checked_policy_dir

        path = checked_policy_dir(path)  # a Hub name becomes its directory in the cache; one-line errors
        if kind == "server":
            tokenizer, backend = open_served(path, eng, opt, stream.note)
            # the server's context bounds a prompt; config.json only when it names none (AutoConfig's
            # import costs a light sampler seconds of torch)
            opt.max_context = backend.max_context or model_context(path, eng)
            return path, tokenizer, backend
        tokenizer = load_tokenizer(path)
        opt.max_context = model_context(path, eng)
        backend = open_backend(path, kind, eng, opt, tokenizer)
        if kind == "vllm" and backend.max_context:
            opt.max_context = backend.max_context  # vLLM on CPU may have chosen a shorter context to fit memory
        return path, tokenizer, backend

    name, (path, tokenizer, backend) = open_first(watcher, model, open_policy)
    if watcher is not None:
        watcher.baseline(path, tokenizer)
        if is_complete_checkpoint(path):
            watcher.accepted(path)
    policy = Policy(backend, name, checkpoint_step(path))

    def reload() -> Policy | None:
        new = watcher.poll()
        if new is None:
            return None
        current = sampler.policy
        t0 = time.perf_counter()
        try:
            watcher.check_same_model(new)  # another tokenizer would garble every prompt and completion
            if kind in ("vllm", "server"):
                current.backend.reload(new)  # in place: the engine (and its compiled graphs) stays up
                backend = current.backend
            else:
                backend = open_backend(new, kind, eng, opt, tokenizer)
        except Exception as exc:
            if not os.path.isdir(new):
                # removed under us (`er update --keep-last` ran ahead): the next poll finds the newer one
                log(f"er sample: {new} was removed before it could be loaded; waiting for the next checkpoint")
                return None
            # Sampling on from the old policy would silently label a stale policy's samples as fresh
            # RL data; stop instead (exit 1), naming the checkpoint.
            msg = exc.message if isinstance(exc, ErError) else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise ErError(f"--watch cannot load this checkpoint ({msg}); stopping rather than sampling on "
                          f"from step {current.step}", source=new) from None
        if backend is not current.backend:
            current.backend.close()
        watcher.accepted(new)
        step = checkpoint_step(new)
        how = "reloaded in place" if kind in ("vllm", "server") else "loaded"
        log(f"er sample: policy step {step} from {new} ({how} in {time.perf_counter() - t0:.2f} s)")
        return Policy(backend, os.path.join(watch, os.path.basename(new)), step)

    sampler = Sampler(policy, tokenizer, opt, reload=reload if watcher is not None else None)
    rows = prompt_rows(stream, rows, dataset, split, preset, loop, opt.seed, limit)
    chunk = eng.chunk or (256 if kind in ("vllm", "server") else max(1, (4 * eng.batch_size) // opt.n))
    from er.progress import Progress

    bar = Progress(unit="prompt", desc="er sample", on=progress)
    try:
        run_stream(sampler, rows, stream, chunk_prompts=chunk, limit=limit, shard=shard, progress=bar, skip=skip)
    finally:
        bar.close()
        sampler.policy.backend.close()


def prompt_rows(stream, rows, dataset: str | None, split: str | None, preset: str | None, loop: bool,
                seed: int | None, limit: int | None):
    """The prompt rows: given, from --dataset, or from the record inputs; cycled with --loop."""
    if rows is not None:
        pass
    elif dataset is not None:
        rows = dataset_rows(dataset, split, preset, stream)
    elif preset is not None:  # record files or stdin in the preset's shape
        from er.data.presets import file_rows, preset_for_files

        rows = file_rows(stream.records(), preset_for_files(preset), stream)
    else:
        rows = stream.records()
    if loop:
        rows = iter_epochs(list(rows), seed, loop=True, spacing=max(0, (limit or 0) - 1))
    return rows


def sample_chat(stream, *, model: str | None, opt: SampleOptions, eng: EngineOptions, rows, dataset, split,
                preset, loop: bool, limit: int | None, shard, skip: int, progress: bool) -> None:
    """`--server URL --api chat`: the server templates and samples (er.sampling.server_chat)."""
    from er.progress import Progress
    from er.sampling.server_chat import open_chat

    sampler, dispatcher = open_chat(eng.server, model, opt)
    bar = Progress(unit="prompt", desc="er sample", on=progress)
    try:
        rows = prompt_rows(stream, rows, dataset, split, preset, loop, opt.seed, limit)
        run_stream(sampler, rows, stream, chunk_prompts=eng.chunk or 256, limit=limit, shard=shard, progress=bar,
                   skip=skip)
    finally:
        bar.close()
        dispatcher.close()
        if dispatcher.retries:
            stream.note("requests re-sent to another server", dispatcher.retries)
