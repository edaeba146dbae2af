"""Turning records into token ids for training (and the one prompt encoder `er sample` shares).

`encode_prompt(tokenizer, prompt)` is THE prompt encoding of `er`: what a chat model expects to see
before its first generated token.

- a string prompt: plain tokenisation, `tokenizer(prompt)["input_ids"]` (special tokens added the way
  the tokenizer adds them by default, e.g. a BOS for Llama, nothing for Qwen), which is what
  `model.generate` and vLLM do with a plain string;
- a message list `[{role, content}, ...]`: `tokenizer.apply_chat_template(messages,
  add_generation_prompt=True, tokenize=True)`, i.e. the chat prompt ending with the assistant header.

Records from `er sample` carry `prompt_token_ids`, the exact context the completion was drawn from
(chat template, system turn, intervention text and prefill included); `er update` trains on those ids
and only encodes `prompt` itself for records that lack them (SFT data, completions from elsewhere).

`encode_completion(tokenizer, record)` gives the completion ids: the record's `token_ids` when present
(what the sampler actually generated, EOS included if it kept it), else `completion` tokenised without
special tokens, plus the EOS token when the text does not end with it, unless
`finish_reason == "length"` (a truncated sample never stopped) or the record is a Dataset-Decomposition
chunk (`bucket` present: a contiguous piece of a document, no end of sequence).
"""

from __future__ import annotations

from typing import Any

from er.errors import ErError


def encode_prompt(tokenizer: Any, prompt: Any) -> list[int]:
    """Token ids of a prompt: plain tokenisation for a string, the chat template for a message list."""
    if prompt is None or prompt == "":
        return []
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    if isinstance(prompt, list):
        for m in prompt:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ErError("field 'prompt' is a list but not of {role, content} messages")
        if getattr(tokenizer, "chat_template", None) is None:
            raise ErError("prompt is a message list but the tokenizer has no chat template")
        out = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        if hasattr(out, "keys") and "input_ids" in out:
            out = out["input_ids"]
        if out and isinstance(out[0], list):  # a batch of one
            out = out[0]
        return [int(t) for t in out]
    raise ErError(f"field 'prompt' should be a string or a list of messages, got {type(prompt).__name__}")


def encode_completion(tokenizer: Any, record: dict) -> list[int]:
    """Completion token ids: `token_ids` when present, else the tokenised `completion` (+ EOS, see module doc)."""
    ids = record.get("token_ids")
    if ids is not None:
        if not isinstance(ids, list) or not all(type(t) is int for t in ids):
            raise ErError("field 'token_ids' should be a list of integers")
        return list(ids)
    text = record.get("completion")
    if text is None:
        raise ErError("missing field 'completion' (and no 'token_ids')")
    if not isinstance(text, str):
        raise ErError(f"field 'completion' should be a string, got {type(text).__name__}")
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id
    if (eos is not None and record.get("finish_reason") != "length" and "bucket" not in record
            and (not ids or ids[-1] != eos)):
        ids.append(int(eos))
    return ids
