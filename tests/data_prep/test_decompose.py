"""`er decompose`: Dataset Decomposition chunks and the VSL batch schedule (spec §1, worked numbers §1.5)."""

from __future__ import annotations

import random

import orjson
import pytest

from er.data.decompose import attention_cost, attention_pairs_per_step, curriculum_odds, pieces
from tests.helpers import jsonl, parse_jsonl, run_er


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    from er.tiny import build_tokenizer

    path = str(tmp_path_factory.mktemp("tok"))
    build_tokenizer(path)
    return path


def docs_with_ids(lengths, seed=0):
    rng = random.Random(seed)
    return [{"id": f"d{i}", "token_ids": [rng.randrange(500) for _ in range(n)]} for i, n in enumerate(lengths)]


# ---- the decomposition itself ------------------------------------------------------------------
def test_a_1000_token_document_gives_512_then_256_and_drops_232_tokens():
    assert pieces(1000, 8, 13) == ([(0, 9, 512), (512, 8, 256)], 232)


def test_apple_plus_one_cuts_513_then_257_and_drops_230():
    assert pieces(1000, 8, 13, shift=1) == ([(0, 9, 513), (513, 8, 257)], 230)


def test_a_20000_token_document_gives_two_max_chunks_then_the_binary_rest_and_drops_32():
    cut, rest = pieces(20000, 8, 13)
    assert [size for _, _, size in cut] == [8192, 8192, 2048, 1024, 512]
    assert [off for off, _, _ in cut] == [0, 8192, 16384, 18432, 19456]
    assert rest == 32


def test_random_pow2_overflow_keeps_power_of_two_pieces_and_accounts_for_every_token():
    rng = random.Random(0)
    for n in (8193, 20000, 50000, 123456):
        cut, rest = pieces(n, 8, 13, overflow="random-pow2", rng=rng)
        assert all(size == 1 << k and 8 <= k <= 13 for _, k, size in cut)
        assert sum(size for *_, size in cut) + rest == n and rest < 256
        assert [off for off, _, _ in cut] == [sum(s for *_, s in cut[:i]) for i in range(len(cut))]


def test_equal_token_mass_over_256_to_8192_costs_a_third_of_concat_and_chunk_at_8192():
    cost = attention_cost({i: 1 << 20 for i in range(8, 14)}, 8192)
    assert cost == pytest.approx(2689 / 8193, abs=1e-12)
    assert round(cost, 2) == 0.33 and abs(cost - 0.328) < 1e-3


def test_attention_pairs_per_step_match_the_spec_table_at_b_524288():
    b = 524288
    assert attention_pairs_per_step(8, b) == 67_371_008
    assert attention_pairs_per_step(11, b) == 537_133_056
    assert attention_pairs_per_step(13, b) == 2_147_745_792


def test_curricula_odds_shortest_bucket_first():
    assert curriculum_odds("grow-p2", 6) == [32, 16, 8, 4, 2, 1]
    assert curriculum_odds("grow-linear", 6) == [6, 5, 4, 3, 2, 1]
    assert curriculum_odds("uniform", 6) == [1] * 6
    assert curriculum_odds("grow-p100", 3) == [10000, 100, 1]
    assert curriculum_odds("3,2,1", 3) == [3, 2, 1]


# ---- the command -------------------------------------------------------------------------------
def test_chunks_are_contiguous_pieces_of_their_document_with_stats_record():
    docs = docs_with_ids([1000, 300, 100, 2500])
    p = run_er("decompose", "--max-len", "1024", "--stats", input=jsonl(docs), check=True)
    out = parse_jsonl(p.stdout)
    stats = out.pop()["stats"]
    by_id = {d["id"]: d["token_ids"] for d in docs}
    for r in out:
        assert r["token_ids"] == by_id[r["doc_id"]][r["offset"]:r["offset"] + (1 << r["bucket"])]
    assert [(r["doc_id"], r["bucket"], r["offset"]) for r in out] == [
        ("d0", 9, 0), ("d0", 8, 512), ("d1", 8, 0), ("d3", 10, 0), ("d3", 10, 1024), ("d3", 8, 2048)]
    assert stats["tokens_in"] == 3900 and stats["tokens_kept"] == 512 + 256 + 256 + 2048 + 256
    assert stats["chunks_per_bucket"] == {"256": 3, "512": 1, "1024": 2}
    assert stats["tokens_dropped_under_min_len"] == 232 + 44 + 100 + 196
    # Appendix F average context length of the 1000-token document alone is 212.8 (spec §1.5 A)
    one = parse_jsonl(run_er("decompose", "--stats", input=jsonl(docs[:1]), check=True).stdout)[-1]["stats"]
    assert one["avg_context_length"] == pytest.approx((512 * 511 / 2 + 256 * 255 / 2) / 768, abs=1e-6)
    assert "100 dropped" not in p.stderr.decode() and "1 dropped (document shorter than --min-len: 1)" in p.stderr.decode()


def test_equal_mass_corpus_reports_attention_cost_0_328_on_stderr_and_in_stats():
    lengths = [1 << i for i in range(8, 14) for _ in range(1 << (13 - i))]  # 8192 tokens per bucket
    p = run_er("decompose", "--stats", input=jsonl(docs_with_ids(lengths)), check=True)
    stats = parse_jsonl(p.stdout)[-1]["stats"]
    assert stats["attention_cost_vs_concat"] == pytest.approx(0.328207, abs=1e-6)
    assert "attention cost per step 0.328 of concat-and-chunk at 8192" in p.stderr.decode()


def test_text_is_tokenized_in_workers_with_the_same_bytes_as_in_process(tokenizer_dir):
    rng = random.Random(1)
    words = "the answer is sum add carry digit step so we get think".split()
    docs = [{"text": " ".join(rng.choices(words, k=rng.randint(50, 900)))} for _ in range(40)]
    a = run_er("decompose", "--tokenizer", tokenizer_dir, "--workers", "2", input=jsonl(docs), check=True)
    b = run_er("decompose", "--tokenizer", tokenizer_dir, "--workers", "0", input=jsonl(docs), check=True)
    assert a.stdout == b.stdout and a.stdout
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(f"{tokenizer_dir}/tokenizer.json")
    for r in parse_jsonl(a.stdout):  # doc_id is the document's index when it has no `id`
        ids = tok.encode(docs[r["doc_id"]]["text"], add_special_tokens=False).ids
        assert r["token_ids"] == ids[r["offset"]:r["offset"] + (1 << r["bucket"])]


def test_arrow_output_carries_the_same_chunks(tmp_path):
    import pyarrow as pa

    docs = docs_with_ids([700, 1500])
    out = tmp_path / "c.arrows"
    run_er("decompose", "--format", "arrow", "-o", str(out), input=jsonl(docs), check=True)
    rows = pa.ipc.open_stream(out.read_bytes()).read_all().to_pylist()
    j = parse_jsonl(run_er("decompose", input=jsonl(docs), check=True).stdout)
    assert rows == j


def test_memory_stays_flat_as_the_corpus_grows(tokenizer_dir, tmp_path):
    import os
    import subprocess

    from tests.helpers import ER

    rng = random.Random(2)
    words = "the answer is sum add carry digit step so we get think first then total".split()
    text = [" ".join(rng.choices(words, k=5000)) for _ in range(50)]  # ~1.5 MB of text

    def peak_rss_mb(copies: int) -> float:
        path = tmp_path / f"docs{copies}.jsonl"
        path.write_bytes(jsonl([{"text": t} for _ in range(copies) for t in text]))
        proc = subprocess.Popen([*ER, "decompose", str(path), "--tokenizer", tokenizer_dir, "--format", "arrow",
                                 "-o", str(tmp_path / "out.arrow"), "-q"], stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()
        proc.stderr.close()
        return usage.ru_maxrss / 1024

    # 12 MB and 48 MB of text: both past the first full Arrow batch (8 MB of token ids), after
    # which memory holds two tokenization windows and one batch, whatever the corpus size
    small, large = peak_rss_mb(8), peak_rss_mb(32)
    assert large < small * 1.2, (small, large)


# ---- the batch schedule ------------------------------------------------------------------------
def batches_of(records):
    steps: list[list[dict]] = []
    for r in records:
        if steps and steps[-1][0]["batch"] == r["batch"]:
            steps[-1].append(r)
        else:
            steps.append([r])
    return steps


def test_every_batch_holds_b_tokens_from_one_bucket_and_ids_are_consecutive():
    lengths = [random.Random(i).randint(200, 5000) for i in range(120)]
    p = run_er("decompose", "--batches", "--max-len", "2048", "--tokens-per-batch", "4096", "--seed", "3",
               "--curriculum", "grow-p2", "--cycles", "2", input=jsonl(docs_with_ids(lengths)), check=True)
    steps = batches_of(parse_jsonl(p.stdout))
    assert [s[0]["batch"] for s in steps] == list(range(len(steps)))
    for s in steps:
        assert len({r["bucket"] for r in s}) == 1
        assert sum(len(r["token_ids"]) for r in s) == 4096
        assert len(s) == 4096 >> s[0]["bucket"]


def test_batches_from_chunk_records_equal_batches_from_documents():
    docs = jsonl(docs_with_ids([random.Random(i).randint(200, 3000) for i in range(60)]))
    chunks = run_er("decompose", "--max-len", "1024", input=docs, check=True).stdout
    flags = ("--batches", "--max-len", "1024", "--tokens-per-batch", "2048", "--seed", "5")
    a = run_er("decompose", *flags, input=chunks, check=True)
    b = run_er("decompose", *flags, input=docs, check=True)
    assert a.stdout == b.stdout
    assert a.stdout == run_er("decompose", *flags, input=chunks, check=True).stdout  # same seed, same bytes
    # chunk input: in == out + dropped (chunks in partial batches)
    err = a.stderr.decode()
    n_in = len(parse_jsonl(chunks))
    n_out = len(parse_jsonl(a.stdout))
    dropped = int(err.split(" dropped (")[0].rsplit("; ", 1)[1]) if " dropped (" in err else 0
    assert n_in == n_out + dropped


def test_uniform_with_equal_buckets_uses_every_batch_and_grow_p2_starts_short():
    lengths = [256] * 64 + [512] * 32 + [1024] * 16  # 16384 tokens per bucket, 8 batches of 2048 each
    docs = jsonl(docs_with_ids(lengths))
    common = ("--batches", "--max-len", "1024", "--tokens-per-batch", "2048", "--seed", "0", "--stats")
    uni = parse_jsonl(run_er("decompose", *common, "--curriculum", "uniform", input=docs, check=True).stdout)[-1]["stats"]
    assert uni["steps_per_bucket"] == {"256": 8, "512": 8, "1024": 8}
    assert uni["attention_cost_per_step_vs_concat"] == pytest.approx((257 + 513 + 1025) / 3 / 1025, abs=1e-9)
    grow = parse_jsonl(run_er("decompose", *common, "--curriculum", "grow-p100", input=docs, check=True).stdout)[-1]["stats"]
    assert grow["mean_length_by_decile"][0] < 400 and grow["mean_length_by_decile"][-1] == 1024


def test_paper_and_code_weighting_differ_on_unequal_buckets():
    lengths = [256] * 160 + [1024] * 8
    docs = jsonl(docs_with_ids(lengths))
    common = ("--batches", "--max-len", "1024", "--tokens-per-batch", "1024", "--seed", "0", "--curriculum", "uniform")
    code = parse_jsonl(run_er("decompose", *common, input=docs, check=True).stdout)
    paper = parse_jsonl(run_er("decompose", *common, "--weighting", "paper", input=docs, check=True).stdout)
    long_steps = lambda rs: [s[0]["batch"] for s in batches_of(rs) if s[0]["bucket"] == 10]  # noqa: E731
    # paper: odds only, the 8 long batches come early on average; code: spread over all 48 steps
    assert sum(long_steps(paper)) / 8 < sum(long_steps(code)) / 8


# ---- bad input ---------------------------------------------------------------------------------
def test_a_document_without_text_or_token_ids_is_an_error_at_its_line():
    p = run_er("decompose", input=jsonl([{"token_ids": [1] * 300}, {"body": "x"}]))
    assert p.returncode == 1 and "<stdin>:2:" in p.stderr.decode() and "neither 'text'" in p.stderr.decode()


def test_rejects_keeps_going_past_bad_rows(tmp_path):
    rej = tmp_path / "rej.jsonl"
    p = run_er("decompose", "--rejects", str(rej), input=jsonl([{"body": "x"}, {"token_ids": [1] * 300}, {"token_ids": "ab"}]))
    assert p.returncode == 0 and len(parse_jsonl(p.stdout)) == 1
    assert [r["line"] for r in parse_jsonl(rej.read_bytes())] == [1, 3]


def test_empty_documents_are_dropped_and_counted(tokenizer_dir):
    p = run_er("decompose", "--tokenizer", tokenizer_dir, input=jsonl([{"text": ""}, {"token_ids": []}]), check=True)
    assert p.stdout == b"" and "2 dropped (empty document: 2)" in p.stderr.decode()


def test_missing_tokenizer_path_is_a_usage_error():
    p = run_er("decompose", "--tokenizer", "/nonexistent/tok", input=jsonl([{"text": "a b"}]))
    assert p.returncode == 2 and "--tokenizer /nonexistent/tok: no such file" in p.stderr.decode()


def test_text_without_a_tokenizer_is_a_data_error():
    p = run_er("decompose", input=jsonl([{"text": "a b"}]))
    assert p.returncode == 1 and "no --tokenizer" in p.stderr.decode()


@pytest.mark.parametrize("flags, message", [
    (("--min-len", "300"), "--min-len must be a power of two"),
    (("--min-len", "1024", "--max-len", "512"), "--min-len 1024 is greater than --max-len 512"),
    (("--batches", "--tokens-per-batch", "1000"), "must be a positive multiple of --max-len"),
])
def test_bad_lengths_are_usage_errors(flags, message):
    p = run_er("decompose", *flags, input=jsonl([{"token_ids": [1] * 300}]))
    assert p.returncode == 2 and message in p.stderr.decode()


def test_unknown_curriculum_suggests_the_closest_name():
    p = run_er("decompose", "--batches", "--curriculum", "grow-p3", input=jsonl([{"token_ids": [1] * 300}]))
    assert p.returncode == 2 and "Did you mean 'grow-p2'" in p.stderr.decode()


def test_stats_with_arrow_output_is_refused():
    assert run_er("decompose", "--stats", "--format", "arrow", input=b"").returncode == 2


def test_stats_record_is_valid_json_and_last():
    p = run_er("decompose", "--stats", input=jsonl(docs_with_ids([256])), check=True)
    assert set(orjson.loads(p.stdout.splitlines()[-1])) == {"stats"}


def test_doc_id_comes_from_doc_id_then_id_then_the_document_index():
    docs = [{"doc_id": "a", "id": "x", "token_ids": [1] * 256}, {"id": "b", "token_ids": [1] * 256}, {"token_ids": [1] * 256}]
    out = parse_jsonl(run_er("decompose", input=jsonl(docs), check=True).stdout)
    assert [r["doc_id"] for r in out] == ["a", "b", 2]
