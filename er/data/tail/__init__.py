"""TAIL: Turing-machine-imitation chain-of-thought data (Hua et al., "The Imitation Game: Turing Machine
Imitator is Length Generalizable Reasoner", arXiv:2507.13332, ICLR 2026; spec §2).

18 tasks in 8 algorithm classes (Table C1), length splits short/medium/long. Two range tables:
- `paper`: Table F1 exactly (S/M/L per task; decimals in the `*` operands of addition, division and
  compare numbers);
- `small` (default; ours, not the paper's): scaled-down ranges so that short-split traces are tens
  of tokens to a few hundred (e.g. addition with 2-4 digits), learnable by a ~0.3M-parameter model
  with SFT on CPU; integers only. Medium and long stay longer than short for length-generalisation
  tests.

Trace (TAIL-CoT, symbolic, Fig. D3 style; layout ours): an `Input:` line restating the operands, then
one line per atomic state `S<i>: fetch k=v ...; <op>; ...; write k=v ...; -> S<i+1>` (last `-> F`):
Memory Fetcher first, one elementary operation, the cells written, the linear transition; then
`\\boxed{ANSWER}`. Styles (paired chains of thought for the same question, same final answer line):
`tail` (full atomic trace), `concise` (only each state's operation or result), `verbose` (the TAIL
states wrapped in redundant natural-language glue, like TAIL-CoT-styled, plus a re-check pass).
The paper's data has >20 query templates per task and an LLM judge; we use 3 templates per task and
exact answer checks (`er.data.tail.check`, reward `tail`). No official code exists; every generator
is ours (`tasks.py` docstring lists the reconstructed task semantics).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator

from er.data.tail import tasks as T
from er.errors import UnknownNameError, UsageError
from er.registry import Registry

SPLITS = ("short", "medium", "long")
STYLES = ("tail", "concise", "verbose")
RANGE_TABLES = ("small", "paper")


@dataclass
class Task:
    name: str
    cls: str
    title: str
    make: Callable
    paper: tuple  # ((lo, hi) for short, medium, long), Table F1
    small: tuple
    templates: tuple
    reconstructed: bool = False
    decimals: bool = False  # the paper's `*` operand may carry a decimal point


TASKS: Registry = Registry("TAIL task")


def _task(*args, **kwargs) -> None:
    t = Task(*args, **kwargs)
    TASKS.register(t.name)(t)


S = ((2, 4), (5, 6), (7, 8))
_task("addition", "Simulation", "Large Number Addition", T.addition, ((10, 30), (31, 40), (41, 50)), S,
      ("What is {q}?", "Compute {q}.", "Add the numbers: {q}"), decimals=True)
_task("division", "Simulation", "Large Number Division", T.division, ((2, 5), (6, 10), (11, 20)), ((2, 3), (4, 5), (6, 8)),
      ("Compute {q} to 2 decimal places (truncate).", "What is {q}? Give 2 decimals, truncated.",
       "Divide: {q} (2 decimal places, truncated)"), reconstructed=True, decimals=True)
_task("bubble_sort", "Simulation", "Bubble Sort", T.bubble_sort, ((2, 4), (5, 6), (7, 8)), ((2, 3), (4, 5), (6, 7)),
      ("Sort ascending with bubble sort: {q}", "Bubble-sort the list {q}.", "Put in increasing order: {q}"))
_task("word_flip", "Simulation", "Word Flip", T.word_flip, ((10, 20), (21, 50), (51, 100)), ((3, 6), (7, 10), (11, 15)),
      ("Reverse character by character: {q}", "Flip the text \"{q}\".", "Write backwards: {q}"))
_task("compare", "Simulation", "Compare Numbers", T.compare, ((5, 10), (11, 20), (21, 50)), S,
      ("Compare {q}: answer >, < or =.", "Which is larger, {q}? Answer >, < or =.", "Relation between {q} (>, <, =)?"),
      decimals=True)
_task("any_substring", "Recursion", "Any Substring", T.any_substring, ((3, 5), (6, 9), (10, 14)), ((2, 3), (4, 5), (6, 7)),
      ("List all distinct substrings of {q}.", "Find every substring of \"{q}\" (distinct, in order of first occurrence).",
       "Substrings of {q}?"), reconstructed=True)
_task("derangement", "Recursion", "Derangement", T.derangement, ((3, 30), (31, 60), (61, 100)), ((3, 6), (7, 10), (11, 15)),
      ("How many derangements of {q} elements?", "Count the derangements of n = {q}.", "D({q}) = ?"))
_task("population", "Iteration", "Population Growth", T.population, ((1, 10), (11, 25), (26, 50)), ((2, 5), (6, 8), (9, 12)),
      ("Pairs after n units, breeding from age x, y initial pairs, z new pairs per unit: {q}.",
       "Population growth with {q}: total pairs?", "Rabbit pairs ({q})?"), reconstructed=True)
_task("dijkstra", "Greedy", "Dijkstra", T.dijkstra, ((3, 5), (6, 10), (11, 20)), ((3, 4), (5, 6), (7, 8)),
      ("Shortest distances from vertex 0: {q}.", "Run Dijkstra from 0 on {q}.", "Distances from 0 in the graph {q}?"))
_task("schedule", "Greedy", "Multi-Machine Schedule", T.schedule, ((5, 10), (11, 20), (21, 50)), ((3, 4), (5, 6), (7, 8)),
      ("Maximum total profit of unit tasks on {q}.", "Schedule for maximum benefit: {q}.", "Best benefit with {q}?"),
      reconstructed=True)
_task("count_letters", "Enumeration", "Count Letters", T.count_letters, ((2, 6), (7, 10), (11, 20)), ((2, 3), (4, 5), (6, 8)),
      ("Count the letter {q}.", "How many times does {q} occur?", "Occurrences of {q}?"), reconstructed=True)
_task("diophantine", "Enumeration", "Diophantine Equation", T.diophantine, ((10, 50), (51, 100), (101, 200)),
      ((5, 15), (16, 30), (31, 50)),
      ("All non-negative integer solutions (x,y) of {q}.", "Solve {q} over x, y >= 0.", "Solutions of {q} with x, y >= 0?"))
_task("prime_search", "Enumeration", "Prime Search", T.prime_search, ((5, 100), (101, 200), (201, 300)),
      ((2, 20), (21, 40), (41, 60)), ("All primes in {q}.", "List the primes in {q}.", "Which numbers in {q} are prime?"))
_task("knapsack", "DP", "0-1 Knapsack", T.knapsack, ((2, 3), (4, 5), (6, 8)), ((2, 2), (3, 3), (4, 4)),
      ("0-1 knapsack, {q}: maximum value?", "Best value for a knapsack with {q}.", "Knapsack: {q}."))
_task("lcs", "DP", "LCS", T.lcs, ((2, 6), (7, 9), (10, 12)), ((2, 3), (4, 5), (6, 7)),
      ("Length of the longest common subsequence of {q}.", "LCS length of {q}?", "How long is the LCS of {q}?"))
_task("levenshtein", "DP", "Levenshtein Distance", T.levenshtein, ((2, 4), (5, 7), (8, 9)), ((2, 3), (4, 5), (6, 7)),
      ("Edit distance to turn {q}.", "Minimum edits to turn {q}?", "Levenshtein distance, {q}."))
_task("binary_search", "Divide & Conquer", "Binary Search", T.binary_search, ((5, 20), (21, 40), (41, 70)),
      ((3, 8), (9, 16), (17, 32)),
      ("Index (from 0) of {q}.", "Binary search: position of {q}?", "Find the index of {q}."))
_task("combination", "Backtracking", "Permutation/Palindrome Combination", T.combination, ((2, 4), (5, 6), (7, 8)),
      ((2, 3), (4, 5), (6, 7)),
      ("How many distinct palindromes use all letters of {q}?", "Count palindromic arrangements of {q}.",
       "Palindromes from the letters {q}?"), reconstructed=True)

def task_names(spec: str) -> list[str]:
    if spec == "all":
        return TASKS.names()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in TASKS.names():
            raise UnknownNameError("TAIL task", n, TASKS.names() + ["all"])
    return names


def ranges(task: Task, table: str) -> tuple:
    if table not in RANGE_TABLES:
        raise UsageError(f"--ranges must be small or paper, not {table!r}")
    return task.paper if table == "paper" else task.small


def instance(task: Task, rng: random.Random, split: str, table: str) -> T.Instance:
    lo, hi = ranges(task, table)[SPLITS.index(split)]
    n, m = rng.randint(lo, hi), rng.randint(lo, hi)
    inst = task.make(rng, n, m, task.decimals and table == "paper")
    inst.prompt = rng.choice(task.templates).format(q=inst.prompt)
    return inst


def generate(names: list[str], n: int, split: str = "short", seed: int = 0, style: str = "tail",
             with_trace: bool = False, table: str = "small", think: bool = True,
             on_duplicate: Callable[[], None] | None = None) -> Iterator[dict]:
    """Prompt records (and SFT completions), de-duplicated per task, the same bytes for the same seed."""
    from er.data.tail.render import render

    if split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    if style not in STYLES:
        raise UsageError(f"--style must be one of {', '.join(STYLES)}, not {style!r}")
    for name in names:
        task = TASKS.get(name)
        rng = random.Random(f"tail:{seed}:{name}:{split}:{table}")
        seen: set[str] = set()
        for i in range(n):
            for _ in range(50):  # strictly de-duplicated while the range allows it
                inst = instance(task, rng, split, table)
                if inst.key not in seen:
                    break
            else:
                if on_duplicate:
                    on_duplicate()
            seen.add(inst.key)
            record = {"id": f"tail-{name}-{split}-{seed}-{i}", "prompt": inst.prompt, "answer": inst.answer,
                      "task": name, "class": task.cls, "length": inst.length, "split": split}
            if with_trace:
                text = render(inst, style)
                record["completion"] = f"<think>\n{text}\n</think>\n\\boxed{{{inst.answer}}}" if think \
                    else f"{text}\n\\boxed{{{inst.answer}}}"
                record["style"] = style
                record["trace_chars"] = len(text)
                record["trace_steps"] = len(inst.states)
            yield record
