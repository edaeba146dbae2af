"""er sample: complete prompts with a model, G samples per prompt, groups contiguous."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from er.commands._common import Debug, Format, Inputs, MaxLineBytes, Output, Quiet, Rejects, Seed, stream
from er.io import DEFAULT_MAX_LINE_BYTES


def run(
    inputs: Inputs = None,
    model: Annotated[Optional[str], typer.Option("-m", "--model", help="Model directory or Hub name (policy.model records it as given).")] = None,
    n: Annotated[int, typer.Option("-n", help="Samples per prompt (G), written contiguously as one group.")] = 1,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Cap on completion tokens (finish_reason 'length' when it binds).")] = 1024,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature; 0 = greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass.")] = 1.0,
    seed: Seed = None,
    backend: Annotated[str, typer.Option("--backend", help="transformers, vllm, or auto (vllm when importable and a GPU is present).")] = "auto",
    chat: Annotated[Optional[bool], typer.Option("--chat/--no-chat", help="Text prompts through the tokenizer's chat template. Default: yes when the tokenizer has one (an instruct model fed raw text often answers nothing); --no-chat sends raw text; --chat fails without a template. Message-list prompts always get it. Record: sampling.chat.")] = None,
    system: Annotated[Optional[str], typer.Option("--system", help="System message (implies the chat template).")] = None,
    logprobs: Annotated[bool, typer.Option("--logprobs", help="Add token_ids and the behaviour log-prob of every completion token.")] = False,
    logprobs_mode: Annotated[str, typer.Option("--logprobs-mode", help="processed: log-prob the token was drawn with (stop scaling, temperature, top-p); raw: model log-softmax.")] = "processed",
    batch_size: Annotated[int, typer.Option("--batch-size", help="transformers: sequences per decoding batch.")] = 64,
    chunk: Annotated[Optional[int], typer.Option("--chunk", help="Prompts read before generating (default: 4*batch-size/n; vllm 256). Output is flushed per chunk.")] = None,
    tensor_parallel_size: Annotated[int, typer.Option("--tensor-parallel-size", help="vllm: GPUs per engine.")] = 1,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option("--gpu-memory-utilization", help="vllm: memory fraction (on CPU: of host memory).")] = None,
    max_model_len: Annotated[Optional[int], typer.Option("--max-model-len", help="Context length (default: the model's); longer prompts are rejected.")] = None,
    budgets: Annotated[Optional[str], typer.Option("--budgets", help="HBPO: comma list of token budgets; splits the G samples into subgroups, budget in the prompt and as max_tokens (record: budget).")] = None,
    target_length: Annotated[Optional[str], typer.Option("--target-length", help="N or LO-HI (uniform per prompt): target length stated in the prompt (record: target_length).")] = None,
    target_style: Annotated[str, typer.Option("--target-style", help="l1 ('Think for N tokens.'), l1-max, ruler (word count), mlt (Ruler Meta Length Token prefill).")] = "l1",
    level: Annotated[Optional[str], typer.Option("--level", help="TLDR level short|medium|long, or a comma list mixed per prompt (reconstructed wording; record: level).")] = None,
    stop_scale: Annotated[Optional[float], typer.Option("--stop-scale", help="TS (reconstructed): while thinking, z[stop] += ln F, so F > 1 makes ending thinking more likely.")] = None,
    think_end: Annotated[str, typer.Option("--think-end", help="End-of-thinking marker: `think_tokens` counts the completion up to and including it (null when absent), and --stop-scale scales it (EOS when it is not one token).")] = "</think>",
    mode: Annotated[Optional[str], typer.Option("--mode", help="Adaptive reasoning: long|short force the mode marker, split = half each, auto = free (record: mode). reconstructed markers.")] = None,
    mode_markers: Annotated[str, typer.Option("--mode-markers", help="LONG,SHORT marker texts (\\n escapes allowed).")] = "<think>\\n,<think>\\n\\n</think>\\n\\n",
    attention: Annotated[Optional[str], typer.Option("--attention", help="transformers backend only. lambda[:global=10,local=L,dist=L,chunk=512]: LM-Infinite (Han et al., NAACL 2024) Λ-shaped attention — each token sees the first `global` and the last `local` tokens, relative distance capped at `dist` for the global ones (L = the model's max_position_embeddings); the KV cache is bounded to global+local tokens and prompts longer than L are accepted. From the official code; top-k/triangle extensions not implemented. squeezed[:clusters=0.05,threshold=q0.9,window=100,levels=1]: Squeezed Attention (Hooper, Kim et al., ACL 2025) for prompts sharing a fixed context (a record's `context` field, placed before its `prompt`, or the leval/lcfo presets' document): the context's KV is computed once per document, its keys K-means-clustered per layer and head (K = clusters x its length), a threshold calibrated (quantile qP of the estimated weights, or a number) on its last `window` tokens; each question attends only to the keys of the clusters that pass, the window and its own tokens; levels=2 adds a coarse level (coarse=clusters/4, coarse_threshold=q0.7). Record: long_context.keys_fraction. Fidelity only: no speed-up on CPU.")] = None,
    context: Annotated[Optional[str], typer.Option("--context", help="transformers backend only. xl3m[:segment=L/4,question=32,keep=K,score=entropy|nll]: XL3M (Wang et al., arXiv 2405.17755), RECONSTRUCTED from the abstract: split the prompt into segments each followed by the question (its last `question` tokens), keep the `keep` segments where the model is most certain on the question (lowest mean entropy; default K = (L - question - max_tokens) / segment), in original order, then generate. Record: long_context.")] = None,
    memory: Annotated[Optional[str], typer.Option("--memory", help="transformers backend only. sirllm[:keep=1020,decay=1.0,start=4,recent=0]: SirLLM (Yao et al., arXiv 2405.12528) for multi-turn chats (prompt = message list): prefill turn by turn, token surprisal scores decayed per turn, the KV cache keeps the `start` tokens plus the top-`keep` scored (and `recent`) tokens. From the official code.")] = None,
    server: Annotated[Optional[str], typer.Option("--server", help="URL[,URL...]: sample from running servers (`er serve`, vLLM, SGLang) instead of an engine of its own; -m names the tokenizer and the weights the servers must hold (moved there when they hold another checkpoint). Fewest in flight first; a server that fails has its requests sent to the others. Record: sampling.server.")] = None,
    api: Annotated[str, typer.Option("--api", help="With --server: completions (token ids in and out, the records of --backend vllm) or chat (/v1/chat/completions, the server templates; any OpenAI-compatible endpoint, for evaluation).")] = "completions",
    api_key_env: Annotated[Optional[str], typer.Option("--api-key-env", help="With --server: the environment variable holding the API key (sent as a Bearer token; never on the command line, never in a record).")] = None,
    max_inflight: Annotated[int, typer.Option("--max-inflight", help="With --server: requests in flight at once, over all servers.")] = 256,
    request_timeout: Annotated[float, typer.Option("--request-timeout", help="With --server: seconds one request may take before its server counts as gone.")] = 1800.0,
    watch: Annotated[Optional[str], typer.Option("--watch", help="Reload the policy between chunks whenever DIR/latest points to a new complete step-N (a latest that names no checkpoint is ignored with a warning; a checkpoint of another model or tokenizer stops the command, exit 1).")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Cycle the prompts forever (each epoch reshuffled by --seed).")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", "--max-prompts", help="Stop after this many prompts (0: none).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Read prompts with datasets.load_dataset(NAME) (or a local .jsonl/.parquet) instead of record files.")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="Dataset split (default: the preset's).")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Read rows in a benchmark's shape as prompts: gsm8k (question, answer ending '#### 42'), math500 and aime24 (problem, answer), amc23 (question, answer), gpqa (Question, Correct Answer, Incorrect Answer 1-3), from the record files or stdin (other columns kept, a row's own id kept), or with --dataset from the Hub (NAME = the preset alone) or a local file; leval, lcfo with --dataset FILE only (the published format: one prompt per instruction / summary ratio).")] = None,
    skip: Annotated[int, typer.Option("--skip", help="Start at this position of the prompts (of the cycled list with --loop); skipped ids still count for id#k group_ids.")] = 0,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: only prompts whose position % N == I (0-based; Slurm arrays).")] = None,
    output: Output = None,
    format: Format = "jsonl",
    rejects: Rejects = None,
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Sample completions: G sample records per prompt (group_id, sample_idx, completion, token counts, finish_reason, policy).

    Interventions: --budgets (HBPO), --target-length (L1 / Ruler), --level (TLDR, reconstructed),
    --stop-scale (TS, reconstructed), --mode (adaptive long/short). Long inputs (transformers backend
    only; vllm refuses them): --attention lambda (LM-Infinite) or squeezed (Squeezed Attention), --context xl3m (XL3M, reconstructed),
    --memory sirllm (SirLLM). Streaming RL:
    `er sample --watch ckpt --loop | er score ... | er advantage | er update --out ckpt`.
    """
    from er.io import stderr_is_tty
    from er.flagcheck import check_numbers

    check_numbers(("--temperature", temperature, "finite"), ("--batch-size", batch_size, "at-least-1"),
                  ("--chunk", chunk, "at-least-1"), ("--tensor-parallel-size", tensor_parallel_size, "at-least-1"),
                  ("--gpu-memory-utilization", gpu_memory_utilization, "fraction"),
                  ("--max-model-len", max_model_len, "at-least-1"), ("--max-inflight", max_inflight, "at-least-1"),
                  ("--request-timeout", request_timeout, "positive"))
    from er.sampling.interventions import Interventions, parse_budgets, parse_levels, parse_target
    from er.sampling.run import EngineOptions, sample
    from er.sampling.sampler import SampleOptions, parse_shard

    markers = tuple(m.encode().decode("unicode_escape") for m in mode_markers.split(","))
    if len(markers) != 2:
        from er.errors import UsageError

        raise UsageError("--mode-markers must be LONG,SHORT")
    iv = Interventions(budgets=parse_budgets(budgets), target=parse_target(target_length), target_style=target_style,
                       levels=parse_levels(level), mode=mode, mode_markers=markers, stop_scale=stop_scale,
                       think_end=think_end)
    from er.sampling.longctx import parse_options

    opt = SampleOptions(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                        logprobs=logprobs, logprobs_mode=logprobs_mode, chat=chat, system=system, interventions=iv,
                        longctx=parse_options(attention, context, memory))
    eng = EngineOptions(backend=backend, batch_size=batch_size, chunk=chunk, tensor_parallel_size=tensor_parallel_size,
                        gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, debug=debug)
    if server is not None:
        from er.sampling.server_client import ServerOptions

        eng.server = ServerOptions.parse(server, api, api_key_env, max_inflight, request_timeout)
    shard_t = parse_shard(shard)
    with stream("sample", inputs, output, format, rejects, max_line_bytes, quiet, kind="sample") as s:
        sample(s, model=model, opt=opt, eng=eng, watch=watch, loop=loop, limit=limit, skip=skip, shard=shard_t, dataset=dataset,
               split=split, preset=preset, progress=stderr_is_tty() and not quiet)
