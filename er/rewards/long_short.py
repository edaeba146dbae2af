"""`long-short`: Adaptive Deep Reasoning's long/short adaptive group-wise reward, arXiv 2505.20101.

Wang et al. (Tencent Hunyuan), "Adaptive Deep Reasoning: Triggering Deep Thinking When Needed" (2025).
In RL each prompt's G rollouts are split by instruction into a long-CoT half and a short-CoT half;
the group's accuracies under the two modes say which mode the prompt prefers, and a correct answer in
the preferred mode earns more. The structure is [NOTES]; the reward values and the comparison rule
are RECONSTRUCTED (spec length-control-and-eval.md §2, [RECON]): every constant is a placeholder.

    Acc_L = mean correctness of the long rows, Acc_S = mean correctness of the short rows
    prefer_short = [Acc_S >= Acc_L - tau]                                   (reconstructed)
    r_i = R_hi if c_i and mode_i is the preferred mode
          R_lo if c_i and mode_i is the other mode                          (reconstructed)
          0    if not c_i

Defaults (placeholders, reconstructed): R_hi=1.5, R_lo=1.0, tau=0.0. Worked example (G=8, long
correctness [1,1,1,0], short [1,1,0,1]): rewards [1, 1, 1, 0, 1.5, 1.5, 0, 1.5].

Mode of a row: the record's `mode` field ("long" or "short") when present (controlled sampling
writes it); otherwise detected from the start of the completion, which in the paper is the first
generated token that opens the mode: `long_prefix` / `short_prefix` (defaults `<long>` / `<short>`
are reconstructed: the paper's exact tokens are unknown; set them to your SFT format). A row whose
mode cannot be told is a data error.

Departures / choices (reconstructed): rows whose correctness cannot be judged score null and are
left out of Acc_L/Acc_S; when a group has judged rows of only one mode, that mode is the preferred
one (correct rows get R_hi). This is a group-level reward: whole groups only. The first-token mode
switching loss of the paper is a loss term, not a reward, and is not part of this class.
"""

from __future__ import annotations

from er.errors import ErError
from er.rewards import REWARDS
from er.rewards.base import Reward, is_correct


@REWARDS.register("long-short")
class LongShort(Reward):
    """Adaptive long/short group reward (reconstructed): correct rows in the group's preferred mode get R_hi, else R_lo."""

    level = "group"
    needs_correct = True
    fields = {"completion": "string"}
    provenance = "reconstructed"

    def __init__(self, R_hi: float = 1.5, R_lo: float = 1.0, tau: float = 0.0, mode_field: str = "mode",
                 long_prefix: str = "<long>", short_prefix: str = "<short>"):
        if not R_hi > R_lo > 0:
            raise ValueError(f"need R_hi > R_lo > 0, got R_hi={R_hi}, R_lo={R_lo}")
        if tau < 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        if not long_prefix or not short_prefix or long_prefix == short_prefix:
            raise ValueError("long_prefix and short_prefix must be non-empty and different")
        self.R_hi, self.R_lo, self.tau = R_hi, R_lo, tau
        self.mode_field, self.long_prefix, self.short_prefix = mode_field, long_prefix, short_prefix

    def mode(self, record: dict) -> str:
        value = record.get(self.mode_field)
        if value is not None:
            mode = str(value).strip().lower()
            if mode not in ("long", "short"):
                raise ErError(f"field {self.mode_field!r} should be long or short, got {value!r}")
            return mode
        head = record["completion"].lstrip()
        if head.startswith(self.long_prefix):
            return "long"
        if head.startswith(self.short_prefix):
            return "short"
        raise ErError(f"cannot tell the reasoning mode: no field {self.mode_field!r} and the completion "
                      f"starts with neither {self.long_prefix!r} nor {self.short_prefix!r}")

    def __call__(self, group: list[dict]) -> list[float | None]:
        modes = [self.mode(r) for r in group]
        correct = [is_correct(r) for r in group]
        acc: dict[str, list[bool]] = {"long": [], "short": []}
        for m, c in zip(modes, correct):
            if c is not None:
                acc[m].append(c)
        if acc["long"] and acc["short"]:
            acc_long = sum(acc["long"]) / len(acc["long"])
            acc_short = sum(acc["short"]) / len(acc["short"])
            preferred = "short" if acc_short >= acc_long - self.tau else "long"
        else:
            preferred = "long" if acc["long"] else "short"
        out: list[float | None] = []
        for m, c in zip(modes, correct):
            if c is None:
                out.append(None)
            elif not c:
                out.append(0.0)
            else:
                out.append(self.R_hi if m == preferred else self.R_lo)
        return out
