"""The update step of `er update`: model, optimizer, micro-batched losses, checkpoints, distribution.

One *step* is one batch read from the stream (`--batch-size` samples in whole groups, or one
Dataset-Decomposition batch). A step runs `--ppo-epochs` optimizer updates over the same batch (PPO
epochs; 1 by default as in DLER/DRPO); the learning rate follows linear warm-up over `--warmup` steps,
then stays constant (verl's default). AdamW (betas 0.9/0.999, eps 1e-8) with `--weight-decay`, gradient
norm clipping at `--grad-clip`. Float32 weights; on GPU the forward runs under bf16 autocast, log-probs
in float32; on CPU everything is float32.

Old log-probs for the ratio: the record's behaviour `logprobs` when present (a streaming sampler's lag is
corrected by the ratio itself; `--is-cap` truncates the importance weight), else the log-probs at the
start of the step: with one PPO epoch they equal the current ones (`logp.detach()`, no extra pass, as
in TRL), with more they are recomputed once before the first update.

Distributed (torchrun): rank 0 reads the stream and broadcasts each step (`broadcast_object_list`);
micro-batches are dealt round-robin to ranks (padded with zero-weight stand-ins so that every rank runs
the same number of forward/backward passes); the loss of every rank is normalised by the step's global
token/sequence counts and multiplied by the world size, so DDP's gradient averaging yields exactly the
single-process gradient. `--fsdp` shards with FSDP2 (`fully_shard` per decoder layer + root) instead of
DDP; only rank 0 writes checkpoints and metrics.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from er.errors import ErError, UsageError
from er.io import log
from er.models import load_tokenizer, model_dir
from er.train import checkpoint as ckpt
from er.train import losses as L
from er.train import zero_signal
from er.train.config import LOSSES, UpdateConfig, lr_at  # noqa: F401  (their home before er.train.config)
from er.train.batching import MicroBatch, collate, loss_positions, padding_fraction, plan_micro_batches
from er.train.data import StepBatch
from er.train.logprobs import head_logprobs_entropy
from er.train.story import batch_story

# Set once this process has started a torch.distributed process group; `er` then ends the process
# without interpreter finalization (see er.cli.main).
joined_process_group = False

class _Policy(torch.nn.Module):
    """Runs the decoder, then the LM head only at the positions that predict completion tokens.

    With `labels`, returns (log-probs, entropies) of those tokens, computed through the head in chunks
    (`er.train.logprobs`: at most [chunk x vocabulary] logits exist at once, forward and backward);
    without, the logits themselves (for the mode-switch loss, a handful of positions).

    Some architectures transform the logits after the head inside `forward()` (Gemma's final softcapping,
    Granite's and Cohere's scaling, each its own way); for those `head_only` is False and the model's full
    forward runs instead, so that training log-probs match the sampler's: its [batch x length x vocabulary]
    logits are materialised (more memory per micro-batch; the auto micro-batch budget counts them).
    """

    def __init__(self, lm: Any):
        super().__init__()
        self.lm = lm
        self.head_only = head_reproduces_forward(lm) and isinstance(lm.get_output_embeddings(), torch.nn.Linear)

    def forward(self, input_ids, attention_mask, rows, cols, temps=None, labels=None, entropy="none"):
        if self.head_only:
            base = getattr(self.lm, self.lm.base_model_prefix)
            hidden = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            if labels is not None:
                return head_logprobs_entropy(hidden[rows, cols], self.lm.get_output_embeddings(), labels,
                                             temps, entropy)
            logits = self.lm.get_output_embeddings()(hidden[rows, cols]).float()
        else:
            logits = self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
            logits = logits[rows, cols].float()
        if temps is not None:
            logits = logits / temps.unsqueeze(-1)
        if labels is not None:
            return L.token_logprobs_entropy(logits, labels, entropy=entropy)
        return logits


def head_reproduces_forward(lm: Any) -> bool:
    """Whether decoder + LM head alone give the model's own logits, checked on an 8-token probe.

    A probe rather than a list of architectures: the transforms differ per model (Granite divides by
    `logits_scaling`, HyperCLOVA X multiplies by it) and new ones appear with each release.
    """
    was_training = lm.training
    lm.eval()  # dropout would make the two passes differ
    try:
        ids = torch.arange(1, 9, device=lm.device)[None] % int(lm.get_input_embeddings().weight.shape[0])
        with torch.no_grad():
            full = lm(input_ids=ids, use_cache=False).logits[0].float()
            hidden = getattr(lm, lm.base_model_prefix)(input_ids=ids, use_cache=False).last_hidden_state[0]
            mine = lm.get_output_embeddings()(hidden).float()
        return bool(torch.allclose(full, mine, rtol=1e-4, atol=1e-5))
    finally:
        lm.train(was_training)


def _oom(exc: BaseException, budget: int) -> ErError:
    return ErError(f"out of memory in the update step ({str(exc).splitlines()[0][:120]}); lower "
                   f"--max-tokens-per-micro-batch (now {budget}) or --batch-size")


class Trainer:
    def __init__(self, model_path: str, out_dir: str, cfg: UpdateConfig, resume: bool = False):
        cfg.check()
        self.cfg = cfg
        self.out_dir = out_dir
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if cfg.device:
            self.device = torch.device(cfg.device)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.distributed = self.world > 1
        if self.distributed and not torch.distributed.is_initialized():
            global joined_process_group
            torch.distributed.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            joined_process_group = True
        self.autocast = self.device.type == "cuda"
        self.step = 0
        self.first_step = 0  # the step this run's schedule starts from (er.train.outdir.number_steps)
        self.samples_seen = 0
        self.tokens_seen = 0
        self.zero_signal_steps = 0  # steps skipped for having no signal, since the base model (er.train.zero_signal)
        self._set_seed(cfg.seed)

        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        if not sys.stderr.isatty():
            hf_logging.disable_progress_bar()  # progress bars only on a terminal (DESIGN.md)

        self.resumed_from = None
        load_path = model_path
        if resume:
            found = ckpt.latest_checkpoint(out_dir)
            if found is not None:
                load_path = self.resumed_from = found
        self.model_path = model_path
        from er.train import lora

        load_path, adapter_path = lora.split_model_path(load_path, cfg.lora, resumed=self.resumed_from is not None)
        load_path = model_dir(load_path, tokenizer=adapter_path is None)  # one-line errors: no tokenizer, broken config.json, a Hub name offline
        self.tokenizer = load_tokenizer(adapter_path or load_path)
        try:
            lm = AutoModelForCausalLM.from_pretrained(load_path, dtype=lora.dtype_of(cfg.base_dtype), use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise UsageError(f"-m {load_path}: cannot load the model ({str(exc).splitlines()[0][:200]})") from None
        lm.to(self.device)
        self.peft = lora.wrap(lm, cfg.lora, adapter_path, model_path) if cfg.lora is not None else None
        lm.train()
        lm.config.use_cache = False
        self.lm = lm
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.vocab_size = int(lm.get_input_embeddings().weight.shape[0])
        self.max_positions = getattr(lm.config, "max_position_embeddings", None)
        self.policy = _Policy(lm)
        if not self.policy.head_only and self.rank == 0:
            log(f"er update: {lm.config.model_type} transforms its logits after the LM head; "
                "computing them at every position (more memory per micro-batch)")
        if cfg.gradient_checkpointing:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.ref = None
        if cfg.kl_coef > 0 and self.peft is not None and not cfg.ref_model:
            self.ref = lora.AdapterDisabled(self.peft, self.policy)  # the base itself: no second model
        elif cfg.kl_coef > 0:
            ref_path = model_dir(cfg.ref_model or model_path, flag="--ref-model" if cfg.ref_model else "-m", tokenizer=False)
            ref_lm = AutoModelForCausalLM.from_pretrained(ref_path, dtype=torch.float32,
                                                          use_safetensors=True).to(self.device)
            ref_lm.eval()
            for p in ref_lm.parameters():
                p.requires_grad_(False)
            self.ref = _Policy(ref_lm)
        self.mode_ids = None
        if cfg.mode_switch_coef > 0:
            ids = []
            for t in cfg.mode_tokens or ():
                i = self.tokenizer.convert_tokens_to_ids(t)
                if i is None or i == self.tokenizer.unk_token_id or i < 0:
                    raise UsageError(f"--mode-tokens: {t!r} is not a single token of the tokenizer")
                ids.append(int(i))
            self.mode_ids = tuple(ids)
        self.micro_tokens = self._micro_batch_tokens()
        self.module = self._wrap()
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8,
                                           weight_decay=cfg.weight_decay, foreach=False)
        if self.resumed_from is not None:
            self._load_state(self.resumed_from)

    # ---- setup ---------------------------------------------------------------------------
    def _set_seed(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)

    def _micro_batch_tokens(self) -> int:
        """--max-tokens-per-micro-batch, or the auto value (logged once; the smallest over ranks)."""
        if self.cfg.max_tokens_per_micro_batch is not None:
            return self.cfg.max_tokens_per_micro_batch
        from er.train import batching

        per_token = batching.activation_bytes_per_token(self.lm.config, self.cfg.gradient_checkpointing,
                                                        full_logits=not self.policy.head_only)
        param_bytes = sum(p.numel() * p.element_size() for p in self.lm.parameters() if p.requires_grad)
        tokens = batching.auto_micro_batch_tokens(per_token, batching.available_memory(self.device),
                                                  3 * param_bytes, self.device.type)
        if self.distributed:  # every rank must plan the same micro-batches
            t = torch.tensor([tokens], dtype=torch.long, device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
            tokens = int(t.item())
        if self.rank == 0 and _stderr_is_tty():  # scripts see errors and the summary only (one-line errors)
            log(f"er update: --max-tokens-per-micro-batch auto: {tokens} tokens "
                f"(~{per_token / 2**20:.2f} MiB of activations per token)")
        return tokens

    def _wrap(self):
        if not self.distributed:
            return self.policy
        if self.cfg.fsdp:
            from torch.distributed.fsdp import fully_shard

            base = getattr(self.lm, self.lm.base_model_prefix)
            for layer in getattr(base, "layers", []):
                fully_shard(layer)
            fully_shard(self.policy)
            return self.policy
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(self.policy, device_ids=ids)

    # ---- state ---------------------------------------------------------------------------
    def _full(self, t: torch.Tensor) -> torch.Tensor:
        return t.full_tensor() if hasattr(t, "full_tensor") else t

    def _for_rank0(self, t: torch.Tensor) -> torch.Tensor | None:
        """`t` whole, on the CPU, on rank 0; None on other ranks, which only help gather FSDP shards.

        Copying on every rank would hold world-size copies of the weights and optimizer moments in host
        memory at each save.
        """
        full = self._full(t)
        return full.detach().cpu() if self.rank == 0 else None

    def _state(self) -> dict:
        tensors: dict[str, torch.Tensor] = {}
        for name, p in self.policy.named_parameters():
            for k, v in self.optimizer.state.get(p, {}).items():
                if torch.is_tensor(v) and (whole := self._for_rank0(v)) is not None:
                    tensors[f"optim.{name}.{k}"] = whole
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        np_state = np.random.get_state()
        meta = {
            "samples_seen": self.samples_seen, "tokens_seen": self.tokens_seen, "first_step": self.first_step,
            "zero_signal_steps": self.zero_signal_steps,
            "param_groups": groups, "python_rng": _jsonable(random.getstate()),
            "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "config": _jsonable(asdict(self.cfg)), "base_model": self.model_path,
        }
        return {"json": meta, "tensors": tensors}

    def _load_state(self, path: str) -> None:
        meta, tensors = ckpt.load_state(path)
        self.step = int(meta["step"])
        self.first_step = int(meta.get("first_step", 0))
        self.samples_seen = int(meta.get("samples_seen", 0))
        self.tokens_seen = int(meta.get("tokens_seen", 0))
        self.zero_signal_steps = int(meta.get("zero_signal_steps", 0))
        for name, p in self.policy.named_parameters():
            state = {}
            for key, v in tensors.items():
                prefix = f"optim.{name}."
                if key.startswith(prefix) and "." not in key[len(prefix):]:
                    k = key[len(prefix):]
                    if k != "step" and hasattr(p, "device_mesh"):
                        from torch.distributed.tensor import distribute_tensor

                        v = distribute_tensor(v.to(self.device), p.device_mesh, p.placements)
                    elif k != "step":
                        v = v.to(self.device)
                    state[k] = v
            if state:
                self.optimizer.state[p] = state
        for g, saved in zip(self.optimizer.param_groups, meta.get("param_groups", [])):
            g.update({k: v for k, v in saved.items() if k in g})
        if "rng.torch" in tensors:
            torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        if "python_rng" in meta:
            random.setstate(_tupled(meta["python_rng"]))
        if "numpy_rng" in meta:
            s = meta["numpy_rng"]
            np.random.set_state((s[0], np.array(s[1], dtype=np.uint32), *s[2:]))

    def save(self) -> str | None:
        """Write DIR/step-N (rank 0); every rank must call it (FSDP gathers shards)."""
        sharded = self.cfg.fsdp and self.distributed
        state = sd = None
        if self.rank == 0 or sharded:  # under FSDP every rank takes part in gathering each tensor
            state = self._state()
        if sharded:
            keys = set(self.lm.state_dict().keys())
            named = list(self.lm.named_parameters()) + list(self.lm.named_buffers())  # shared weights once
            sd = {k: whole for k, v in named if k in keys and (whole := self._for_rank0(v)) is not None}
        path = None
        if self.rank == 0:
            path = ckpt.save_checkpoint(self.lm if self.peft is None else self.peft, self.tokenizer, self.out_dir, self.step, state, state_dict=sd,
                                        keep_last=self.cfg.keep_last)
            if getattr(self, "command_config", None) is not None:
                from er.config import record

                record(path, self.command_config)  # the run's resolved flags, to repeat it with --config
        if self.distributed:
            torch.distributed.barrier()
        return path

    # ---- forward helpers ---------------------------------------------------------------------
    def _forward(self, module, mb: MicroBatch, temps: bool = True, entropy: str | None = None):
        """Logits at the loss positions; with `entropy` ("none", "detached", "grad") (log-probs, entropies)."""
        labels = None if entropy is None else mb.labels
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return module(mb.input_ids, mb.attention_mask, mb.rows, mb.cols, mb.temps if temps else None,
                          labels, entropy or "none")

    @torch.no_grad()
    def _logprobs(self, module, mb: MicroBatch) -> torch.Tensor:
        logp, _ = self._forward(module, mb, entropy="none")
        return logp

    # ---- the step ------------------------------------------------------------------------
    def run_step(self, batch: StepBatch) -> dict:
        """One optimizer step on `batch` (every rank calls it); returns its metrics record."""
        try:
            return self._train_step(batch)
        except torch.OutOfMemoryError as exc:
            raise _oom(exc, self.micro_tokens) from None
        except RuntimeError as exc:
            if "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower():
                raise _oom(exc, self.micro_tokens) from None
            raise

    def _norm_length(self, exs) -> float:
        if self.cfg.norm_length:
            return float(self.cfg.norm_length)
        caps = [e.max_tokens for e in exs if e.max_tokens]
        return float(max(caps) if caps else max(e.completion_len for e in exs) or 1)

    def _train_step(self, batch: StepBatch) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        if (why := zero_signal.reason(batch, cfg, self.mode_ids is not None and bool(batch.mode_prompts))) is not None:
            return zero_signal.skipped_step(self, batch, why, lr_at(cfg, self.step))
        exs = batch.examples
        lengths = [len(e.ids) for e in exs]
        units = None
        if cfg.loss == "drpo":
            by_group: dict[int, list[int]] = {}
            for i, e in enumerate(exs):
                by_group.setdefault(e.group, []).append(i)
            units = list(by_group.values())
        plans = plan_micro_batches(lengths, self.micro_tokens, units)
        pad_frac = padding_fraction(lengths, plans)
        n_tokens = sum(max(end - start, 0) for start, end in map(loss_positions, exs))
        n_seqs = len(exs)
        norm_length = self._norm_length(exs) if cfg.agg == "seq-mean-token-sum-norm" else None
        # deal micro-batches to ranks; stand-ins keep the number of passes equal on every rank
        mine = plans[self.rank::self.world]
        per_rank = math.ceil(len(plans) / self.world)
        mbs = [collate(exs, p, self.pad_id, self.device) for p in mine]
        while len(mbs) < per_rank:
            stand_in = collate(exs, plans[0], self.pad_id, self.device)
            stand_in.dummy = True
            mbs.append(stand_in)
        lr = lr_at(cfg, self.step - self.first_step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        ref_lp = [self._logprobs(self.ref, mb) for mb in mbs] if self.ref is not None else None
        old_lp = None
        if cfg.ppo_epochs > 1 and cfg.loss != "sft":
            old_lp = [self._logprobs(self.module, mb) for mb in mbs]
        mode_mb = self._mode_micro_batch(batch)
        stats = torch.zeros(12, dtype=torch.float64)
        grad_norms = []
        for _epoch in range(cfg.ppo_epochs):
            self.optimizer.zero_grad(set_to_none=True)
            passes = len(mbs) + (1 if mode_mb is not None else 0)
            k = 0
            for j, mb in enumerate(mbs):
                k += 1
                with self._sync(k == passes):
                    loss, st = self._micro_loss(mb, n_tokens, n_seqs, norm_length, batch.n_groups,
                                                None if ref_lp is None else ref_lp[j],
                                                None if old_lp is None else old_lp[j])
                    scale = 0.0 if mb.dummy else float(self.world)
                    (loss * scale).backward()
                if not mb.dummy:
                    stats += st
            if mode_mb is not None:
                with self._sync(True):
                    loss, ms = self._mode_loss(*mode_mb)
                    (loss * float(self.world)).backward()
                stats[1] += float(loss.detach())
                stats[10] += ms[0]
                stats[11] += ms[1]
            gn = torch.nn.utils.clip_grad_norm_(self.policy.parameters(),
                                                cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            grad_norms.append(float(self._full(gn)))
            self.optimizer.step()
        if self.distributed:
            torch.distributed.all_reduce(stats)
        s = stats.tolist()
        epochs = cfg.ppo_epochs
        tok = max(s[0], 1.0)
        self.step += 1
        self.samples_seen += n_seqs
        self.tokens_seen += n_tokens
        rewards = [e.reward for e in exs if e.reward is not None]
        metrics = {
            "step": self.step,
            "loss": s[1] / epochs,
            "pg_loss": s[2] / epochs if cfg.loss != "sft" else None,
            "kl": (s[3] / epochs) if (self.ref is not None or cfg.loss == "drpo") else None,
            "entropy": s[4] / tok,
            "clip_frac": (s[5] + s[6]) / tok if cfg.loss == "grpo" else None,
            "clip_frac_low": s[6] / tok if cfg.loss == "grpo" else None,
            "clip_frac_high": s[5] / tok if cfg.loss == "grpo" else None,
            "dual_clip_frac": s[7] / tok if cfg.loss == "grpo" and cfg.dual_clip is not None else None,
            "is_capped_frac": s[8] / tok if cfg.loss == "grpo" and cfg.is_cap is not None else None,
            "mode_switch_loss": (s[10] / max(s[11], 1.0) / epochs) if mode_mb is not None else None,
            "grad_norm": sum(grad_norms) / len(grad_norms),
            "lr": lr,
            "samples": n_seqs,
            "tokens": n_tokens,
            "padding_frac": pad_frac,
            "micro_batches": len(plans),
            "reward_mean": sum(rewards) / len(rewards) if rewards else None,
            "advantage_mean": (sum(e.advantage for e in exs) / n_seqs) if cfg.loss != "sft" else None,
            "completion_tokens_mean": sum(e.completion_len for e in exs) / n_seqs,
            "checkpoint": None,
            "seconds": 0.0,
            "zero_signal": False,
        }
        if cfg.loss == "drpo":
            metrics["drpo_groups"] = s[9] / epochs
        metrics.update(batch_story(batch, self.step - 1))
        metrics["seconds"] = time.perf_counter() - t0
        return metrics

    def _sync(self, last: bool):
        import contextlib

        if not self.distributed or last:
            return contextlib.nullcontext()
        if self.cfg.fsdp:
            module = self.policy

            class _NoSync:
                def __enter__(self_inner):
                    module.set_requires_gradient_sync(False)

                def __exit__(self_inner, *a):
                    module.set_requires_gradient_sync(True)

            return _NoSync()
        return self.module.no_sync()

    def _micro_loss(self, mb: MicroBatch, n_tokens: int, n_seqs: int, norm_length, n_groups: int,
                    ref_lp, old_lp) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        st = torch.zeros(12, dtype=torch.float64)
        logp, ent = self._forward(self.module, mb, temps=cfg.loss != "sft",
                                  entropy="grad" if cfg.entropy_coef > 0 else "detached")
        st[0] = mb.n_tokens
        st[4] = float(ent.detach().sum())
        if cfg.loss == "sft":
            loss = -(logp.sum()) / max(n_tokens, 1)
            st[1] = float(loss.detach())
            return loss, st
        start = old_lp if old_lp is not None else logp.detach()
        old = torch.where(torch.isnan(mb.behaviour), start, mb.behaviour)
        w = L.agg_weights(cfg.agg, mb.seq_len, n_tokens, n_seqs, norm_length)
        if cfg.loss == "grpo":
            pg, cs = L.pg_loss(logp, old, mb.adv, w, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
                               dual_clip=cfg.dual_clip, is_cap=cfg.is_cap)
            st[5], st[6], st[7], st[8] = (float(cs["clip_high"]), float(cs["clip_low"]),
                                          float(cs["dual_clip"]), float(cs["is_capped"]))
            loss = pg
            if ref_lp is not None:
                kl = (L.kl_penalty(logp, ref_lp, cfg.kl) * w).sum()
                loss = loss + cfg.kl_coef * kl
                st[3] = float(kl.detach())
        else:  # drpo
            scores = L.sequence_means(logp, mb.seq, len(mb.index))
            J, used = L.drpo_objective(scores, mb.group, mb.drpo_weight, mb.drpo_negative, cfg.drpo_tau)
            pg = -J / max(n_groups, 1)
            term, K = L.drpo_kl_term(logp, old, cfg.drpo_beta, cfg.drpo_delta)
            loss = pg + term * (mb.n_tokens / max(n_tokens, 1))
            st[3] = float(K) * mb.n_tokens / max(n_tokens, 1)
            st[9] = used
        if cfg.entropy_coef > 0:
            loss = loss - cfg.entropy_coef * (ent * w).sum()
        st[1] = float(loss.detach())
        st[2] = float(pg.detach())
        return loss, st

    def _mode_micro_batch(self, batch: StepBatch):
        """This rank's share of the step's mode-switch prompts, as (MicroBatch, prefer_short, weight)."""
        if self.mode_ids is None or not batch.mode_prompts:
            return None
        from er.train.data import Example

        prompts = batch.mode_prompts
        share = prompts[self.rank::self.world]
        dummy = not share
        share = share or prompts[:1]
        exs = [Example(ids=list(p) + [self.pad_id], prompt_len=len(p)) for p, _ in share]
        mb = collate(exs, list(range(len(exs))), self.pad_id, self.device)
        prefer = torch.tensor([t for _, t in share], dtype=torch.bool, device=self.device)
        weight = 0.0 if dummy else self.cfg.mode_switch_coef / len(prompts)
        return mb, prefer, weight

    def _mode_loss(self, mb: MicroBatch, prefer: torch.Tensor, weight: float):
        logits = self._forward(self.module, mb, temps=False)
        z_long, z_short = logits[:, self.mode_ids[0]], logits[:, self.mode_ids[1]]
        per = L.mode_switch_loss(z_long, z_short, prefer, self.cfg.mode_switch_form, self.cfg.mode_switch_margin)
        loss = per.sum() * weight
        n = 0 if weight == 0 else len(per)
        return loss, (float(per.detach().sum()) if n else 0.0, n)


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _jsonable(x):
    if isinstance(x, tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


def _tupled(x):
    return tuple(_tupled(v) for v in x) if isinstance(x, list) else x
