"""Dataset presets: map rows of well-known evaluation/training sets to `er` prompt records.

Used by `er sample --dataset NAME --preset P` and `er eval --preset P`. A preset names the Hugging Face
dataset (`hf_path`, `hf_config`, `default_split`), how its gold answer is checked (`answer_format`:
"number" = a plain number, compared numerically; "latex" = a LaTeX expression for math-verify;
"choice" = a letter A-D), how many samples per problem a pass@1 estimate usually takes
(`recommended_n`: open-r1's protocol, anchors-rl-toolkits.md §3: AIME24 64, MATH-500 4, GPQA-Diamond 8;
GSM8K 1 and AMC23 32 are our choices), and `to_prompt(row, index) -> prompt record`.

Prompt records (schemas/prompt.json): `id` (string, "<preset>/<dataset id or row index>"), `prompt` (a
chat message list with one user turn, so the model's chat template is applied), `answer` (string),
plus `dataset` (the preset name) and the dataset's own metadata under names that do not clash with
`er` fields (MATH-500's `level` 1-5 becomes `difficulty`, because `level` is the TLDR length level).

Instructions: math sets get the DeepSeek-R1 / open-r1 suffix "Please reason step by step, and put your
final answer within \\boxed{}."; GPQA gets the four options in a shuffled order (deterministic: the
order depends only on the question text, so every run and shard agrees) and asks for the letter in
\\boxed{}. GSM8K's gold is the text after "####" with thousands separators removed.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from typing import Callable

from er.errors import ErError

MATH_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_SUFFIX = ("Please reason step by step, and put the letter of the correct option (A, B, C or D) "
                 "within \\boxed{}.")
LETTERS = "ABCD"


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


@dataclass(frozen=True)
class Preset:
    """How one dataset becomes prompt records."""

    name: str
    hf_path: str
    hf_config: str | None
    default_split: str
    answer_format: str  # "number" | "latex" | "choice"
    recommended_n: int
    convert: Callable[[dict, int], dict] = field(repr=False)
    description: str = ""
    fields: tuple[str, ...] = ()  # the row fields `convert` needs (and replaces); a row's others are kept
    also: tuple[str, ...] = ()  # fields `convert` reads when present (and replaces, e.g. MATH-500's level)
    verifier: str = "math"  # the reward that judges its answers (er score/eval --preset without --reward)

    def to_prompt(self, row: dict, index: int) -> dict:
        """The prompt record for dataset row `row` (0-based `index` in its split)."""
        try:
            record = self.convert(row, index)
        except KeyError as exc:
            raise ErError(f"preset {self.name}: row {index} has no field {exc.args[0]!r} "
                          f"(fields: {', '.join(sorted(row))})") from None
        record.setdefault("dataset", self.name)
        return record

    def load(self, split: str | None = None):
        """`datasets.load_dataset` of this preset from the Hub (or its cache)."""
        import datasets

        return datasets.load_dataset(self.hf_path, self.hf_config, split=split or self.default_split)


def load_local(path: str):
    """A local JSON/JSONL or Parquet file as a `datasets.Dataset` (its rows in the presets' shape)."""
    import datasets

    kind = "parquet" if path.endswith(".parquet") else "json"
    return datasets.load_dataset(kind, data_files=path, split="train")


def gsm8k_answer(solution: str) -> str:
    """GSM8K gold: the text after the last '####', thousands separators removed ('1,000' -> '1000')."""
    if "####" not in solution:
        raise KeyError("#### in answer")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def _gsm8k(row: dict, index: int) -> dict:
    return {"id": f"gsm8k/{index}", "prompt": user(f"{row['question']}\n{MATH_SUFFIX}"),
            "answer": gsm8k_answer(row["answer"])}


def _math500(row: dict, index: int) -> dict:
    uid = row.get("unique_id") or str(index)
    return {"id": f"math500/{uid}", "prompt": user(f"{row['problem']}\n{MATH_SUFFIX}"),
            "answer": str(row["answer"]), "subject": row.get("subject"), "difficulty": row.get("level")}


def _aime24(row: dict, index: int) -> dict:
    rid = row.get("id", index)
    return {"id": f"aime24/{rid}", "prompt": user(f"{row['problem']}\n{MATH_SUFFIX}"),
            "answer": str(row["answer"]).strip()}


def _amc23(row: dict, index: int) -> dict:
    rid = row.get("id", index)
    answer = row["answer"]
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)  # amc23 stores answers as floats (27.0)
    return {"id": f"amc23/{rid}", "prompt": user(f"{row['question']}\n{MATH_SUFFIX}"),
            "answer": str(answer)}


def gpqa_options(row: dict) -> tuple[list[str], str]:
    """The four options in a deterministic shuffled order (seeded by the question text) and the gold letter."""
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    options = [str(o).strip() for o in options]
    order = list(range(4))
    random.Random(zlib.crc32(str(row["Question"]).encode())).shuffle(order)
    shuffled = [options[i] for i in order]
    return shuffled, LETTERS[order.index(0)]


def _gpqa(row: dict, index: int) -> dict:
    options, letter = gpqa_options(row)
    body = "\n".join(f"{LETTERS[i]}) {o}" for i, o in enumerate(options))
    rid = row.get("Record ID") or str(index)
    return {"id": f"gpqa/{rid}", "prompt": user(f"{str(row['Question']).strip()}\n\n{body}\n\n{CHOICE_SUFFIX}"),
            "answer": letter, "choices": options}


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("gsm8k", "openai/gsm8k", "main", "test", "number", 1, _gsm8k,
               "Grade-school math word problems; gold after '####'.", ("question", "answer")),
        Preset("math500", "HuggingFaceH4/MATH-500", None, "test", "latex", 4, _math500,
               "MATH-500 (Lightman et al. subset of MATH).", ("problem", "answer"),
               ("unique_id", "subject", "level")),
        Preset("aime24", "HuggingFaceH4/aime_2024", None, "train", "number", 64, _aime24,
               "AIME 2024, 30 problems; integer answers 0-999.", ("problem", "answer")),
        Preset("amc23", "math-ai/amc23", None, "test", "number", 32, _amc23,
               "AMC 2023, 40 problems.", ("question", "answer")),
        Preset("gpqa", "Idavidrein/gpqa", "gpqa_diamond", "train", "choice", 8, _gpqa,
               "GPQA-Diamond, 198 four-option science questions (gated on the Hub).",
               ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"), ("Record ID",)),
    )
}


def matching_presets(row: dict) -> list[str]:
    """The presets whose fields `row` has (a GSM8K answer is the one with '####'), for a hint."""
    found = []
    for p in PRESETS.values():
        if p.fields and all(f in row for f in p.fields):
            if p.name == "amc23" and "####" in str(row.get("answer", "")):
                continue
            if p.name == "gsm8k" and "####" not in str(row.get("answer", "")):
                continue
            found.append(p.name)
    return found


def file_rows(rows, preset: Preset, stream):
    """Prompt records from `rows` ((source, line, record) of a RecordStream) in `preset`'s shape.

    The preset's own fields become `id`/`prompt`/`answer` as from the Hub; every other column is kept.
    A row's own `id` wins over the preset's positional one. A row that does not fit is rejected at its
    line (`--rejects` keeps it aside).
    """
    index = 0
    for source, line, row in rows:
        try:
            record = preset.to_prompt(row, index)
        except ErError as exc:
            stream.reject(source, line, exc.message, row)
            continue
        finally:
            index += 1
        kept = {k: v for k, v in row.items() if k not in preset.fields and k not in preset.also}
        if row.get("id") is not None:
            record["id"] = row["id"]
        yield source, line, {**kept, **record}


def preset_for_files(name: str) -> Preset:
    """The preset `er sample --preset NAME FILE...` reads record files with (UsageError otherwise)."""
    from er.evaluation.longbench import LONG_PRESETS

    if name in LONG_PRESETS:
        from er.errors import UsageError

        raise UsageError(f"--preset {name} reads its published files with --dataset FILE (one document, several prompts)")
    return get_preset(name)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        from er.errors import UnknownNameError

        raise UnknownNameError("preset", name, list(PRESETS))
    return PRESETS[name]
