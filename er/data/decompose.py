"""Dataset Decomposition (DD): power-of-two chunks and a variable-sequence-length batch schedule.

Paper: Pouransari et al., "Dataset Decomposition: Faster LLM Training with Variable Sequence Length
Curriculum", NeurIPS 2024, arXiv:2405.13226; official code apple/ml-dataset-decomposition (9a23939),
third-party OLMo-core `NumpyVSLDataset` (specs/data-and-long-context.md §1).

Decomposition (paper §2, both codebases cut largest first): a document of l tokens is written in
binary, l = 2^{i_1} + ... + 2^{i_k} (i_1 > ... > i_k), and cut into adjacent pieces of those lengths
from its start; piece 2^i goes to bucket D_i. Pieces under 2^{i_min} (`--min-len`, default 256) are
dropped — since pieces shrink, they form the document's tail — and counted. Longer than 2^{i_max}
(`--max-len`, default 8192):
- `split-max` (default; paper/OLMo-core `capped_powers_of_2`): floor(l / 2^{i_max}) max pieces first,
  then the binary decomposition of the rest;
- `random-pow2` (Apple `randomize=True`): while the rest is longer than 2^{i_max}, cut 2^k with
  P(k) ∝ 2^{i_max-k} over i_min..i_max (equal expected token mass per bucket).
`target_shift="plus-one"` is Apple's off-by-one: pieces hold 2^k + 1 tokens (inputs and targets both
2^k long), k = floor(log2(r - 1)); `exact` (default, OLMo-core) holds 2^k.

Batch schedule (paper Algorithm 1 / Apple get_dd_params + OpenLM patch): every step holds b tokens,
b / 2^i sequences from one bucket D_i. Each bucket's full batches are split into c equal parts
(cycles); within a cycle a bucket is drawn with probability

    code  (default): p_i ∝ o_i · N_{i,c}   (N_{i,c} = bucket i's batches in this cycle, fixed for
                                             the cycle; an exhausted bucket drops out: RandomMix(longest=True))
    paper:           p_i ∝ o_i              (Algorithm 1, among non-empty buckets)

We default to the code's weighting because it is what produced the reported results (the recipe and
README numbers, spec §1.5 D), and because with a natural mixture (unequal N_i) it keeps "Uniform"
uniform over training time, whereas the paper's rule empties small buckets first. The two agree
when buckets hold equal batch counts. Curricula (odds for D_{i_min}..D_{i_max}, shortest first, K
buckets): uniform 1..1; grow-linear K..1; grow-p2 2^{K-1}..1; grow-p100 100^{K-1}..1
(**reconstructed**: the paper names Grow-P100 but its odds were not recovered); or a custom
comma-separated list. Partial batches at the end of a bucket are dropped (as Apple drops partial
shards) and counted. Within a bucket, sequences are shuffled with the seed (a permutation of
sequence indices).

Tokenization: the fast tokenizer's batch encode over windows of documents (2 MiB of text). Below 8
cores it runs in this process, one window ahead in a thread (the Rust encoder releases the GIL and
uses every core, while the previous window is cut and written); from 8 cores in worker processes
(one per 4 cores), because there turning ids into arrays in one Python process would be the limit.

Streaming / memory: `decompose` holds two tokenization windows (a few batches of documents). The
batch schedule needs every bucket's size before the first step (the curriculum depends on N_i), so
chunks are spilled to per-bucket files on disk (flat int32 arrays: all pieces of a bucket have the
same length) through per-bucket pools of at most one batch (b tokens each); in memory stay those
pools, one output batch, and per-chunk 16-byte metadata indices (doc index, offset) plus 8 bytes per
document — never the corpus' tokens.

Cost model (spec §1.3, our derivation): causal attention pairs per step from D_i are
(b / 2^i) · 2^i(2^i + 1)/2, against b(L + 1)/2 for concat-and-chunk at L = `--max-len`; the mean
relative cost per step is Σ_i T_i (2^i + 1) / (T (L + 1)) with T_i the tokens of bucket i (steps
are ∝ tokens). Equal token mass over 256..8192 gives 2689/8193 = 0.328 (the spec's 0.33 example).
Appendix F statistics: average sequence length Σ l / N, average context length Σ l(l-1)/2 / Σ l.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from er.errors import ErError, UsageError
from er.pool import Failure, OrderedPool, default_workers

CURRICULA = ("uniform", "grow-linear", "grow-p2", "grow-p100")
OVERFLOWS = ("split-max", "random-pow2")
SHIFTS = ("exact", "plus-one")
WEIGHTINGS = ("code", "paper")


# ---- configuration -----------------------------------------------------------------------------
def log2_exact(n: int, flag: str) -> int:
    if n < 1 or n & (n - 1):
        raise UsageError(f"{flag} must be a power of two, not {n}")
    return n.bit_length() - 1


def bucket_range(min_len: int, max_len: int) -> tuple[int, int]:
    lo, hi = log2_exact(min_len, "--min-len"), log2_exact(max_len, "--max-len")
    if lo > hi:
        raise UsageError(f"--min-len {min_len} is greater than --max-len {max_len}")
    return lo, hi


def curriculum_odds(name: str, n_buckets: int) -> list[float]:
    """Sampling odds for the buckets, shortest first."""
    k = n_buckets
    if name == "uniform":
        return [1.0] * k
    if name == "grow-linear":
        return [float(k - j) for j in range(k)]
    if name == "grow-p2":
        return [float(2 ** (k - 1 - j)) for j in range(k)]
    if name == "grow-p100":
        return [float(100 ** (k - 1 - j)) for j in range(k)]
    if "," in name or name.replace(".", "").isdigit():
        try:
            odds = [float(x) for x in name.split(",")]
        except ValueError:
            raise UsageError(f"--curriculum {name!r}: custom odds must be numbers") from None
        if len(odds) != k or any(o < 0 for o in odds) or not any(odds):
            raise UsageError(f"--curriculum {name!r}: give {k} non-negative odds (one per bucket, shortest first)")
        return odds
    from er.errors import UnknownNameError

    raise UnknownNameError("curriculum", name, list(CURRICULA))


# ---- decomposition -----------------------------------------------------------------------------
def pieces(length: int, i_min: int, i_max: int, *, shift: int = 0, overflow: str = "split-max",
           rng: random.Random | None = None) -> tuple[list[tuple[int, int, int]], int]:
    """Cut a document of `length` tokens: ([(offset, log2, size), ...], tokens dropped)."""
    out: list[tuple[int, int, int]] = []
    offset, rest = 0, length
    smallest, largest = (1 << i_min) + shift, (1 << i_max) + shift
    ks = range(i_min, i_max + 1)
    weights = [2 ** (i_max - k) for k in ks]
    while rest >= smallest:
        if rest > largest and overflow == "random-pow2":
            k = (rng or random).choices(ks, weights)[0]
        elif rest >= largest:
            k = i_max
        else:
            k = (rest - shift).bit_length() - 1
        size = (1 << k) + shift
        out.append((offset, k, size))
        offset += size
        rest -= size
    return out, rest


def attention_cost(tokens_per_bucket: dict[int, int], max_len: int) -> float | None:
    """Mean causal-attention cost per step relative to concat-and-chunk at `max_len`."""
    total = sum(tokens_per_bucket.values())
    if not total:
        return None
    return sum(t * ((1 << i) + 1) for i, t in tokens_per_bucket.items()) / (total * (max_len + 1))


def attention_pairs_per_step(bucket: int, tokens_per_step: int) -> int:
    """Causal attention pairs of one step of b tokens from D_i: (b / 2^i) · 2^i (2^i + 1) / 2."""
    n = 1 << bucket
    return (tokens_per_step // n) * n * (n + 1) // 2


@dataclass
class Stats:
    """Counters for the stats record and the stderr summary."""

    max_len: int
    documents: int = 0  # records read: documents, or chunks when chunk records are batched
    tokens_in: int = 0
    tokens_kept: int = 0
    chunks: Counter = field(default_factory=Counter)  # bucket -> chunks
    tokens: Counter = field(default_factory=Counter)  # bucket -> tokens
    context_pairs: int = 0  # Σ l(l-1)/2 over kept chunks
    tail_pieces: int = 0
    tail_tokens: int = 0
    steps: Counter = field(default_factory=Counter)  # bucket -> scheduled steps (batch mode)
    step_buckets: list = field(default_factory=list)
    partial_chunks: int = 0
    partial_tokens: int = 0

    def add_chunk(self, bucket: int, size: int) -> None:
        self.chunks[bucket] += 1
        self.tokens[bucket] += size
        self.tokens_kept += size
        self.context_pairs += size * (size - 1) // 2

    def record(self) -> dict:
        n = sum(self.chunks.values())
        out: dict[str, Any] = {
            "records_in": self.documents,
            "tokens_in": self.tokens_in,
            "tokens_kept": self.tokens_kept,
            "tokens_dropped_under_min_len": self.tail_tokens,
            "pieces_dropped_under_min_len": self.tail_pieces,
            "chunks_per_bucket": {str(1 << b): c for b, c in sorted(self.chunks.items())},
            "tokens_per_bucket": {str(1 << b): t for b, t in sorted(self.tokens.items())},
            "avg_sequence_length": self.tokens_kept / n if n else None,
            "avg_context_length": self.context_pairs / self.tokens_kept if self.tokens_kept else None,
            "attention_cost_vs_concat": attention_cost(dict(self.tokens), self.max_len),
            "max_len": self.max_len,
        }
        if self.step_buckets:
            k = len(self.step_buckets)
            deciles = [self.step_buckets[k * d // 10: k * (d + 1) // 10] for d in range(10)]
            out.update({
                "steps": k,
                "steps_per_bucket": {str(1 << b): c for b, c in sorted(self.steps.items())},
                "attention_cost_per_step_vs_concat": sum(((1 << b) + 1) for b in self.step_buckets)
                / (k * (self.max_len + 1)),
                "mean_length_by_decile": [sum(1 << b for b in d) / len(d) if d else None for d in deciles],
                "chunks_dropped_partial_batch": self.partial_chunks,
                "tokens_dropped_partial_batch": self.partial_tokens,
            })
        return out

    def lines(self) -> list[str]:
        r = self.record()
        kept = f"{self.tokens_kept / self.tokens_in:.1%}" if self.tokens_in else "-"
        per = " ".join(f"{k}:{v}" for k, v in r["chunks_per_bucket"].items()) or "none"
        cost = r["attention_cost_vs_concat"]
        out = [f"tokens in {self.tokens_in}, kept {self.tokens_kept} ({kept}); "
               f"{self.tail_tokens} tokens in {self.tail_pieces} pieces under --min-len dropped",
               f"chunks per bucket (length:count): {per}"]
        if "steps" in r:
            out.append(f"steps {r['steps']} ({' '.join(f'{k}:{v}' for k, v in r['steps_per_bucket'].items())}); "
                       f"attention cost per step {r['attention_cost_per_step_vs_concat']:.3f} of concat-and-chunk "
                       f"at {self.max_len}; {self.partial_chunks} chunks in partial batches dropped")
        elif cost is not None:
            out.append(f"attention cost per step {cost:.3f} of concat-and-chunk at {self.max_len}")
        return out


# ---- tokenization --------------------------------------------------------------------------------
def load_tokenizer(path: str):
    """A fast (Rust `tokenizers`) tokenizer from a `save_pretrained` directory, a tokenizer.json or
    a Hub name in the local cache (`er.models`: offline or not cached says so); one that turns text
    into no tokens at all is refused (it would drop every document as empty)."""
    from er.models import TOKENIZER_FILES, _first_line, _hub_dir

    flag = f"--tokenizer {path}"
    if not os.path.exists(path):
        if path.startswith((".", "/", "~")) or path.count("/") != 1:
            raise UsageError(f"{flag}: no such file or directory")
        path = _hub_dir(path, "--tokenizer")  # a Hub name: the cache, else one line on why not
    from tokenizers import Tokenizer

    file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if os.path.isdir(path) and not os.path.isfile(file):
        names = os.listdir(path)
        if not any(n in TOKENIZER_FILES or n.startswith("vocab.") for n in names):
            raise UsageError(f"{flag}: no tokenizer in this directory (no tokenizer.json, which a fast "
                             "tokenizer's save_pretrained writes; give that directory or the file)")
    if os.path.isfile(file):
        try:
            tok = Tokenizer.from_file(file)
        except Exception as exc:  # noqa: BLE001 - the Rust error types are not importable
            raise UsageError(f"{flag}: cannot load {file}: {_first_line(exc)}") from None
    else:
        try:
            from transformers import AutoTokenizer

            fast = AutoTokenizer.from_pretrained(path)
        except Exception as exc:  # noqa: BLE001
            raise UsageError(f"{flag}: no tokenizer.json, and its other tokenizer files do not load as a "
                             f"fast tokenizer ({_first_line(exc)})") from None
        if not getattr(fast, "is_fast", False):
            raise UsageError(f"{flag}: not a fast tokenizer (no tokenizer.json)")
        tok = fast.backend_tokenizer
    try:
        probe = tok.encode("The quick brown fox", add_special_tokens=False).ids
    except Exception as exc:  # noqa: BLE001 - e.g. a WordLevel model without its unknown token
        raise UsageError(f"{flag}: this tokenizer cannot encode text ({_first_line(exc)})") from None
    if not probe:
        raise UsageError(f"{flag}: this tokenizer turns text into no tokens (an empty vocabulary?); "
                         "every document would be dropped as empty")
    return tok


def _encode_fn(tokenizer):
    """The tokenizer's batch encode without special tokens (`encode_batch_fast` where it exists:
    no offsets are computed). It runs in Rust threads and releases the GIL."""
    encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
    return lambda texts: encode(texts, add_special_tokens=False)


def _as_arrays(encodings) -> tuple[Any, Any]:
    """(lengths, flat int32 ids) of a window's encodings: one buffer instead of a list per document."""
    from itertools import chain

    import numpy as np

    ids = [e.ids for e in encodings]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum()))
    return lengths, flat


def _use_cores(threads: int) -> None:
    """Let the Rust tokenizer use `threads` cores in this process (set before its first batch),
    unless RAYON_NUM_THREADS or TOKENIZERS_PARALLELISM is set already: the user's choice wins."""
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if threads > 1 else "false")


def default_tokenizer_workers() -> int:
    """0 (tokenize in this process, one window ahead in a thread) below 8 cores; else one worker
    process per 4 cores, each running the Rust tokenizer on cores/workers threads. Worker processes
    pay off once the cores tokenize faster than one Python process can turn ids into arrays."""
    cores = default_workers()
    return 0 if cores < 8 else cores // 4


def _worker_fn(tokenizer, workers: int):
    encode = _encode_fn(tokenizer)
    configured = []

    def fn(texts):
        if not configured:  # the cores are shared out between the workers' Rust thread pools
            _use_cores(max(1, default_workers() // workers))
            configured.append(True)
        yield _as_arrays(encode(texts))

    return fn


@dataclass
class Document:
    row: tuple  # (source, line, record)
    doc_id: Any
    index: int
    ids: Any = None  # numpy int32 array once known


class Decomposer:
    """Documents -> tokenized -> power-of-two chunks, streaming, with `Stats`."""

    def __init__(self, stream, *, tokenizer: str | None = None, min_len: int = 256, max_len: int = 8192,
                 overflow: str = "split-max", target_shift: str = "exact", append_eos: str | None = None,
                 workers: int = 0, seed: int | None = None, window_chars: int = 1 << 21, window_docs: int = 1024):
        if overflow not in OVERFLOWS:
            raise UsageError(f"--overflow must be one of {', '.join(OVERFLOWS)}, not {overflow!r}")
        if target_shift not in SHIFTS:
            raise UsageError(f"--target-shift must be one of {', '.join(SHIFTS)}, not {target_shift!r}")
        self.stream = stream
        self.i_min, self.i_max = bucket_range(min_len, max_len)
        self.max_len = max_len
        self.shift = 1 if target_shift == "plus-one" else 0
        self.overflow = overflow
        self.rng = random.Random(seed)
        self.tokenizer = load_tokenizer(tokenizer) if tokenizer else None
        self.eos = None
        if append_eos is not None:
            if self.tokenizer is None:
                raise UsageError("--append-eos needs --tokenizer (to look up the token's id)")
            self.eos = self.tokenizer.token_to_id(append_eos)
            if self.eos is None:
                raise UsageError(f"--append-eos {append_eos!r}: not a token of this tokenizer")
        self.workers = workers
        self.window_chars, self.window_docs = window_chars, window_docs
        self.stats = Stats(max_len=max_len)
        self._n = 0

    # Reading and validating documents, grouped into tokenization windows.
    def _windows(self, rows: Iterable[tuple]) -> Iterator[tuple[list[Document], list[str]]]:
        import numpy as np

        docs: list[Document] = []
        texts: list[str] = []
        chars = 0
        for row in rows:
            record = row[2]
            text, ids = record.get("text"), record.get("token_ids")
            try:
                if isinstance(text, str):
                    if self.tokenizer is None:
                        raise ErError("record has `text` but no --tokenizer was given (or give `token_ids`)")
                    doc = Document(row, record.get("doc_id", record.get("id", self._n)), self._n)
                    texts.append(text)
                    chars += len(text)
                elif isinstance(ids, list):
                    if not all(type(t) is int and t >= 0 for t in ids):
                        raise ErError("field 'token_ids' should be a list of non-negative integers")
                    doc = Document(row, record.get("doc_id", record.get("id", self._n)), self._n, np.asarray(ids, dtype=np.int32))
                elif text is None and ids is None:
                    raise ErError("document has neither 'text' (string) nor 'token_ids' (list of integers)")
                else:
                    bad = "text" if text is not None else "token_ids"
                    raise ErError(f"field {bad!r} has the wrong type ({type(record[bad]).__name__})")
            except ErError as exc:
                self.stream.reject_error(row, exc)
                continue
            self._n += 1
            docs.append(doc)
            if chars >= self.window_chars or len(docs) >= self.window_docs:
                yield docs, texts
                docs, texts, chars = [], [], 0
        if docs:
            yield docs, texts

    def documents(self, rows: Iterable[tuple]) -> Iterator[Document]:
        """Every valid document with its token ids, in input order."""
        windows = self._windows(rows)
        if self.tokenizer is None:
            for docs, _ in windows:
                yield from self._fill(docs, None)
        elif self.workers <= 0:
            yield from self._tokenize_ahead(windows)
        else:
            yield from self._tokenize_in_workers(windows)

    def _tokenize_ahead(self, windows) -> Iterator[Document]:
        """Tokenize in this process, one window ahead in a thread: the Rust encoder releases the GIL,
        so window N+1 is encoded on all cores while window N is cut and written."""
        from concurrent.futures import ThreadPoolExecutor

        _use_cores(default_workers())
        encode = _encode_fn(self.tokenizer)
        queue: deque = deque()
        executor = ThreadPoolExecutor(1, thread_name_prefix="er-tokenize")
        try:
            for docs, texts in windows:
                queue.append((docs, executor.submit(encode, texts) if texts else None))
                if len(queue) > 1:
                    yield from self._fill_encoded(*queue.popleft())
            while queue:
                yield from self._fill_encoded(*queue.popleft())
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

    def _fill_encoded(self, docs: list[Document], future) -> Iterator[Document]:
        if future is None:
            return self._fill(docs, None)
        try:
            encodings = future.result()
        except Exception as exc:  # noqa: BLE001 - the Rust error types are not importable
            raise ErError(f"tokenizer failed: {exc}") from None
        return self._fill(docs, _as_arrays(encodings))

    def _tokenize_in_workers(self, windows) -> Iterator[Document]:
        pool = OrderedPool(_worker_fn(self.tokenizer, self.workers), self.workers, item_timeout=3600.0,
                           resume=lambda p, k: p, size=lambda p: 1 if p else 0, window=2 * self.workers + 2)
        with pool:
            for docs, results in pool.imap((docs, texts) for docs, texts in windows):
                result = results[0] if results else None
                if isinstance(result, Failure):
                    raise ErError(f"tokenizer worker failed ({result.reason})")
                yield from self._fill(docs, result)

    @staticmethod
    def _fill(docs: list[Document], encoded) -> Iterator[Document]:
        pos = 0
        k = 0
        for doc in docs:
            if doc.ids is None:
                lengths, flat = encoded
                n = int(lengths[k])
                doc.ids = flat[pos:pos + n]
                pos += n
                k += 1
            yield doc

    def chunks(self, doc: Document) -> list[tuple[int, int, Any]]:
        """(offset, bucket, token_ids) of one document; counts everything in `stats`."""
        import numpy as np

        ids = doc.ids
        if self.eos is not None:
            ids = np.append(ids, np.int32(self.eos))
        n = len(ids)
        self.stats.documents += 1
        self.stats.tokens_in += n
        cut, rest = pieces(n, self.i_min, self.i_max, shift=self.shift, overflow=self.overflow, rng=self.rng)
        if rest:
            self.stats.tail_tokens += rest
            self.stats.tail_pieces += bin(rest).count("1") if not self.shift else 1
        if n == 0:
            self.stream.drop("empty document")
        elif not cut:
            self.stream.drop("document shorter than --min-len")
        out = []
        for offset, k, size in cut:
            self.stats.add_chunk(k, size)
            out.append((offset, k, ids[offset:offset + size]))
        return out

    def records(self) -> Iterator[list[dict]]:
        """Chunk records, one list per document (`doc_id`, `bucket`, `offset`, `token_ids` + passthrough)."""
        for doc in self.documents(self.stream.records()):
            meta = {k: v for k, v in doc.row[2].items() if k not in ("text", "token_ids", "id")}
            out = []
            for offset, k, ids in self.chunks(doc):
                out.append({**meta, "doc_id": doc.doc_id, "bucket": k, "offset": offset, "token_ids": ids})
            if out:
                yield out


# ---- the batch schedule ----------------------------------------------------------------------------
class BatchSchedule:
    """Spill chunks to per-bucket files, then emit b-token batches in curriculum order."""

    def __init__(self, decomposer: Decomposer, *, tokens_per_batch: int, curriculum: str = "grow-p2",
                 cycles: int = 1, seed: int | None = None, weighting: str = "code", shuffle: bool = True,
                 tmpdir: str | None = None):
        d = decomposer
        if weighting not in WEIGHTINGS:
            raise UsageError(f"--weighting must be code or paper, not {weighting!r}")
        if tokens_per_batch < (1 << d.i_max) or tokens_per_batch % (1 << d.i_max):
            raise UsageError(f"--tokens-per-batch {tokens_per_batch} must be a positive multiple of --max-len "
                             f"{1 << d.i_max} (each bucket then holds b/2^i whole sequences)")
        if cycles < 1:
            raise UsageError(f"--cycles must be at least 1, not {cycles}")
        self.d = decomposer
        self.b = tokens_per_batch
        self.buckets = list(range(d.i_min, d.i_max + 1))
        self.odds = dict(zip(self.buckets, curriculum_odds(curriculum, len(self.buckets))))
        self.cycles, self.weighting, self.shuffle = cycles, weighting, shuffle
        self.seed = seed
        self.tmpdir = tmpdir

    def _spill(self, dirname: str):
        import numpy as np

        d = self.d
        files = {k: open(os.path.join(dirname, f"{k}.tok"), "wb") for k in self.buckets}
        metas = {k: open(os.path.join(dirname, f"{k}.meta"), "wb") for k in self.buckets}
        pools: dict[int, list] = {k: [] for k in self.buckets}
        pool_meta: dict[int, array] = {k: array("q") for k in self.buckets}
        doc_file = open(os.path.join(dirname, "docs"), "wb")
        doc_pos = array("q")
        import orjson

        def flush(k: int) -> None:
            if pools[k]:
                files[k].write(np.concatenate(pools[k]).astype(np.int32, copy=False).tobytes())
                metas[k].write(pool_meta[k].tobytes())
                pools[k].clear()
                del pool_meta[k][:]

        def add(k: int, doc_index: int, offset: int, ids) -> None:
            pools[k].append(ids)
            pool_meta[k].extend((doc_index, offset))
            if len(pools[k]) * (1 << k) >= self.b:  # a pool holds at most one batch
                flush(k)

        def new_doc(doc_id) -> int:
            doc_pos.append(doc_file.tell())
            doc_file.write(orjson.dumps(doc_id) + b"\n")
            return len(doc_pos) - 1

        # Records that are already chunks (they carry `bucket`: the output of `er decompose`) skip
        # tokenization; documents go through it. Chunk rows seen while a tokenization window is in
        # flight are added after the window's documents (order inside a bucket is shuffled anyway).
        pending: list = []

        def documents_only():
            for row in d.stream.records():
                if "bucket" in row[2]:
                    pending.append(row)
                else:
                    yield row

        def add_pending() -> None:
            for row in pending:
                self._add_chunk_row(row, add, new_doc)
            pending.clear()

        for doc in d.documents(documents_only()):
            add_pending()
            cut = d.chunks(doc)
            if cut:
                idx = new_doc(doc.doc_id)
                for offset, k, ids in cut:
                    add(k, idx, offset, ids)
        add_pending()
        for k in self.buckets:
            flush(k)
            files[k].close()
            metas[k].close()
        doc_file.close()
        return doc_pos

    def _add_chunk_row(self, row, add, new_doc) -> None:
        import numpy as np

        d, record = self.d, row[2]
        k, ids = record.get("bucket"), record.get("token_ids")
        try:
            if type(k) is not int or not isinstance(ids, list):
                raise ErError("a chunk record needs integer 'bucket' and list 'token_ids'")
            if not 0 <= k < 40 or len(ids) != (1 << k) + d.shift:
                raise ErError(f"chunk has {len(ids)} tokens, bucket {k} needs {(1 << k) + d.shift} "
                              "(--target-shift must match the decomposition)")
        except ErError as exc:
            d.stream.reject_error(row, exc)
            return
        d.stats.documents += 1
        d.stats.tokens_in += len(ids)
        if not d.i_min <= k <= d.i_max:
            d.stream.drop("chunk bucket outside --min-len..--max-len")
            return
        d.stats.add_chunk(k, len(ids))
        add(k, new_doc(record.get("doc_id")), int(record.get("offset", 0)), np.asarray(ids, dtype=np.int32))

    def batches(self) -> Iterator[list[dict]]:
        import numpy as np
        import orjson

        d = self.d
        dirname = tempfile.mkdtemp(prefix="er-dd-", dir=self.tmpdir)
        try:
            doc_pos = self._spill(dirname)
            counts = {k: d.stats.chunks[k] for k in self.buckets}
            per = {k: self.b >> k for k in self.buckets}  # sequences per step
            n_batches = {k: counts[k] // per[k] for k in self.buckets}
            for k in self.buckets:
                left = counts[k] - n_batches[k] * per[k]
                if left:
                    d.stats.partial_chunks += left
                    d.stats.partial_tokens += left * ((1 << k) + d.shift)
                    d.stream.drop(f"chunk of bucket {1 << k} in a partial batch", left)
            nprng = np.random.default_rng(self.seed)
            order = {k: (nprng.permutation(counts[k]) if self.shuffle else np.arange(counts[k]))
                     for k in self.buckets}
            rng = random.Random(self.seed)
            doc_file = open(os.path.join(dirname, "docs"), "rb")
            step = 0
            for cycle in range(self.cycles):
                todo = {k: list(range(n_batches[k] * cycle // self.cycles, n_batches[k] * (cycle + 1) // self.cycles))
                        for k in self.buckets}
                fixed = {k: self.odds[k] * len(todo[k]) for k in self.buckets}
                pos = {k: 0 for k in self.buckets}
                while True:
                    live = [k for k in self.buckets if pos[k] < len(todo[k]) and self.odds[k] > 0]
                    if not live:
                        break
                    weights = [fixed[k] if self.weighting == "code" else self.odds[k] for k in live]
                    k = rng.choices(live, weights)[0]
                    j = todo[k][pos[k]]
                    pos[k] += 1
                    yield self._read_batch(dirname, k, order[k][j * per[k]:(j + 1) * per[k]], step, cycle,
                                           doc_file, doc_pos, orjson)
                    d.stats.steps[k] += 1
                    d.stats.step_buckets.append(k)
                    step += 1
            unused = sum(n_batches[k] for k in self.buckets if self.odds[k] == 0)
            if unused:
                d.stream.note("batches of buckets with odds 0 not scheduled", unused)
            doc_file.close()
        finally:
            shutil.rmtree(dirname, ignore_errors=True)

    def _read_batch(self, dirname, k, rows, step, cycle, doc_file, doc_pos, orjson) -> list[dict]:
        import numpy as np

        width = (1 << k) + self.d.shift
        tokens = np.memmap(os.path.join(dirname, f"{k}.tok"), dtype=np.int32, mode="r").reshape(-1, width)
        meta = np.memmap(os.path.join(dirname, f"{k}.meta"), dtype=np.int64, mode="r").reshape(-1, 2)
        out = []
        for r in rows:
            doc_index, offset = int(meta[r, 0]), int(meta[r, 1])
            doc_file.seek(doc_pos[doc_index])
            out.append({"batch": step, "bucket": k, "cycle": cycle, "doc_id": orjson.loads(doc_file.readline()),
                        "offset": offset, "token_ids": np.array(tokens[r])})
        return out
