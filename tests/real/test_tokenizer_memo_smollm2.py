"""The tokenizer memo on a real checkpoint (49k vocabulary, a ChatML template): a second process gets
AutoTokenizer's very tokenizer without importing torch or the Auto machinery."""

from __future__ import annotations

from tests.test_tokenizer_memo import entries, probe


def test_smollm2_through_the_memo_is_autotokenizers_tokenizer_without_torch(real_model, tmp_path):
    cache = str(tmp_path / "cache")
    first = probe(real_model, cache)
    assert "torch" in first.pop("heavy")
    assert len(entries(cache)) == 1
    second = probe(real_model, cache)
    assert second.pop("heavy") == []
    assert second == first
    assert first["rendered"].startswith("<|im_start|>system") and len(first["ids"]) > 10
