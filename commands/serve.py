"""er serve: run vLLM's OpenAI-compatible server for er sample --server (weights reloaded in place)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from er.commands._common import Debug


def run(
    model: Annotated[str, typer.Option("-m", "--model", help="Model directory or Hub name; a checkpoint directory (ckpt, ckpt/latest) serves its newest complete step-N.")],
    vllm_args: Annotated[Optional[list[str]], typer.Argument(help="After --: flags passed to vLLM unchanged (e.g. -- --data-parallel-size 2); they win over er's settings.", show_default=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but loopback is printed as a warning: the dev endpoints (reload, /collective_rpc) run worker methods and --api-key does not guard them.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    max_model_len: Annotated[Optional[int], typer.Option("--max-model-len", help="Context length (default: the model's; on CPU possibly less, to fit the KV cache).")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="CPU only: completion length the KV cache is sized for (as er sample's --max-tokens).")] = 1024,
    logprobs_mode: Annotated[str, typer.Option("--logprobs-mode", help="processed or raw, as er sample's (fixed for the server's lifetime).")] = "processed",
    max_num_seqs: Annotated[int, typer.Option("--max-num-seqs", help="Sequences decoded at once.")] = 256,
    max_num_batched_tokens: Annotated[Optional[int], typer.Option("--max-num-batched-tokens", help="Tokens per engine step (default: 8192, at least the context).")] = None,
    startup_timeout: Annotated[float, typer.Option("--startup-timeout", help="Seconds to wait for /health before giving up.")] = 900.0,
    max_lora_rank: Annotated[Optional[int], typer.Option("--max-lora-rank", help="Turn LoRA on for adapters up to this rank (er update --lora checkpoints that er sample --server -m loads later); an adapter given with -m turns it on by itself, at its own rank.")] = None,
    debug: Debug = False,
) -> None:
    """Serve MODEL with stock vLLM (its OpenAI-compatible server, dev endpoints on) until Ctrl-C or SIGTERM.

    Prints the URL on stdout once the server answers and has run one warm-up completion (vLLM compiles its
    log-prob ranking on first use); `er sample --server URL` samples from it and
    moves new checkpoints into it in place. A LoRA adapter (er update --lora's step-N) is served on its
    base, and each new adapter version is loaded beside it under its own name. vLLM's log goes to stderr. Ctrl-C/SIGTERM stop the server
    and its engine processes (exit 130/143). On a small CPU machine where nothing computes beside the
    server while it samples (a step-wise loop), VLLM_CPU_NUM_OF_RESERVED_CPU=0 gives its worker every core.
    Example: `er serve -m ckpt/latest --port 8000 -- --seed 0`.
    """
    from er.flagcheck import check_numbers

    check_numbers(("--port", port, "port"), ("--max-model-len", max_model_len, "at-least-1"),
                  ("--max-tokens", max_tokens, "at-least-1"), ("--max-num-seqs", max_num_seqs, "at-least-1"),
                  ("--max-num-batched-tokens", max_num_batched_tokens, "at-least-1"),
                  ("--startup-timeout", startup_timeout, "positive"), ("--max-lora-rank", max_lora_rank, "at-least-1"))
    from er.sampling.serve import serve

    serve(model, host=host, port=port, max_model_len=max_model_len, max_tokens=max_tokens,
          logprobs_mode=logprobs_mode, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
          vllm_args=vllm_args or [], startup_timeout=startup_timeout, max_lora_rank=max_lora_rank)
