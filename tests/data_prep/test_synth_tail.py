"""`er synth-tail`: 18 TAIL tasks; answers against plain-Python ground truth parsed from the prompt text,
every trace replayed by the independent checker, styles, the `tail` reward, bad input."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from functools import lru_cache

import pytest

from er.data.tail import TASKS, generate
from er.data.tail.check import check, final_answer
from tests.helpers import jsonl, parse_jsonl, run_er


# ---- ground truth from the prompt text alone (stdlib, no generator code) ------------------------
NUM = r"\d+(?:\.\d+)?"


def _dec(text: str) -> Fraction:
    return Fraction(text)


def _plain(fr: Fraction) -> str:
    """A terminating fraction as a plain decimal without trailing zeros."""
    sign = "-" if fr < 0 else ""
    fr = abs(fr)
    whole, rest = divmod(fr.numerator, fr.denominator)
    digits = ""
    while rest:
        rest *= 10
        digits += str(rest // fr.denominator)
        rest %= fr.denominator
    return sign + str(whole) + ("." + digits if digits else "")


def gt_addition(p):
    a, b = re.search(rf"({NUM}) \+ ({NUM})", p).groups()
    return _plain(_dec(a) + _dec(b))


def gt_division(p):
    a, b = re.search(rf"({NUM}) ÷ ({NUM})", p).groups()
    h = (_dec(a) / _dec(b) * 100).__floor__()
    return f"{h // 100}.{h % 100:02d}"


def gt_bubble_sort(p):
    return ",".join(map(str, sorted(int(x) for x in re.search(r"(\d+(?:,\d+)+)", p).group(1).split(","))))


def gt_word_flip(p):
    m = re.match(r'(?:Reverse character by character: (.*)|Flip the text "(.*)"\.|Write backwards: (.*))$', p)
    return next(g for g in m.groups() if g is not None)[::-1]


def gt_compare(p):
    a, b = map(_dec, re.search(rf"({NUM}) and ({NUM})", p).groups())
    return ">" if a > b else "<" if a < b else "="


def gt_any_substring(p):
    s = re.search(r'of "?([a-z]+)', p).group(1)
    out: list[str] = []
    for i in range(len(s)):
        for j in range(i + 1, len(s) + 1):
            if s[i:j] not in out:
                out.append(s[i:j])
    return ",".join(out)


def gt_derangement(p):
    import math

    n = int(re.search(r"(\d+)", p).group(1))
    return str(sum((-1) ** k * math.factorial(n) // math.factorial(k) for k in range(n + 1)))


def gt_population(p):
    n, x, y, z = (int(v) for v in re.search(r"n=(\d+) x=(\d+) y=(\d+) z=(\d+)", p).groups())
    ages = {0: y}  # cohort simulation (age -> pairs): every pair at least x units old breeds z pairs per unit
    for _ in range(n):
        ages = {a + 1: c for a, c in ages.items()}
        ages[0] = z * sum(c for a, c in ages.items() if a >= x)
    return str(sum(ages.values()))


def gt_dijkstra(p):
    n = int(re.search(r"(\d+) vertices", p).group(1))
    inf = float("inf")
    d = [[0 if i == j else inf for j in range(n)] for i in range(n)]
    for a, b, w in re.findall(r"(\d+)-(\d+):(\d+)", p):
        a, b, w = int(a), int(b), int(w)
        d[a][b] = d[b][a] = min(d[a][b], w)
    for k, i, j in itertools.product(range(n), repeat=3):  # Floyd-Warshall (k outermost)
        d[i][j] = min(d[i][j], d[i][k] + d[k][j])
    return ",".join(str(int(v)) for v in d[0])


def gt_schedule(p):
    x = int(re.search(r"(\d+) queues", p).group(1))
    tasks = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+)", p)]
    best = 0
    for mask in range(1 << len(tasks)):
        chosen = [tasks[i] for i in range(len(tasks)) if mask >> i & 1]
        if all(sum(d <= t for _, d in chosen) <= x * t for t in range(1, len(tasks) + 1)):
            best = max(best, sum(v for v, _ in chosen))
    return str(best)


def gt_count_letters(p):
    letter, text = re.search(r"'(.)' in \"(.*)\"", p).groups()
    return str(text.count(letter))


def gt_diophantine(p):
    a, b, n = (int(v) for v in re.search(r"(\d+)x \+ (\d+)y = (\d+)", p).groups())
    sols = [f"({x},{y})" for x in range(n + 1) for y in range(n + 1) if a * x + b * y == n]
    return ",".join(sols) or "none"


def gt_prime_search(p):
    lo, hi = (int(v) for v in re.search(r"\[(\d+), (\d+)\]", p).groups())
    primes = [c for c in range(lo, hi + 1) if c > 1 and all(c % d for d in range(2, c))]
    return ",".join(map(str, primes)) or "none"


def gt_knapsack(p):
    cap = int(re.search(r"capacity (\d+)", p).group(1))
    items = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+)", p)]
    return str(max(sum(v for _, v in c) for r in range(len(items) + 1) for c in itertools.combinations(items, r)
                   if sum(w for w, _ in c) <= cap))


def gt_lcs(p):
    a, b = re.search(r"([a-d]+) and ([a-d]+)", p).groups()

    @lru_cache(None)
    def f(i, j):
        if i == len(a) or j == len(b):
            return 0
        return 1 + f(i + 1, j + 1) if a[i] == b[j] else max(f(i + 1, j), f(i, j + 1))

    return str(f(0, 0))


def gt_levenshtein(p):
    a, b = re.search(r"([a-d]+) into ([a-d]+)", p).groups()

    @lru_cache(None)
    def f(i, j):
        if i == len(a) or j == len(b):
            return len(a) - i + len(b) - j
        return min(f(i + 1, j + 1) + (a[i] != b[j]), f(i + 1, j) + 1, f(i, j + 1) + 1)

    return str(f(0, 0))


def gt_binary_search(p):
    t, lst = re.search(r"(\d+) in ([\d,]+)", p).groups()
    return str([int(v) for v in lst.split(",")].index(int(t)))


def gt_combination(p):
    s = re.search(r"(?:of|letters) ([a-d]+)", p).group(1)
    return str(len({q for q in itertools.permutations(s) if q == q[::-1]}))


GROUND_TRUTH = {name[3:]: fn for name, fn in globals().items() if name.startswith("gt_")}


def test_there_are_18_tasks_in_the_8_classes_of_table_c1():
    assert len(TASKS.names()) == 18 and set(GROUND_TRUTH) == set(TASKS.names())
    from collections import Counter

    counts = Counter(t.cls for _, t in TASKS.items())
    assert counts == {"Simulation": 5, "Recursion": 2, "Iteration": 1, "Greedy": 2, "Enumeration": 3, "DP": 3,
                      "Divide & Conquer": 1, "Backtracking": 1}


@pytest.mark.parametrize("task", sorted(GROUND_TRUTH))
def test_1000_short_instances_have_correct_answers_and_traces_that_replay(task):
    for r in generate([task], 1000, "short", seed=7, with_trace=True):
        assert r["answer"] == GROUND_TRUTH[task](r["prompt"]), r["prompt"]
        verdict = check(task, r["completion"], r["prompt"])
        assert verdict.ok and verdict.answer == r["answer"], (r["prompt"], verdict)


@pytest.mark.parametrize("table, split", [("small", "medium"), ("small", "long"), ("paper", "short"), ("paper", "long")])
def test_longer_splits_and_the_paper_table_are_correct_too(table, split):
    n = 15 if (table, split) == ("paper", "long") else 40
    for task in sorted(GROUND_TRUTH):
        # brute-force ground truths that explode there (2^n schedules, 8! permutations): replay only
        brute = not (table == "paper" and split == "long" and task in ("combination", "schedule"))
        for r in generate([task], n, split, seed=3, with_trace=True, style="verbose", table=table):
            if brute and (task != "schedule" or r["length"] <= 14):
                assert r["answer"] == GROUND_TRUTH[task](r["prompt"]), (task, r["prompt"])
            assert check(task, r["completion"], r["prompt"]).ok


def test_paper_table_uses_table_f1_ranges_and_decimals():
    rs = list(generate(["addition"], 200, "short", seed=1, table="paper"))
    assert all(10 <= r["length"] <= 30 for r in rs) and any("." in r["prompt"] for r in rs)
    assert all(41 <= r["length"] <= 50 for r in generate(["addition"], 20, "long", seed=1, table="paper"))


# ---- styles ------------------------------------------------------------------------------------
def test_styles_pair_the_same_problems_and_verbose_is_at_least_twice_concise():
    for task in TASKS.names():
        styles = {s: list(generate([task], 30, "short", seed=2, with_trace=True, style=s)) for s in ("tail", "concise", "verbose")}
        for t, c, v in zip(styles["tail"], styles["concise"], styles["verbose"]):
            assert t["prompt"] == c["prompt"] == v["prompt"] and t["id"] == c["id"]
            assert final_answer(t["completion"]) == final_answer(c["completion"]) == final_answer(v["completion"]) == t["answer"]
            assert v["trace_chars"] >= 2 * c["trace_chars"], task
            assert c["trace_chars"] < t["trace_chars"] < v["trace_chars"]
            assert t["completion"].endswith("\\boxed{" + t["answer"] + "}")


def test_short_addition_concise_traces_are_a_few_dozen_tokens(tmp_path):
    from er.tiny import build_tokenizer

    tok = build_tokenizer(str(tmp_path))
    rs = list(generate(["addition"], 200, "short", seed=0, with_trace=True, style="concise"))
    mean = sum(len(tok(r["completion"])["input_ids"]) for r in rs) / len(rs)
    assert 20 < mean < 90
    assert all(2 <= r["length"] <= 4 for r in rs)


# ---- the checker catches broken traces ---------------------------------------------------------
def _one(task="addition", seed=0):
    return next(generate([task], 1, "short", seed=seed, with_trace=True))


def test_checker_rejects_a_wrong_fetch_a_false_operation_a_skipped_state_and_a_wrong_answer():
    r = _one()
    text = r["completion"]
    line = next(ln for ln in text.splitlines() if ln.startswith("S1:"))
    fetched = re.search(r"x0=(\d)", line).group(1)
    bad_fetch = text.replace(line, line.replace(f"x0={fetched}", f"x0={(int(fetched) + 1) % 10}"))
    assert not check("addition", bad_fetch).ok and check("addition", bad_fetch).state == 1
    op = re.search(r"; (\d\+\d\+\d=)(\d+);", line)
    bad_op = text.replace(line, line.replace(op.group(1) + op.group(2), op.group(1) + str(int(op.group(2)) + 1)))
    assert "is false" in check("addition", bad_op).error
    skipped = text.replace(line + "\n", "")
    assert not check("addition", skipped).ok
    wrong = text.replace("\\boxed{" + r["answer"] + "}", "\\boxed{1}")
    assert not check("addition", wrong).ok
    assert check("addition", text, prompt="What is 1 + 2?").error.startswith("input x=")
    assert check("addition", text, prompt=r["prompt"]).ok


# ---- the command ---------------------------------------------------------------------------------
def test_list_prints_one_line_per_task_and_nothing_else():
    p = run_er("synth-tail", "--list", check=True)
    lines = p.stdout.decode().splitlines()
    assert sorted(ln.split()[0] for ln in lines) == TASKS.names()
    assert any("[reconstructed]" in ln for ln in lines) and "S=2-4" in lines[0]
    assert "S=10-30" in run_er("synth-tail", "--list", "--ranges", "paper", check=True).stdout.decode()


def test_same_seed_same_bytes_and_records_validate_as_prompts():
    from er.schema import errors

    a = run_er("synth-tail", "--task", "all", "--n", "5", "--seed", "4", "--with-trace", check=True)
    b = run_er("synth-tail", "--task", "all", "--n", "5", "--seed", "4", "--with-trace", check=True)
    c = run_er("synth-tail", "--task", "all", "--n", "5", "--seed", "5", "--with-trace", check=True)
    assert a.stdout == b.stdout != c.stdout
    rows = parse_jsonl(a.stdout)
    assert len(rows) == 90 and len({r["id"] for r in rows}) == 90
    assert all(not errors(r, "prompt") for r in rows)
    assert {"id", "prompt", "answer", "task", "class", "length", "completion", "trace_chars", "trace_steps"} <= set(rows[0])
    assert "mean" in a.stderr.decode() and "trace chars" in a.stderr.decode()


def test_problems_are_deduplicated_within_a_task():
    rows = parse_jsonl(run_er("synth-tail", "--task", "bubble_sort", "--n", "300", "--seed", "0", check=True).stdout)
    assert len({r["prompt"].split(":")[-1] for r in rows}) > 250


def test_unknown_task_suggests_the_closest_name():
    p = run_er("synth-tail", "--task", "additon")
    assert p.returncode == 2 and "Did you mean 'addition'" in p.stderr.decode()


def test_bad_split_and_style_are_usage_errors():
    assert run_er("synth-tail", "--split", "huge").returncode == 2
    assert run_er("synth-tail", "--with-trace", "--style", "brief").returncode == 2


# ---- the tail reward -----------------------------------------------------------------------------
def test_tail_reward_checks_answers_exactly_and_traces_state_by_state():
    rows = parse_jsonl(run_er("synth-tail", "--task", "all", "--n", "3", "--seed", "9", "--with-trace", check=True).stdout)
    broken = dict(rows[0])
    line = next(ln for ln in broken["completion"].splitlines() if ln.startswith("S0:"))
    broken["completion"] = broken["completion"].replace(line, line.replace("S0:", "S0: fetch zz=1;", 1))
    wrong = dict(rows[1], completion=rows[1]["completion"].rsplit("\\boxed", 1)[0] + "\\boxed{nope}")
    unboxed = dict(rows[2], completion="no answer")
    data = jsonl(rows + [broken, wrong, unboxed])
    plain = parse_jsonl(run_er("score", "--reward", "tail", "--workers", "0", input=data, check=True).stdout)
    strict = parse_jsonl(run_er("score", "--reward", "tail:check_trace=true", "--workers", "0", input=data, check=True).stdout)
    assert [r["reward"] for r in plain] == [1.0] * len(rows) + [1.0, 0.0, 0.0]
    assert [r["reward"] for r in strict] == [1.0] * len(rows) + [0.0, 0.0, 0.0]


def test_tail_reward_rejects_an_unknown_task():
    p = run_er("score", "--reward", "tail", "--workers", "0",
               input=jsonl([{"task": "nope", "answer": "1", "completion": "\\boxed{1}"}]))
    assert p.returncode == 1 and "unknown TAIL task 'nope'" in p.stderr.decode()
