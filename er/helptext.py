"""What `--help` and the man pages say beyond each command's docstring: the fields a command reads and
writes, and metavars that say what to type (`FILE`, `N`, `NAME[:KEY=VALUE,...]`) instead of Python types.

Kept in one table so one idea has one spelling across commands (DESIGN.md, Records).
"""

from __future__ import annotations

# command -> (required fields read, optional fields read, fields written)
FIELDS: dict[str, tuple[str, str, str]] = {
    "sample": ("id, prompt (string or [{role, content}])",
               "answer, budget, target_length, level, system; any other field passes through",
               "group_id, sample_idx, group_size, completion, completion_tokens, think_tokens, prompt_tokens, "
               "prompt_token_ids, finish_reason, policy {model, step}, sampling {temperature, top_p, max_tokens, "
               "seed}; with --logprobs token_ids, logprobs; with interventions budget, target_length, level, mode, "
               "prefix"),
    "score": ("completion, group_id, group_size",
              "answer (correctness rewards), completion_tokens (length rewards), budget, target_length, level, "
              "mode, rewards (kept and extended)",
              "rewards {name: number or null}, reward, correct"),
    "advantage": ("reward (or rewards), group_id, group_size",
                  "budget (HBPO), mode, correct, completion_tokens",
                  "advantage, estimator (DRPO also drpo_weight, drpo_negative; with --dynamic-sampling "
                  "dropped_groups)"),
    "update": ("prompt or prompt_token_ids, completion or token_ids, advantage (policy-gradient losses)",
               "logprobs (behaviour log-probs: off-policy correction), policy.step, sampling.temperature, mode, "
               "drpo_weight, drpo_negative; for the metrics reward, rewards, correct, finish_reason, think_tokens, "
               "dropped_groups",
               "metrics records on stdout: step, loss, kl, clip_frac, entropy, grad_norm, lr, tokens, samples, "
               "checkpoint, seconds, and the rows' reward, accuracy, length, truncation and policy lag "
               "(`er schema metrics`); checkpoints DIR/step-N"),
    "merge": ("none (reads model directories)", "none", "a merged model directory"),
    "decompose": ("text or token_ids", "doc_id (else id); other fields pass through",
                  "doc_id, bucket, offset, token_ids (with --batches: batch records)"),
    "synth-tail": ("none (generates)", "none", "id, prompt, answer, task, class, length; with --with-trace "
                   "completion, trace_chars, trace_steps"),
    "eval": ("correct (or --reward and answer), completion_tokens",
             "think_tokens, group_id (else id), policy.model, dataset, finish_reason, sampling.max_tokens, "
             "rewards, completion (maj@k), prompt_tokens (--by length_bin), any --by field",
             "report records (`er schema report`)"),
    "plot": ("metrics records (step, loss) or reports with a step (accuracy, mean_tokens)",
             "completion_tokens_mean, accuracy, reward_mean, truncated_frac, kl, entropy, clip_frac, grad_norm, "
             "policy_lag_mean; truncation_rate of reports",
             "a figure (PNG, SVG or PDF)"),
    "schema": ("none", "none", "a JSON Schema on stdout"),
    "validate": ("the fields --kind requires (`er schema KIND`)", "none", "nothing on success; one line per bad row"),
    "serve": ("no records (a model directory)", "none", "the server's URL on stdout once it answers; vLLM's log on stderr"),
}

# option name (click's `name`) -> metavar; types not named here get N (int), NUM (float), or their own name
METAVARS: dict[str, str] = {
    "inputs": "FILE", "output": "FILE", "rejects": "FILE", "state": "FILE", "plot": "FILE",
    "reward": "NAME[:KEY=VALUE,...]", "estimator": "NAME[:KEY=VALUE,...]", "model": "MODEL", "out": "DIR",
    "watch": "DIR", "resume": "DIR", "tokenizer": "NAME|DIR", "seed": "N", "n": "N", "k": "K[,K...]",
    "maj": "K[,K...]", "budgets": "B[,B...]", "by": "FIELD[,FIELD...]", "shard": "I/N", "max_line_bytes": "BYTES",
    "timeout": "SECONDS", "workers": "N", "kind": "KIND", "format": "jsonl|arrow", "dataset": "NAME|FILE",
    "preset": "NAME", "baseline": "RUN", "think_end": "TEXT", "system": "TEXT", "combine": "sum|product",
    "metric": "NAME", "extract": "NAME", "loss": "NAME", "base": "DIR", "tuned": "DIR", "tmpdir": "DIR",
    "emotion_tables": "DIR", "ref_model": "MODEL", "task": "NAME[,NAME...]", "split": "NAME", "backend": "NAME",
    "device": "DEVICE", "gamed": "NAME", "title": "TEXT",
}


def fields_epilog(command: str) -> str:
    """The `Reads:` / `Writes:` paragraph of a command's help ('' for an unknown command)."""
    if command not in FIELDS:
        return ""
    required, optional, writes = FIELDS[command]
    return f"Reads: {required}. Optional: {optional}.\n\nWrites: {writes}."


def set_metavars(command) -> None:
    """Give every option and argument of a click command a metavar that says what to type."""
    for p in command.params:
        if p.metavar is not None or getattr(p, "is_flag", False):
            continue
        kind = p.bare_type().removeprefix("list[").removesuffix("]") if hasattr(p, "bare_type") else ""
        if p.name in METAVARS:
            p.metavar = METAVARS[p.name]
        elif kind == "int":
            p.metavar = "N"
        elif kind == "float":
            p.metavar = "NUM"
        else:
            p.metavar = p.name.upper().replace("_", "-")
        if p.param_type_name == "argument":
            p.display_type_rich = lambda ctx: None  # the metavar says it; no Python type after it


# man page sections (er.manpages); the pipelines are the README's
PIPELINE = ("er sample -m ckpt/latest prompts.jsonl -n 8 | er score --reward dler \\\n"
            "  | er advantage | er update -m ckpt/latest --out ckpt")
STREAMING = ("er sample --watch ckpt --loop prompts.jsonl -n 8 --logprobs \\\n"
             "  | er score --reward tail:weight=0 --reward dler:L_T=48 \\\n"
             "  | er advantage --estimator batch --dynamic-sampling \\\n"
             "  | er update -m examples/tiny-reasoner --out ckpt --loss grpo --clip-high 0.28")
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "er": [("One step-wise RL step: sample, score, advantages, update.", PIPELINE),
           ("Streaming RL: the sampler reloads each checkpoint the learner writes.", STREAMING),
           ("Evaluate: accuracy and length side by side, as a Markdown table.",
            "er sample -m ckpt/latest --preset math500 -n 4 | er score --reward math | er eval --format md")],
    "sample": [("Eight samples per prompt, with behaviour log-probs.", "er sample -m MODEL prompts.jsonl -n 8 --logprobs > samples.jsonl"),
               ("One RL step.", PIPELINE)],
    "score": [("Correctness and DLER's length penalty, summed.", "er score --reward math --reward dler samples.jsonl > scored.jsonl"),
              ("List the rewards.", "er score --list")],
    "advantage": [("GRPO group advantages.", "er advantage --estimator grpo scored.jsonl > advantaged.jsonl"), ("One RL step.", PIPELINE)],
    "update": [("One RL step.", PIPELINE), ("Streaming RL.", STREAMING)],
    "merge": [("Keep the largest quarter of the update.", "er merge --base BASE --tuned ckpt/latest --out merged --top-frac 0.25")],
    "decompose": [("Power-of-two chunks of tokenized documents.", "er decompose --tokenizer MODEL docs.jsonl > chunks.jsonl")],
    "synth-tail": [("100 problems per task with concise traces.", "er synth-tail -n 100 --with-trace --style concise > tail.jsonl")],
    "eval": [("Score and evaluate, with a figure.", "er score --reward math samples.jsonl | er eval --plot eval.png"),
             ("Compare a trained run against its base: length change, accuracy delta, AES.",
              "er eval --compare base.jsonl trained.jsonl --baseline base.jsonl --format md")],
    "plot": [("Watch a run: redraw its curves while it trains.",
              "er update -m MODEL --out ckpt scored.jsonl > metrics.jsonl & er plot metrics.jsonl --smooth 0.6 -o run.png"),
             ("Two runs overlaid, the first with its held-out evaluations.",
              "er plot dler/metrics.jsonl dler/heldout.jsonl grpo/metrics.jsonl -o runs.svg")],
    "schema": [("The report record's fields.", "er schema report")],
    "validate": [("Check a sample stream.", "er validate --kind sample samples.jsonl")],
    "serve": [("Serve the newest checkpoint; samplers move it forward in place.",
               "er serve -m ckpt/latest --port 8000 &\n"
               "er sample --server http://127.0.0.1:8000 -m ckpt/latest prompts.jsonl -n 8 --logprobs"),
              ("One server per GPU node, reachable from the other nodes (private network only).",
               "er serve -m ckpt/latest --host 0.0.0.0 -- --data-parallel-size 8")],
}

EXIT_STATUS = [("0", "success; also when a downstream pipe closes early (`| head`)"),
               ("1", "bad data: the first bad row, as `er CMD: FILE:LINE: message` (validate: any invalid row)"),
               ("2", "bad usage: an unknown flag, name or value"),
               ("130", "interrupted (Ctrl-C)"), ("143", "terminated (SIGTERM)")]

ENVIRONMENT = [("HF_HUB_OFFLINE", "1: never download; models and datasets come from local paths or the cache"),
               ("HF_HOME", "the Hugging Face cache (models, tokenizers, datasets)"),
               ("COLUMNS", "the width `--help` wraps at"),
               ("CUDA_VISIBLE_DEVICES", "the GPUs `er sample` and `er update` may use"),
               ("RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT",
                "set by `torchrun` / `accelerate launch`: `er update` trains distributed, rank 0 reads the stream")]

FILES = [("FILE.jsonl, FILE.arrow, FILE.parquet (.gz, .zst)", "record streams read and written (stdin/stdout by default); a datasets save_to_disk directory is read too"),
         ("--rejects FILE", "bad rows kept aside as {source, line, error, record}"),
         ("DIR/step-N, DIR/latest", "`er update` checkpoints: Hugging Face save_pretrained directories; latest is a relative symlink to the newest"),
         ("--state FILE", "`er score`: the history of stateful rewards (HAPO)"),
         ("er/schemas/*.json", "the record schemas, shipped in the package (`er schema KIND`)")]
