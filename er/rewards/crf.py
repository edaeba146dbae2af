"""`crf`: the Conciseness Reward Function of "Efficient Reasoning via Reward Model" (Wang et al.;
arXiv 2511.09158). Formula quoted in ICLR 2026 reviews (spec §6, [secondary]); the code was not reachable.

    R_hat_i = R^o_i * (1 + alpha * c_i * (s + d_q))

- R^o_i = 1[correct] (the outcome reward): conciseness only ever pays when the answer is right.
- c_i in [0.1, 1]: the conciseness score of response i, read from the record field `field`
  (default "conciseness"), or computed by a local Conciseness Reward Model when `model=PATH` is
  given: a transformers sequence-classification model with one output, loaded once on first use,
  fed (question, completion) as a text pair; c = 0.1 + 0.9 * sigmoid(logit) maps the logit onto the
  teacher's 0.1-1.0 scale. [reconstructed]: whether the CRM reads its score from generated text or a
  regression head is unknown; the paper's CRM is a 3B SFT model.
- s: the annealing coefficient, a schedule over the training step t (`policy.step` of the record,
  written by `er sample`). [reconstructed] (schedule not readable): `anneal=linear` (default)
  s = s_max * max(0, 1 - t / total_steps); `anneal=cosine` s = s_max * (1 + cos(pi min(t, T)/T)) / 2;
  `anneal=none` s = s_max (a constant; no step needed).
- d_q: the question's difficulty. [reconstructed]: `difficulty=group` (default) d_q = 1 - the group's
  pass rate (rows with a verdict); `difficulty=field` reads the number in `difficulty_field`
  (precomputed offline); `difficulty=none` d_q = 0.
- alpha = 0.5: [reconstructed] (the value was not found; 0.5 is the spec's illustrative constant).

Advantages: plain GRPO (`er advantage -e grpo`). A null verdict gives a null reward.
Worked (spec §6e, alpha=0.5, s=0.8, d_q=0.25): R^o = [1, 1, 0, 1], c = [0.9, 0.5, 0.3, 0.7]
-> R_hat = [1.4725, 1.2625, 0, 1.3675].
"""

from __future__ import annotations

import math

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.base import Reward
from er.rewards.dler import finished_correct


def prompt_text(prompt) -> str:
    """The question as plain text: a string, or the contents of a chat message list joined by newlines."""
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict))
    return "" if prompt is None else str(prompt)


class ConcisenessModel:
    """A local transformers sequence-classification model scoring (question, completion) pairs."""

    def __init__(self, path: str, max_length: int = 2048, batch_size: int = 16):
        import torch
        from transformers import AutoModelForSequenceClassification

        from er.models import load_tokenizer, model_dir

        self.torch = torch
        path = model_dir(path, flag="crf model")
        self.tokenizer = load_tokenizer(path, flag="crf model")
        self.model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True)
        if self.model.config.num_labels != 1:
            raise ErError(f"conciseness model {path} has {self.model.config.num_labels} outputs; "
                          "it needs one (a regression head)")
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self.max_length, self.batch_size = max_length, batch_size

    def __call__(self, pairs: list[tuple[str, str]]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            enc = self.tokenizer([q for q, _ in chunk], [o for _, o in chunk], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            with self.torch.no_grad():
                logits = self.model(**enc).logits[:, 0].float()
            scores.extend((0.1 + 0.9 * self.torch.sigmoid(logits)).tolist())
        return scores


@REWARDS.register("crf")
class Crf(Reward):
    """CRF: 1[c] * (1 + alpha * conciseness * (s + d_q)); conciseness from a field or a local CRM; s, d_q, alpha reconstructed.

    R = 1[c] (1 + alpha c_i (s + d_q)); arXiv 2511.09158 (formula from reviews). Reconstructed: alpha 0.5,
    s annealed linearly 1 -> 0 over total_steps (or cosine/none), d_q = 1 - group pass rate, and the CRM as
    a one-logit sequence classifier mapped to 0.1 + 0.9 sigmoid(logit).
    """

    level = "group"
    needs_correct = True
    provenance = "reconstructed"

    def __init__(self, alpha: float = 0.5, field: str = "conciseness", model: str | None = None,
                 anneal: str = "linear", s_max: float = 1.0, total_steps: int = 1000,
                 difficulty: str = "group", difficulty_field: str = "difficulty", max_length: int = 2048):
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, not {alpha}")
        if anneal not in ("linear", "cosine", "none"):
            raise ValueError(f"anneal must be linear, cosine or none, not {anneal!r}")
        if s_max < 0:
            raise ValueError(f"s_max must be >= 0, not {s_max}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, not {total_steps}")
        if difficulty not in ("group", "field", "none"):
            raise ValueError(f"difficulty must be group, field or none, not {difficulty!r}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, not {max_length}")
        self.alpha, self.field, self.model_path = alpha, field, model
        self.anneal, self.s_max, self.total_steps = anneal, s_max, total_steps
        self.difficulty, self.difficulty_field, self.max_length = difficulty, difficulty_field, max_length
        self._model: ConcisenessModel | None = None
        self.fields = {"completion": "string"}
        if model is None:
            self.fields[field] = "number"
        if difficulty == "field":
            self.fields[difficulty_field] = "number"

    def annealing(self, step: int | None) -> float:
        if self.anneal == "none":
            return self.s_max
        if step is None:
            raise ErError("missing 'policy.step' (crf anneals s over training steps; "
                          "records from `er sample` carry it, or use anneal=none)")
        t = min(max(step, 0), self.total_steps)
        if self.anneal == "linear":
            return self.s_max * (1.0 - t / self.total_steps)
        return self.s_max * 0.5 * (1.0 + math.cos(math.pi * t / self.total_steps))

    def conciseness(self, group: list[dict]) -> list[float]:
        if self.model_path is None:
            values = [float(r[self.field]) for r in group]
        else:
            if self._model is None:
                self._model = ConcisenessModel(self.model_path, self.max_length)
            values = self._model([(prompt_text(r.get("prompt")), r["completion"]) for r in group])
        for v in values:
            if not 0.0 <= v <= 1.0:
                raise ErError(f"conciseness score {v} is outside [0, 1] (field {self.field!r})")
        return values

    @staticmethod
    def step_of(record: dict) -> int | None:
        policy = record.get("policy")
        step = policy.get("step") if isinstance(policy, dict) else record.get("step")
        if step is None:
            return None
        if type(step) is not int:
            raise ErError(f"'policy.step' should be an integer, got {step!r}")
        return step

    def __call__(self, group: list[dict]) -> list[float | None]:
        verdicts = [finished_correct(r) for r in group]
        known = [c for c in verdicts if c is not None]
        if not known:
            return [None] * len(group)
        if self.difficulty == "group":
            d = [1.0 - sum(known) / len(known)] * len(group)
        elif self.difficulty == "field":
            d = [float(r[self.difficulty_field]) for r in group]
        else:
            d = [0.0] * len(group)
        # c is only needed for correct rows; the CRM is not run on wrong ones.
        need = [i for i, c in enumerate(verdicts) if c]
        scores = dict(zip(need, self.conciseness([group[i] for i in need]))) if need else {}
        out: list[float | None] = []
        for i, (r, c) in enumerate(zip(group, verdicts)):
            if c is None:
                out.append(None)
            elif not c:
                out.append(0.0)
            else:
                s = self.annealing(self.step_of(r))
                out.append(1.0 + self.alpha * scores[i] * (s + d[i]))
        return out
