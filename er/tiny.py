"""A tiny Qwen2-style model and BPE tokenizer built locally (nothing is downloaded).

Used by the tests, the benchmarks and the demo: `build_tiny(path)` trains a byte-level BPE tokenizer
in-process with `tokenizers` on a small corpus (digits, arithmetic, the think/answer markup) and
writes a randomly initialised Qwen2 causal LM of about 0.3 M parameters beside it, as a Hugging Face
`save_pretrained` directory that transformers and vLLM load as they are.
"""

from __future__ import annotations

import os
from typing import Iterable

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|pad|>"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def default_corpus() -> list[str]:
    """Text covering what the tiny model will read and write: numbers, operators, markup, words."""
    import random

    rng = random.Random(0)
    words = ("the answer is sum add carry digit step so we get think first then total result "
             "question compute what of and plus minus times equals final boxed short long").split()
    lines = []
    for _ in range(3000):
        a, b = rng.randint(0, 9999), rng.randint(0, 9999)
        lines.append(f"{a} + {b} = {a + b}. {' '.join(rng.choices(words, k=6))} \\boxed{{{a + b}}}")
        lines.append(f"<think> {a} {b} {rng.choice(words)} </think> {a * b % 1000} - {b} * {a}")
    return lines


def build_tokenizer(path: str, corpus: Iterable[str] | None = None, vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    # Digits are single tokens (as in LLaMA/Qwen tokenizers): arithmetic is learnable digit by digit.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(corpus or default_corpus()), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>",
                                   bos_token=None, unk_token=None, padding_side="left")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return fast


def build_tiny(path: str, *, seed: int = 0, hidden_size: int = 96, layers: int = 2, heads: int = 3,
               kv_heads: int = 1, intermediate_size: int = 256, max_positions: int = 2048,
               corpus: Iterable[str] | None = None, vocab_size: int = 512) -> str:
    """Write a tiny Qwen2 model + tokenizer to `path` (created) and return `path`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    os.makedirs(path, exist_ok=True)
    tokenizer = build_tokenizer(path, corpus, vocab_size)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    return path
