"""What every sampling backend takes and returns (transformers: er.sampling.hf, vLLM: er.sampling.vllm).

A `Request` is one prompt (token ids) to complete `n` times; sample k uses the seed `seed + k`
(vLLM's convention for n > 1), so a sample's randomness depends only on its own seed, not on the
batch it ran in. `Completion.token_ids` includes the stop token when `finish_reason == "stop"` (it is
generated, trained on and counted); `logprobs[i]` is the behaviour log-prob of `token_ids[i]`.

Log-prob modes (`--logprobs-mode`, vLLM's names): `processed` (default) = log of the probability the
token was actually drawn with, after the stop-scale logits processor, temperature and top-p
renormalisation (greedy: no temperature); `raw` = log_softmax of the model's logits (temperature 1,
no processors). With temperature 1, top-p 1 and no stop scaling the two agree and equal a
teacher-forced forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StopScale:
    """reconstructed TS: add `bias` = ln F to the logit of `token` while thinking is open."""

    token: int
    bias: float
    think_end: int | None  # generating this token closes the thinking phase (None: never closes)
    closed: bool = False  # the prompt already closed thinking (e.g. a short-mode prefill)


@dataclass
class Request:
    prompt_ids: list[int]
    n: int
    max_tokens: int
    seed: int | None
    stop_ids: list[int] = field(default_factory=list)  # extra stop tokens besides EOS
    stop_scale: StopScale | None = None
    turns: list[int] | None = None  # tokens per chat turn (SirLLM, er.sampling.longctx); None = one turn
    context_len: int | None = None  # prompt_ids[:context_len] is the record's fixed context (Squeezed Attention)


@dataclass
class Completion:
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"
    logprobs: list[float] | None = None
    server: str | None = None  # the URL that sampled it (er.sampling.server_client); None in process
    info: dict | None = None  # per-sample long-context facts for the record's `long_context` (Squeezed Attention)


@dataclass
class SamplingConfig:
    temperature: float = 1.0
    top_p: float = 1.0
    logprobs: bool = False
    logprobs_mode: str = "processed"
