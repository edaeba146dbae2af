"""Long-context benchmark presets: L-Eval and LCFO from LOCAL copies in their published formats (nothing downloads).

`er sample --dataset FILE --preset leval|lcfo` turns each document into prompt records (one per
instruction / per summary ratio) that carry what `er eval --preset leval|lcfo` scores them with (the
metrics are er.evaluation.lengthcontrol's LEvalReport and LCFOReport; reports per task / ratio).

L-Eval (An et al. 2023, arXiv 2307.11088, spec length-control-and-eval.md §9a, [CODE]). A data file line:
  {"input": document, "instructions": [...], "outputs": [...], "source": task, "evaluation": exam|f1|rouge|LLM|human}
Each (instruction, output) pair becomes one prompt record: `id` "leval/<task>/<line>/<k>", `prompt` (one
user turn), `context` (the document, which the prompt holds: a document's questions share it as their fixed
context, see `er sample --attention squeezed`), `gt` and `answer` (the output), `evaluation`, `task`
(`source`, else the file name without extensions, `.pred` and a `leval_` prefix), `dataset` "leval". Prompts follow L-Eval's baselines (turbo16k-test.py):
  exam:  "Document is as follows. {document} Question: {instruction} \\nPlease directly give answer without
          any additional output or explanation\\n Answer: "
  other: "Document is as follows. {document} Instruction: {instruction} The suggested output length is around
          {n} words. Output: "   (LIE: n = words of the reference)
Task-specific system prompts (gsm, coursera) are not added; the document is not truncated (use
`er sample --attention lambda` or `--context xl3m`, or --max-model-len rejects it). L-Eval's own prediction
files ({"query", "gt", "<model>_pred", "evaluation"}) are scored by `er eval --preset leval` as they are,
the task then being the file name. LLM/human-judged items are dropped and counted (no judge is run).

LCFO (Costa-jussà et al. 2024, arXiv 2412.08268, spec §9b, RECONSTRUCTED: the field names are the spec's
assumption, not verified against the release). A data file line:
  {"doc_id", "domain", "source_text", "summaries": {"5": str, "10": str, "20": str}, "qa": [...]}
Each ratio ρ present in `summaries` becomes one prompt record: `id` "lcfo/<doc_id>/<ρ>", `ratio` ρ (percent),
`reference` = summaries[ρ], `source_text`, `domain`, and the prompt (our wording, reconstructed):
  "Summarize the following text in about {n} words ({ρ}% of its length).\\n\\n{source_text}"
with n = round(ρ/100 · W(source_text)). Summary expansion and QA coverage are not generated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

import orjson

from er.errors import ErError, UsageError

EXAM_PROMPT = ("Document is as follows. {document} Question: {instruction} \nPlease directly give answer without any "
               "additional output or explanation\n Answer: ")
LIE_PROMPT = ("Document is as follows. {document} Instruction: {instruction} The suggested output length is around "
              "{n} words. Output: ")
LCFO_PROMPT = "{source_text}\n\nSummarize the text above in about {n} words ({ratio}% of its length)."


def task_of(path: str) -> str:
    """The task a file holds: its name without extensions, a `.pred` suffix and a `leval_` prefix."""
    from er.evaluation.report import file_label

    label = file_label(path)
    label = label[:-5] if label.endswith(".pred") else label
    return label[6:] if label.startswith("leval_") and len(label) > 6 else label


def leval_prompts(doc: dict, line: int, default_task: str) -> list[dict]:
    """The prompt records of one L-Eval document (one per instruction)."""
    try:
        document, instructions, outputs = doc["input"], doc["instructions"], doc["outputs"]
        evaluation = doc["evaluation"]
    except KeyError as exc:
        raise ErError(f"L-Eval document has no field {exc.args[0]!r} (fields: {', '.join(sorted(doc))})") from None
    if not isinstance(instructions, list) or not isinstance(outputs, list) or len(instructions) != len(outputs):
        raise ErError("L-Eval fields 'instructions' and 'outputs' should be lists of the same length")
    task = doc.get("source") or default_task
    out = []
    for k, (instruction, gt) in enumerate(zip(instructions, outputs)):
        if evaluation == "exam":
            text = EXAM_PROMPT.format(document=document, instruction=instruction)
        else:
            text = LIE_PROMPT.format(document=document, instruction=instruction, n=len(str(gt).split()))
        out.append({"id": f"leval/{task}/{line}/{k}", "prompt": [{"role": "user", "content": text}],
                    "context": document, "gt": gt,
                    "answer": gt, "evaluation": evaluation, "task": task, "dataset": "leval"})
    return out


def lcfo_prompts(doc: dict, line: int, default_task: str) -> list[dict]:
    """The prompt records of one LCFO document (one per summary ratio)."""
    source = doc.get("source_text")
    summaries = doc.get("summaries")
    if not isinstance(source, str) or not isinstance(summaries, dict) or not summaries:
        raise ErError("LCFO document needs 'source_text' (string) and 'summaries' {ratio: text}")
    words = len(source.split())
    doc_id = doc.get("doc_id", line)
    out = []
    for ratio, reference in summaries.items():
        try:
            percent = float(str(ratio).rstrip("%"))
        except ValueError:
            raise ErError(f"LCFO summaries key {ratio!r} is not a ratio in percent") from None
        label = f"{percent:g}"
        text = LCFO_PROMPT.format(n=round(percent / 100 * words), ratio=label, source_text=source)
        out.append({"id": f"lcfo/{doc_id}/{label}", "prompt": [{"role": "user", "content": text}],
                    "source_text": source, "context": source, "ratio": percent, "reference": reference, "domain": doc.get("domain"),
                    "dataset": "lcfo"})
    return out


@dataclass(frozen=True)
class LongPreset:
    name: str
    metric: str  # the er eval --metric that scores it
    expand: Callable[[dict, int, str], list[dict]]
    description: str


LONG_PRESETS = {
    "leval": LongPreset("leval", "leval", leval_prompts, "L-Eval (local JSONL in its published format); per-task EM/F1/ROUGE"),
    "lcfo": LongPreset("lcfo", "lcfo", lcfo_prompts, "LCFO (local JSONL; reconstructed field names); per-ratio metrics"),
}


def prompt_rows(path: str, preset: str, stream) -> Iterator[tuple]:
    """(source, line, prompt record) for every item of a local data file; bad documents are rejected."""
    p = LONG_PRESETS[preset]
    if not os.path.isfile(path):
        raise UsageError(f"--dataset {path}: --preset {preset} reads a local JSONL copy (nothing downloads); no such file")
    task = task_of(path)
    with open(path, "rb") as fh:
        for line, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            stream.n_in += 1
            try:
                doc = orjson.loads(raw)
                if not isinstance(doc, dict):
                    raise ErError("a document should be a JSON object")
                records = p.expand(doc, line, task)
            except orjson.JSONDecodeError as exc:
                stream.reject(path, line, f"invalid JSON: {exc}", None)
                continue
            except ErError as exc:
                stream.reject(path, line, exc.message, doc)
                continue
            for record in records:
                yield path, line, record


def prepare_row(preset: str, source: str, record: dict) -> dict:
    """An input row of `er eval --preset P` as the metric reads it (L-Eval prediction files get their task)."""
    if "instructions" in record and "outputs" in record and not any("_pred" in k for k in record):
        raise ErError(f"this is an L-Eval data document, not a prediction: make prompts with "
                      f"`er sample --dataset FILE --preset {preset}` and evaluate the samples")
    if preset == "leval" and not (record.get("task") or record.get("source")):
        record = {**record, "task": task_of(source)}
    return record
