"""Rendering a TAIL instance as text in one of three styles (see `er.data.tail` for the formats).

- `tail`: `Input: k=v ...` then one line per atomic state
  `S<i>: fetch k=v ...; <op>; ...; write k=v ...; -> S<i+1>` (the last state `-> F`).
- `concise`: one line per state with only its arithmetic operation(s), or the cells it writes when
  it has none: the shortened chain of thought for the same problem.
- `verbose`: the `tail` lines wrapped in redundant natural-language glue (each fetch and write
  restated in words, TAIL-CoT-styled) followed by a full re-check pass (the concise lines again):
  the padded chain of thought. The state lines stay verbatim, so the checker replays it too.
"""

from __future__ import annotations


def _kv(pairs) -> str:
    return " ".join(f"{k}={v}" for k, v in pairs)


def state_line(i: int, state, last: bool) -> str:
    fetch, ops, write = state
    parts = []
    if fetch:
        parts.append("fetch " + _kv(fetch))
    parts.extend(ops)
    if write:
        parts.append("write " + _kv(write))
    parts.append("-> F" if last else f"-> S{i + 1}")
    return f"S{i}: " + "; ".join(parts)


def _concise_line(state) -> str:
    _, ops, write = state
    numeric = [op for op in ops if any(ch.isdigit() for ch in op)]
    return " ".join(numeric) if numeric else _kv(write)


def render(inst, style: str) -> str:
    n = len(inst.states)
    if style == "concise":
        return "\n".join(line for line in map(_concise_line, inst.states) if line)
    lines = [state_line(i, st, i == n - 1) for i, st in enumerate(inst.states)]
    head = "Input: " + _kv(inst.inputs)
    if style == "tail":
        return "\n".join([head, *lines])
    out = ["We solve this step by step and write down every value we use.", head]
    for i, (st, line) in enumerate(zip(inst.states, lines)):
        fetch, ops, write = st
        if fetch:
            out.append(f"Step {i}. First we copy the values we need: " + ", ".join(f"{k} is {v}" for k, v in fetch) + ".")
        else:
            out.append(f"Step {i}. This step needs no values from memory.")
        for op in ops:
            out.append(f"Then we carry out the operation {op}.")
        out.append(line)
        done = "and we are done" if i == n - 1 else f"and we move on to step {i + 1}"
        if write:
            out.append("So now " + ", ".join(f"{k} is {v}" for k, v in write) + f", {done}.")
        else:
            out.append(f"Nothing changes in memory, {done}.")
    out.append("Let me double-check the whole computation once more:")
    out.extend(line for line in map(_concise_line, inst.states) if line)
    out.append("The check agrees with the steps above.")
    return "\n".join(out)
