"""er decompose: cut documents into power-of-two chunks (Dataset Decomposition) or plan VSL batches."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from er.commands._common import Debug, Format, Inputs, MaxLineBytes, Output, Quiet, Rejects, Seed, stream
from er.io import DEFAULT_MAX_LINE_BYTES


def run(
    inputs: Inputs = None,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Fast tokenizer: a save_pretrained directory or a tokenizer.json (needed for `text` records).")] = None,
    min_len: Annotated[int, typer.Option("--min-len", help="Shortest chunk (power of two); shorter tail pieces are dropped and counted.")] = 256,
    max_len: Annotated[int, typer.Option("--max-len", help="Longest chunk (power of two); longer documents give several max-length chunks.")] = 8192,
    overflow: Annotated[str, typer.Option(help="Documents over --max-len: split-max (paper/OLMo-core) or random-pow2 (Apple randomize, P(k) ∝ 2^(max-k)).")] = "split-max",
    target_shift: Annotated[str, typer.Option(help="exact: chunks of 2^k tokens (OLMo-core); plus-one: 2^k+1 (Apple: inputs and targets both 2^k).")] = "exact",
    append_eos: Annotated[Optional[str], typer.Option("--append-eos", help="Append this token (e.g. '<|endoftext|>', as Apple does) to every document before cutting.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Tokenizer worker processes, sharing the cores between their Rust threads. 0 = in this process, one window ahead in a thread (default below 8 cores; else one worker per 4 cores).")] = None,
    batches: Annotated[bool, typer.Option("--batches", help="Write a batch schedule (records with `batch`, consecutive rows of a batch = one step) instead of chunks.")] = False,
    tokens_per_batch: Annotated[int, typer.Option("--tokens-per-batch", help="b: tokens per step; a step from bucket i holds b/2^i sequences. A multiple of --max-len.")] = 65536,
    curriculum: Annotated[str, typer.Option(help="Bucket odds, shortest first: uniform, grow-linear, grow-p2, grow-p100 (reconstructed odds 100^(K-1-j)), or a comma list.")] = "grow-p2",
    cycles: Annotated[int, typer.Option(help="Curriculum cycles c: each bucket's batches are split into c parts, one per cycle.")] = 1,
    weighting: Annotated[str, typer.Option(help="code: P(bucket) ∝ odds × batches left at cycle start (official code, default); paper: ∝ odds (Algorithm 1).")] = "code",
    shuffle: Annotated[bool, typer.Option(help="Shuffle sequences within each bucket (seeded).")] = True,
    tmpdir: Annotated[Optional[str], typer.Option(help="Where --batches spills per-bucket chunk files (default: the system temp dir).")] = None,
    stats: Annotated[bool, typer.Option("--stats", help="Also write the statistics as a final record {\"stats\": {...}} (JSONL only).")] = False,
    seed: Seed = None,
    output: Output = None,
    format: Format = "jsonl",
    rejects: Rejects = None,
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Decompose documents (`text` or `token_ids`) into chunks of 2^i tokens: `doc_id`, `bucket`, `offset`, `token_ids`.

    `doc_id` is the record's `doc_id`, else its `id`, else the document's index in the input.

    Binary decomposition of each document's length, largest piece first (Pouransari et al. 2024).
    With --batches: a variable-sequence-length schedule of b-token steps drawn from the buckets by
    the curriculum (input: documents or chunk records). Statistics go to stderr (and --stats).
    """
    from er.errors import UsageError

    if stats and format != "jsonl":
        raise UsageError("--stats writes a differently shaped final record; use --format jsonl "
                         "(the statistics are on stderr either way)")
    from er.data.decompose import BatchSchedule, Decomposer
    from er.io import log
    from er.data.decompose import default_tokenizer_workers
    from er.flagcheck import check_numbers

    check_numbers(("--workers", workers, "non-negative"), ("--tokens-per-batch", tokens_per_batch, "at-least-1"),
                  ("--cycles", cycles, "at-least-1"))

    with stream("decompose", inputs, output, format, rejects, max_line_bytes, quiet, progress=not quiet) as s:
        d = Decomposer(s, tokenizer=tokenizer, min_len=min_len, max_len=max_len, overflow=overflow,
                       target_shift=target_shift, append_eos=append_eos, seed=seed,
                       workers=default_tokenizer_workers() if workers is None else workers)
        if batches:
            schedule = BatchSchedule(d, tokens_per_batch=tokens_per_batch, curriculum=curriculum, cycles=cycles,
                                     seed=seed, weighting=weighting, shuffle=shuffle, tmpdir=tmpdir)
            records = schedule.batches()
        else:
            records = d.records()
        for group in records:
            s.write_many(group)
            s.end_group()
        if stats:
            s.writer.write({"stats": d.stats.record()})
        if not quiet:
            for line in d.stats.lines():
                log(f"er decompose: {line}")
