"""A prompt record's fixed context: the `context` field holds a document, `prompt` the question about it.

The context is placed before the question: a string prompt becomes `context + "\\n\\n" + prompt`, a message
list gets it at the start of its first user message, unless the prompt already holds the context text
(the L-Eval and LCFO presets write the document into the prompt and name it in `context`), which is then
left as it is. The rendered prompt (chat template included) is tokenized in two parts, up to the end of the
context and the rest, so every question about a document starts with the same token ids; `context_len`,
the length of the first part, tells Squeezed Attention (er.sampling.longctx.squeezed) which keys are the
fixed context. Caveat: a tokenizer that prefixes a space to every encoded text (SentencePiece's dummy
prefix) adds one at that cut.
"""

from __future__ import annotations

from er.errors import ErError

SEPARATOR = "\n\n"


def place(record: dict) -> tuple[dict, str | None]:
    """(the record as it is to be rendered, the context text or None)."""
    context = record.get("context")
    if context is None or context == "":
        return record, None
    if not isinstance(context, str):
        raise ErError(f"field 'context' should be a string (the fixed document), got {type(context).__name__}")
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return (record if context in prompt else {**record, "prompt": context + SEPARATOR + prompt}), context
    if isinstance(prompt, list):
        if any(isinstance(m, dict) and isinstance(m.get("content"), str) and context in m["content"] for m in prompt):
            return record, context
        messages = [dict(m) if isinstance(m, dict) else m for m in prompt]
        for m in messages:
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
                m["content"] = context + SEPARATOR + m["content"]
                break
        else:
            raise ErError("field 'context' needs a user message in 'prompt' to be placed before")
        return {**record, "prompt": messages}, context
    return record, None  # the renderer reports the bad prompt


def encode(tokenizer, text: str, context: str | None, add_special_tokens: bool) -> tuple[list[int], int | None]:
    """(prompt ids, context_len): the text up to the end of the context and the rest, tokenized apart."""
    at = text.find(context) if context else -1
    if at < 0:
        return tokenizer.encode(text, add_special_tokens=add_special_tokens), None
    end = at + len(context)
    head = tokenizer.encode(text[:end], add_special_tokens=add_special_tokens)
    return head + tokenizer.encode(text[end:], add_special_tokens=False), len(head)
