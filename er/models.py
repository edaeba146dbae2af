"""Opening a model directory: the one check every command that loads a model makes first.

`er sample -m`, `er update -m/--ref-model` and a reward model (`crf:model=`) name either a local
directory or a Hugging Face Hub name (`org/name`). `model_dir(name)` returns the local directory to
load, or raises a one-line `UsageError` (exit 2: the flag names something that cannot be a model;
a broken or incomplete model directory is the user's argument, not bad record data):

- a local directory must hold a `config.json` that is a JSON object, safetensors weights (er never
  loads pickled checkpoints) and a tokenizer (`tokenizer.json`, a SentencePiece `*.model` or a
  `vocab.*`). Without this check transformers builds an empty tokenizer from `config.json` alone,
  and `er update` would save checkpoints with it.
- a Hub name is looked up in the local Hugging Face cache first (no network). When it is not there,
  one HEAD request to the Hub (5 s) decides: unreachable (or `HF_HUB_OFFLINE=1`) fails at once with
  a line saying that models must be local directories or that the network is needed, instead of
  the transformers/huggingface_hub retries (more than a minute) and a traceback; reachable
  downloads the repository's config, tokenizer and safetensors files into the cache.

`load_tokenizer` / `load_config` wrap the transformers loaders so that what still fails inside them
(a tokenizer.json that does not parse, an unknown `model_type`) is one line too. `load_tokenizer`
returns `AutoTokenizer`'s tokenizer, through the class it picked last time for the same files when
that is remembered (`er.tokenizer_memo`): then torch is not imported, which a served sampler needs.
"""

from __future__ import annotations

import os

import orjson

from er.errors import UsageError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
                   "vocab.json", "vocab.txt", "tiktoken.model")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
PROBE_TIMEOUT = 5.0


def model_dir(model: str, *, flag: str = "-m", tokenizer: bool = True) -> str:
    """The local directory of `model` (a directory or a Hub name), checked; else a one-line UsageError."""
    if os.path.exists(model):
        check_model_dir(model, flag=flag, tokenizer=tokenizer)
        return model
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise UsageError(f"{flag} {model}: no such directory")
    path = _hub_dir(model, flag)
    check_model_dir(path, flag=flag, tokenizer=tokenizer, name=model)
    return path


def check_model_dir(path: str, *, flag: str = "-m", tokenizer: bool = True, name: str | None = None) -> None:
    """config.json (a JSON object), safetensors weights and (unless `tokenizer=False`) a tokenizer."""
    label = f"{flag} {name or path}"
    config = os.path.join(path, "config.json")
    if not os.path.isdir(path) or not os.path.isfile(config):
        raise UsageError(f"{label}: not a model directory (no config.json)")
    try:
        with open(config, "rb") as f:
            parsed = orjson.loads(f.read())
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{label}: config.json is not valid JSON ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{label}: cannot read config.json ({exc.strerror or exc})") from None
    if not isinstance(parsed, dict):
        raise UsageError(f"{label}: config.json is not a JSON object")
    names = os.listdir(path)
    if not any(n.endswith((".safetensors", ".safetensors.index.json")) for n in names):
        raise UsageError(f"{label}: no safetensors weights (er never loads pickled checkpoints)")
    if tokenizer and not any(n in TOKENIZER_FILES or n.startswith("vocab.") for n in names):
        raise UsageError(f"{label}: no tokenizer ({', '.join(TOKENIZER_FILES[:2])}, ...); "
                         "save one next to the weights (tokenizer.save_pretrained(DIR))")


def _hub_dir(repo: str, flag: str) -> str:
    from huggingface_hub import constants, snapshot_download, try_to_load_from_cache

    cached = try_to_load_from_cache(repo, "config.json")
    if isinstance(cached, str):
        return os.path.dirname(cached)
    advice = (f"models must be local directories (or already in the Hugging Face cache); "
              f"fetch it where the network is reachable: hf download {repo} --local-dir DIR")
    if constants.HF_HUB_OFFLINE:
        raise UsageError(f"{flag} {repo}: no such directory, and HF_HUB_OFFLINE=1: {advice}")
    reason = _unreachable(constants.ENDPOINT)
    if reason is not None:
        raise UsageError(f"{flag} {repo}: no such directory, and {constants.ENDPOINT} is unreachable ({reason}): {advice}")
    try:
        return snapshot_download(repo, allow_patterns=HUB_PATTERNS)
    except Exception as exc:  # huggingface_hub raises many kinds (not found, gated, HTTP); one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(f"{flag} {repo}: cannot download it from the Hub ({type(exc).__name__}: {first})") from None


def _unreachable(endpoint: str) -> str | None:
    """None when one HEAD request to the Hub gets any answer within PROBE_TIMEOUT; else why not."""
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT)
    except Exception as exc:  # a connection error of whichever HTTP client huggingface_hub uses
        return type(exc).__name__
    return None


def load_tokenizer(path: str, *, flag: str = "-m"):
    """AutoTokenizer's tokenizer for `path`; for a directory whose class is remembered, without
    importing AutoTokenizer (torch comes with it: `er.tokenizer_memo`)."""
    from er import tokenizer_memo

    try:
        return tokenizer_memo.load(path, _auto_tokenizer)
    except Exception as exc:  # tokenizers/transformers raise many kinds for a file that does not load
        raise UsageError(f"{flag} {path}: cannot load the tokenizer ({_first_line(exc)})") from None


def _auto_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def load_config(path: str, *, flag: str = "-m"):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except Exception as exc:  # an unknown model_type, a field of the wrong type, ...
        raise UsageError(f"{flag} {path}: cannot load config.json ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
