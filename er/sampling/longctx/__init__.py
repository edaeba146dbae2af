"""Long inputs and long outputs for `er sample` (transformers backend only).

- lambda_attention: LM-Infinite's Λ-shaped attention with a distance limit (Han et al., NAACL 2024,
  arXiv 2308.16137), registered as a transformers attention function, with a bounded KV cache and
  chunked prefill (`--attention lambda[:global=N,local=M,dist=D,chunk=C]`);
- squeezed: Squeezed Attention (Hooper, Kim et al., arXiv 2411.09688, ACL 2025): a fixed context's keys
  clustered once, each question attending to the clusters that pass a calibrated threshold
  (`--attention squeezed[:clusters=0.05,threshold=q0.9,window=100,levels=1|2]`);
- xl3m: XL3M's segment-wise certainty-based key-context selection (Wang et al., arXiv 2405.17755;
  reconstructed) (`--context xl3m[:segment=S,question=Q,keep=K,score=entropy|nll]`);
- sirllm: SirLLM's token-surprisal memory with per-turn decay for multi-turn chats (Yao et al., arXiv
  2405.12528) (`--memory sirllm[:keep=K,decay=d,start=S,recent=R]`).

`parse_options` turns the three flag values into one `LongContext` object the sampler and the
transformers backend read; the vLLM backend refuses them (usage error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from er.errors import UsageError
from er.params import bind_params, parse_spec


@dataclass
class LongContext:
    attention: Any = None  # LambdaAttention or Squeezed
    context: Any = None  # XL3M
    memory: Any = None  # SirLLM

    def any(self) -> bool:
        return any(x is not None for x in (self.attention, self.context, self.memory))

    def flags(self) -> list[str]:
        return [f for f, v in (("--attention", self.attention), ("--context", self.context),
                               ("--memory", self.memory)) if v is not None]

    def describe(self) -> dict:
        """What goes into each sample record's `sampling.long_context`."""
        out = {}
        for name, v in (("attention", self.attention), ("context", self.context), ("memory", self.memory)):
            if v is not None:
                out[name] = v.describe()
        return out


def _bind(flag: str, text: str, expected: str, cls, rename: dict[str, str] | None = None):
    name, params = parse_spec(text)
    if name != expected:
        raise UsageError(f"{flag}: unknown method {name!r}; methods: {expected}")
    rename = rename or {}
    accepted = set(rename) | {k for k in _init_params(cls) if k not in rename.values()}
    for key in params:
        if key not in accepted:
            raise UsageError(f"{flag} {expected}: unknown parameter {key!r}; parameters: {', '.join(sorted(accepted))}")
    return bind_params(cls, {rename.get(k, k): v for k, v in params.items()}, f"{flag} {expected}")


def _init_params(cls) -> list[str]:
    import inspect

    return [n for n in inspect.signature(cls).parameters]


def parse_options(attention: str | None, context: str | None, memory: str | None) -> LongContext:
    lc = LongContext()
    if attention and parse_spec(attention)[0] not in ("lambda", "squeezed"):
        raise UsageError(f"--attention: unknown method {parse_spec(attention)[0]!r}; methods: lambda, squeezed")
    if attention and parse_spec(attention)[0] == "squeezed":
        from er.sampling.longctx.squeezed import Squeezed

        lc.attention = _bind("--attention", attention, "squeezed", Squeezed)
    elif attention:
        from er.sampling.longctx.lambda_attention import LambdaAttention

        lc.attention = _bind("--attention", attention, "lambda", LambdaAttention,
                             {"global": "n_global", "local": "n_local"})
    if context:
        from er.sampling.longctx.xl3m import XL3M

        lc.context = _bind("--context", context, "xl3m", XL3M)
    if memory:
        from er.sampling.longctx.sirllm import SirLLM

        lc.memory = _bind("--memory", memory, "sirllm", SirLLM)
    if lc.attention is not None and lc.memory is not None:
        raise UsageError(f"--attention {parse_spec(attention)[0]} and --memory sirllm both manage the KV cache; use one")
    if lc.context is not None and getattr(lc.attention, "per_prompt", False):
        raise UsageError("--attention squeezed needs the prompt's fixed context as it is and --context xl3m rewrites it; use one")
    if lc.context is not None and lc.memory is not None:
        raise UsageError("--context xl3m rewrites the prompt and --memory sirllm needs its chat turns; use one")
    return lc
