"""Independent re-execution of TAIL traces (written apart from the generator; it imports nothing from it).

`check(task, text, prompt=None)` parses the trace text (`Input:` line, `S<i>: ...` state lines; other
lines, e.g. the verbose style's prose, are ignored) and replays it state by state:

1. memory starts from the Input line (and, with `prompt`, every input value must occur in the
   prompt); each state's `fetch k=v` must equal the memory cell k (Memory Fetcher), then its
   `write k=v` cells are stored;
2. every arithmetic operation (`8+6+0=14`, `max(3,7)=7`, `11<inf`, `(0+9)//2=4`) is re-evaluated
   with a small whitelisted evaluator (never `eval`);
3. the checker re-runs the task's algorithm itself (its own code below) and requires each state to
   fetch and write exactly the cells its own run fetches and writes, in the same order of states;
4. transitions are linear (`S<i> -> S<i+1>`, the last `-> F`); the cell `ans` written by the last
   state, decoded (`_` is a space), is the replayed answer and must equal the final `\\boxed{}`.

Returns a `Verdict(ok, answer, error, state)`; `final_answer(text)` extracts the last `\\boxed{...}`.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass

from er.rewards.structure import last_boxed

_STATE = re.compile(r"^S(\d+): (.*)$")


@dataclass
class Verdict:
    ok: bool
    answer: str | None
    error: str | None = None
    state: int | None = None  # index of the first invalid state


class TraceError(Exception):
    def __init__(self, message: str, state: int | None = None):
        super().__init__(message)
        self.state = state


def final_answer(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (balanced braces), stripped; None if there is none."""
    content = last_boxed(text)
    return None if content is None else content.strip()


def _pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split():
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise TraceError(f"cell {item!r} is not key=value")
        out.append((key, value))
    return out


def parse(text: str) -> tuple[dict, list[dict]]:
    inputs: dict[str, str] | None = None
    states: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Input: ") and inputs is None:
            inputs = dict(_pairs(line[7:]))
            continue
        m = _STATE.match(line)
        if not m:
            continue
        st = {"index": int(m.group(1)), "fetch": [], "ops": [], "write": [], "next": None}
        stage = -1  # a state reads: fetch (first), operations, write, -> next (last); each part once
        for part in m.group(2).split("; "):
            kind = 0 if part.startswith("fetch ") else 2 if part.startswith("write ") else 3 if part.startswith("-> ") else 1
            if kind < stage or (kind == stage and kind != 1):
                raise TraceError(f"state S{st['index']} is not 'fetch ...; op; ...; write ...; -> next'", len(states))
            stage = kind
            if kind == 0:
                st["fetch"] = _pairs(part[6:])
            elif kind == 2:
                st["write"] = _pairs(part[6:])
            elif kind == 3:
                st["next"] = part[3:]
            else:
                st["ops"].append(part)
        states.append(st)
    if inputs is None:
        raise TraceError("no 'Input:' line")
    return inputs, states


# ---- arithmetic ----------------------------------------------------------------------------------
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
        ast.Mod: operator.mod}
_NUMERIC = re.compile(r"^[0-9+\-*/%(),<>=]*(max|min|inf)?[0-9+\-*/%(),<>=a-z]*$")


def _value(node):
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name) and node.id == "inf":
        return float("inf")
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and right == 0:
            raise TraceError("division by zero")
        return _BIN[type(node.op)](left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("max", "min")
            and node.args and not node.keywords):
        return (max if node.func.id == "max" else min)(_value(a) for a in node.args)
    raise TraceError("not arithmetic")


def _evaluate(text: str):
    if len(text) > 2000:
        raise TraceError("operation too long")
    return _value(ast.parse(text, mode="eval").body)


def check_op(op: str) -> None:
    """Raise TraceError if an arithmetic operation is false; words ('align', 'push a') are skipped."""
    if not any(ch.isdigit() for ch in op) or not _NUMERIC.match(op) or op.count("(") > 20:
        return
    if re.search(r"[a-z]", op.replace("max", "").replace("min", "").replace("inf", "")):
        return
    for rel in (">=", "<", ">", "="):
        if rel in op:
            lhs, rhs = op.split(rel, 1)
            break
    else:
        return
    try:
        a, b = _evaluate(lhs), _evaluate(rhs)
    except (SyntaxError, TraceError, ValueError, TypeError):
        raise TraceError(f"operation {op!r} is not well-formed arithmetic") from None
    good = {">=": a >= b, "<": a < b, ">": a > b, "=": a == b}[rel]
    if not good:
        raise TraceError(f"operation {op!r} is false")


# ---- the checker's own runs of each algorithm: lists of (fetch dict, write dict) -------------------
def _add(inp):
    x, y = inp["x"], inp["y"]
    frac = len(y) - y.index(".") - 1 if "." in y else 0
    a, b = x + "0" * frac, y.replace(".", "")
    L = max(len(a), len(b))
    a, b = a.rjust(L, "0"), b.rjust(L, "0")
    out = [({"x": x, "y": y}, {"x": a, "y": b, "f": str(frac)})]
    res, carry = [], 0
    for col in range(L):
        u, v = int(a[L - 1 - col]), int(b[L - 1 - col])
        total = u + v + carry
        out.append(({f"x{col}": str(u), f"y{col}": str(v), "c": str(carry)}, {f"r{col}": str(total % 10), "c": str(total // 10)}))
        res.append(total % 10)
        carry = total // 10
    if carry:
        out.append(({"c": "1"}, {f"r{L}": "1"}))
        res.append(1)
    text = "".join(str(d) for d in reversed(res)).lstrip("0").rjust(frac + 1, "0")
    if frac:
        text = (text[:-frac] + "." + text[-frac:]).rstrip("0").rstrip(".")
    fetch = {f"r{k}": str(res[k]) for k in range(len(res))}
    fetch["f"] = str(frac)
    out.append((fetch, {"ans": text}))
    return out


def _div(inp):
    x, y = inp["x"], inp["y"]
    frac = len(y.split(".")[1]) if "." in y else 0
    num, den = int(x) * 10 ** frac, int(y.replace(".", ""))
    out = [({"x": x, "y": y}, {"x": str(num), "y": str(den)})]
    digits = str(num) + "00"
    rem, qs = 0, []
    for pos, d in enumerate(digits):
        cur = 10 * rem + int(d)
        out.append(({f"d{pos}": d, "r": str(rem), "y": str(den)}, {f"q{pos}": str(cur // den), "r": str(cur % den)}))
        qs.append(cur // den)
        rem = cur % den
    hundredths = num * 100 // den
    out.append(({f"q{k}": str(v) for k, v in enumerate(qs)}, {"ans": f"{hundredths // 100}.{hundredths % 100:02d}"}))
    return out


def _sort(inp):
    xs = [int(v) for v in inp["a"].split(",")]
    out = []
    for end in range(len(xs) - 1, 0, -1):
        for j in range(end):
            f = {f"a{j}": str(xs[j]), f"a{j + 1}": str(xs[j + 1])}
            if xs[j] > xs[j + 1]:
                xs[j], xs[j + 1] = xs[j + 1], xs[j]
                out.append((f, {f"a{j}": str(xs[j]), f"a{j + 1}": str(xs[j + 1])}))
            else:
                out.append((f, {}))
    out.append(({f"a{j}": str(v) for j, v in enumerate(xs)}, {"ans": ",".join(map(str, xs))}))
    return out


def _flip(inp):
    s = inp["s"]
    n = len(s)
    out = [({f"s{n - 1 - k}": s[n - 1 - k]}, {f"r{k}": s[n - 1 - k]}) for k in range(n)]
    out.append(({f"r{k}": ch for k, ch in enumerate(reversed(s))}, {"ans": s[::-1]}))
    return out


def _compare(inp):
    x, y = inp["x"], inp["y"]
    xi, xf = (x.split(".") + [""])[:2]
    yi, yf = (y.split(".") + [""])[:2]
    w, f = max(len(xi), len(yi)), max(len(xf), len(yf))
    a, b = xi.rjust(w, "0") + xf.ljust(f, "0"), yi.rjust(w, "0") + yf.ljust(f, "0")
    out = [({"x": x, "y": y}, {"x": a, "y": b})]
    k = next((i for i in range(len(a)) if a[i] != b[i]), None)
    for i in range(len(a) if k is None else k):
        out.append(({f"x{i}": a[i], f"y{i}": b[i]}, {}))
    if k is None:
        out.append(({}, {"ans": "="}))
    else:
        out.append(({f"x{k}": a[k], f"y{k}": b[k]}, {"ans": ">" if a[k] > b[k] else "<"}))
    return out


def _substrings(inp):
    s = inp["s"]
    out, found = [], {}
    for i in range(len(s)):
        for j in range(i, len(s)):
            sub = s[i:j + 1]
            w = {"p": sub}
            if sub not in found:
                w[f"u{len(found)}"] = sub
                found[sub] = len(found)
            out.append(({f"s{j}": s[j]} if j == i else {"p": s[i:j], f"s{j}": s[j]}, w))
    out.append(({f"u{k}": u for u, k in found.items()}, {"ans": ",".join(found)}))
    return out


def _derange(inp):
    n = int(inp["n"])
    out = [({}, {"D1": "0", "D2": "1"})]
    prev2, prev1 = 0, 1
    for k in range(3, n + 1):
        cur = (k - 1) * (prev1 + prev2)
        out.append(({f"D{k - 1}": str(prev1), f"D{k - 2}": str(prev2)}, {f"D{k}": str(cur)}))
        prev2, prev1 = prev1, cur
    value = {1: 0, 2: 1}.get(n, prev1)
    out.append(({f"D{n}": str(value)}, {"ans": str(value)}))
    return out


def _population(inp):
    n, x, y, z = (int(inp[k]) for k in "nxyz")
    hist = []
    out = []
    for t in range(n + 1):
        if t < x:
            hist.append(y)
            out.append(({"y": str(y)}, {f"P{t}": str(y)}))
        else:
            hist.append(hist[-1] + z * hist[t - x])
            out.append(({f"P{t - 1}": str(hist[-2]), f"P{t - x}": str(hist[t - x]), "z": str(z)}, {f"P{t}": str(hist[-1])}))
    out.append(({f"P{n}": str(hist[n])}, {"ans": str(hist[n])}))
    return out


def _dijkstra(inp):
    n = int(inp["n"])
    w = {}
    for key, val in inp.items():
        if key.startswith("e"):
            a, b = map(int, key[1:].split("."))
            w[(a, b)] = int(val)
    INF = None
    d = {v: (0 if v == 0 else INF) for v in range(n)}
    s = lambda v: "inf" if d[v] is INF else str(d[v])  # noqa: E731
    out = [({}, {f"d{v}": s(v) for v in range(n)})]
    open_ = list(range(n))
    while open_:
        best = None
        for v in open_:
            if d[v] is not INF and (best is None or d[v] < d[best]):
                best = v
        best = open_[0] if best is None else best
        out.append(({f"d{v}": s(v) for v in open_}, {"u": str(best)}))
        open_.remove(best)
        for (a, b) in sorted(w):
            if best in (a, b) and (b if a == best else a) in open_:
                v = b if a == best else a
                f = {f"d{best}": s(best), f"e{a}.{b}": str(w[(a, b)]), f"d{v}": s(v)}
                cand = d[best] + w[(a, b)]
                if d[v] is INF or cand < d[v]:
                    d[v] = cand
                    out.append((f, {f"d{v}": str(cand)}))
                else:
                    out.append((f, {}))
    out.append(({f"d{v}": s(v) for v in range(n)}, {"ans": ",".join(s(v) for v in range(n))}))
    return out


def _schedule(inp):
    x = int(inp["x"])
    jobs = []
    k = 0
    while f"p{k}" in inp:
        jobs.append((int(inp[f"p{k}"]), int(inp[f"d{k}"]), k))
        k += 1
    ranked = [j for _, _, j in sorted(jobs, key=lambda t: (-t[0], t[2]))]
    last = max(d for _, d, _ in jobs)
    used = [0] * (last + 1)
    w0 = {"o": ",".join(map(str, ranked)), "b": "0", **{f"l{t}": "0" for t in range(1, last + 1)}}
    out = [({f"p{j}": str(p) for p, _, j in jobs}, w0)]
    gain = 0
    for j in ranked:
        p, dl, _ = jobs[j]
        f = {f"p{j}": str(p), f"d{j}": str(dl), "b": str(gain)}
        placed = None
        t = dl
        while t >= 1:
            f[f"l{t}"] = str(used[t])
            if used[t] < x:
                placed = t
                break
            t -= 1
        if placed is None:
            out.append((f, {}))
        else:
            used[placed] += 1
            gain += p
            out.append((f, {f"l{placed}": str(used[placed]), "b": str(gain)}))
    out.append(({"b": str(gain)}, {"ans": str(gain)}))
    return out


def _letters(inp):
    letter = inp["L"]
    words = [inp[f"w{i}"] for i in range(len(inp) - 1)]
    out = [({}, {"c": "0"})]
    total = 0
    for i, word in enumerate(words):
        hits = sum(ch == letter for ch in word)
        out.append(({f"w{i}": word, "L": letter, "c": str(total)}, {"c": str(total + hits)}))
        total += hits
    out.append(({"c": str(total)}, {"ans": str(total)}))
    return out


def _diophantine(inp):
    n, a, b = int(inp["n"]), int(inp["a"]), int(inp["b"])
    out, sols = [], []
    for x in range(0, n // a + 1):
        rest = n - a * x
        w = {}
        if rest % b == 0:
            w = {f"s{len(sols)}": f"({x},{rest // b})"}
            sols.append(w[f"s{len(sols)}"])
        out.append(({"n": str(n), "a": str(a), "b": str(b), "x": str(x)}, w))
    out.append(({f"s{k}": v for k, v in enumerate(sols)}, {"ans": ",".join(sols) or "none"}))
    return out


def _primes(inp):
    lo, hi = int(inp["lo"]), int(inp["hi"])
    out, found = [], []
    for c in range(lo, hi + 1):
        is_prime = c > 1 and all(c % d for d in range(2, int(c ** 0.5) + 1))
        out.append(({"c": str(c)}, {f"p{len(found)}": str(c)} if is_prime else {}))
        if is_prime:
            found.append(str(c))
    out.append(({f"p{k}": v for k, v in enumerate(found)}, {"ans": ",".join(found) or "none"}))
    return out


def _knapsack(inp):
    cap = int(inp["W"])
    items = []
    while f"w{len(items) + 1}" in inp:
        i = len(items) + 1
        items.append((int(inp[f"w{i}"]), int(inp[f"v{i}"])))
    best = {(0, c): 0 for c in range(cap + 1)}
    out = []
    for i, (wt, val) in enumerate(items, 1):
        best[(i, 0)] = 0
        for c in range(1, cap + 1):
            f = {f"k{i - 1}.{c}": str(best[(i - 1, c)]), f"w{i}": str(wt)}
            if wt <= c:
                f[f"k{i - 1}.{c - wt}"] = str(best[(i - 1, c - wt)])
                f[f"v{i}"] = str(val)
                best[(i, c)] = max(best[(i - 1, c)], best[(i - 1, c - wt)] + val)
            else:
                best[(i, c)] = best[(i - 1, c)]
            out.append((f, {f"k{i}.{c}": str(best[(i, c)])}))
    n = len(items)
    out.append(({f"k{n}.{cap}": str(best[(n, cap)])}, {"ans": str(best[(n, cap)])}))
    return out


def _grid(inp, name, cell):
    x, y = inp["a"], inp["b"]
    out = []
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            f, value = cell(i, j, x[i - 1], y[j - 1])
            out.append(({f"a{i}": x[i - 1], f"b{j}": y[j - 1], **f}, {f"{name}{i}.{j}": str(value)}))
    return out


def _lcs(inp):
    x, y = inp["a"], inp["b"]
    T = {(i, j): 0 for i in range(len(x) + 1) for j in range(len(y) + 1)}

    def cell(i, j, u, v):
        if u == v:
            T[(i, j)] = T[(i - 1, j - 1)] + 1
            return {f"L{i - 1}.{j - 1}": str(T[(i - 1, j - 1)])}, T[(i, j)]
        T[(i, j)] = max(T[(i - 1, j)], T[(i, j - 1)])
        return {f"L{i - 1}.{j}": str(T[(i - 1, j)]), f"L{i}.{j - 1}": str(T[(i, j - 1)])}, T[(i, j)]

    out = _grid(inp, "L", cell)
    end = T[(len(x), len(y))]
    return out + [({f"L{len(x)}.{len(y)}": str(end)}, {"ans": str(end)})]


def _edit(inp):
    x, y = inp["a"], inp["b"]
    E = {(i, j): max(i, j) if min(i, j) == 0 else None for i in range(len(x) + 1) for j in range(len(y) + 1)}

    def cell(i, j, u, v):
        E[(i, j)] = min(E[(i - 1, j - 1)] + (u != v), E[(i - 1, j)] + 1, E[(i, j - 1)] + 1)
        return {f"E{i - 1}.{j - 1}": str(E[(i - 1, j - 1)]), f"E{i - 1}.{j}": str(E[(i - 1, j)]),
                f"E{i}.{j - 1}": str(E[(i, j - 1)])}, E[(i, j)]

    out = _grid(inp, "E", cell)
    end = E[(len(x), len(y))]
    return out + [({f"E{len(x)}.{len(y)}": str(end)}, {"ans": str(end)})]


def _bsearch(inp):
    xs = [int(v) for v in inp["s"].split(",")]
    t = int(inp["t"])
    lo, hi = 0, len(xs) - 1
    out = [({"n": str(len(xs))}, {"lo": "0", "hi": str(hi)})]
    while lo <= hi:
        mid = (lo + hi) // 2
        f = {"lo": str(lo), "hi": str(hi), f"s{mid}": str(xs[mid]), "t": str(t)}
        if xs[mid] == t:
            out.append((f, {"ans": str(mid)}))
            return out
        if xs[mid] < t:
            lo = mid + 1
            out.append((f, {"lo": str(lo)}))
        else:
            hi = mid - 1
            out.append((f, {"hi": str(hi)}))
    raise TraceError("target not in the list")


def _palindromes(inp):
    s = inp["s"]
    counts = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    keys = sorted(counts)
    odd = sum(1 for c in keys if counts[c] % 2)
    out = [({"s": s}, {**{f"n{c}": str(counts[c]) for c in keys}, "odd": str(odd)})]
    if odd > 1:
        return out + [({"odd": str(odd)}, {"ans": "0"})]
    half = "".join(c * (counts[c] // 2) for c in keys)
    out.append(({f"n{c}": str(counts[c]) for c in keys}, {"p": "-", "r": half or "-", "k": "0"}))
    # iterative depth-first search over distinct arrangements of the half (explicit stack)
    k = 0
    stack = [("", half, iter(sorted(set(half))))]
    show = lambda t: t or "-"  # noqa: E731
    if not half:
        out.append(({"p": "-", "r": "-", "k": "0"}, {"k": "1"}))
        k = 1
        stack = []
    while stack:
        p, r, choices = stack[-1]
        c = next(choices, None)
        if c is None:
            stack.pop()
            if stack:
                parent_p, parent_r, _ = stack[-1]
                out.append(({"p": show(p), "r": show(r)}, {"p": show(parent_p), "r": show(parent_r)}))
            continue
        rest = r.replace(c, "", 1)
        out.append(({"p": show(p), "r": show(r)}, {"p": p + c, "r": show(rest)}))
        if rest:
            stack.append((p + c, rest, iter(sorted(set(rest)))))
        else:
            out.append(({"p": p + c, "r": "-", "k": str(k)}, {"k": str(k + 1)}))
            k += 1
            out.append(({"p": p + c, "r": "-"}, {"p": show(p), "r": show(r)}))
    return out + [({"k": str(k)}, {"ans": str(k)})]


RUNS = {
    "addition": _add, "division": _div, "bubble_sort": _sort, "word_flip": _flip, "compare": _compare,
    "any_substring": _substrings, "derangement": _derange, "population": _population, "dijkstra": _dijkstra,
    "schedule": _schedule, "count_letters": _letters, "diophantine": _diophantine, "prime_search": _primes,
    "knapsack": _knapsack, "lcs": _lcs, "levenshtein": _edit, "binary_search": _bsearch, "combination": _palindromes,
}


def _norm(text: str) -> str:
    return re.sub(r"[\s_]", "", text)


def check(task: str, text: str, prompt: str | None = None) -> Verdict:
    """Replay a trace; ok when every state is valid and the replayed answer equals the boxed one."""
    boxed = final_answer(text)
    run = RUNS.get(task)
    if run is None:
        return Verdict(False, boxed, f"unknown TAIL task {task!r}")
    try:
        inputs, states = parse(text)
        if prompt is not None:
            flat = _norm(prompt)
            for key, value in inputs.items():
                if _norm(value) not in flat:
                    raise TraceError(f"input {key}={value} does not occur in the prompt")
        try:
            expected = run(inputs)
        except (KeyError, ValueError, IndexError, TypeError, ZeroDivisionError) as exc:
            raise TraceError(f"Input line does not describe a {task} problem ({exc})") from None
        if len(states) != len(expected):
            raise TraceError(f"{len(states)} states, the algorithm takes {len(expected)}",
                             min(len(states), len(expected)))
        memory = dict(inputs)
        for i, (st, (want_fetch, want_write)) in enumerate(zip(states, expected)):
            if st["index"] != i:
                raise TraceError(f"state S{st['index']} where S{i} belongs", i)
            want_next = "F" if i == len(states) - 1 else f"S{i + 1}"
            if st["next"] != want_next:
                raise TraceError(f"S{i} goes to {st['next']}, not {want_next}", i)
            for key, value in st["fetch"]:
                if key not in memory and key not in want_fetch:
                    raise TraceError(f"S{i} fetches {key}, which is not in memory", i)
                if key in memory and memory[key] != value:
                    raise TraceError(f"S{i} fetches {key}={value} but memory holds {memory[key]}", i)
            if dict(st["fetch"]) != want_fetch:
                raise TraceError(f"S{i} fetches {dict(st['fetch'])}, the algorithm needs {want_fetch}", i)
            for op in st["ops"]:
                try:
                    check_op(op)
                except TraceError as exc:
                    raise TraceError(f"S{i}: {exc}", i) from None
            if dict(st["write"]) != {k: v.replace(" ", "_") for k, v in want_write.items()}:
                raise TraceError(f"S{i} writes {dict(st['write'])}, the algorithm writes {want_write}", i)
            memory.update(st["write"])
        answer = memory.get("ans")
        if answer is None:
            raise TraceError("no state writes the answer cell 'ans'")
        answer = answer.replace("_", " ")
        if boxed is not None and boxed != answer:
            raise TraceError(f"boxed answer {boxed!r} differs from the replayed {answer!r}")
        return Verdict(True, answer)
    except TraceError as exc:
        return Verdict(False, boxed, str(exc), exc.state)
