"""The 18 TAIL tasks (Hua et al. 2025, arXiv:2507.13332, Table C1): problem generators and atomic traces.

Each generator draws one instance of length n and returns an `Instance`: the prompt data, the gold
answer (a string) and the execution as a list of atomic states. A state is
(fetch, ops, write): the Memory Fetcher copies every operand it needs (`fetch k=v ...`), then one
elementary operation (or a few for the tasks noted below), then the cells it writes; the Linear
Transition is implicit in the state order (state i -> state i+1, the last -> F). Rendering is in
`er.data.tail.render`; the independent re-execution in `er.data.tail.check`.

The paper publishes no generator code; every trace layout here is ours, following its three modules
(the spec's addition trace, §2.4). Task semantics the paper leaves open are **reconstructed** (marked
in TASKS): Population Growth (P_t = P_{t-1} + z·P_{t-x}, P_t = y for t < x), Multi-Machine Schedule
(unit tasks with profit and deadline on x identical queues, greedy by profit into the latest free
slot), Count Letters (occurrences of one letter in a sentence of n words), Any Substring (the
distinct substrings in order of first occurrence), Division (quotient truncated to 2 decimals),
Permutation/Palindrome Combination (count the distinct palindromes that use all n letters,
backtracking over the half). Departures from atomicity: Prime Search's state holds the trial
divisions of one candidate, Count Letters' state counts one word, Dijkstra's select state takes
the minimum over the fetched frontier.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

WORDS = ("apple river stone cloud green light house table music paper water dream tiger happy "
         "orange silver garden window planet yellow simple little bright summer winter morning").split()

State = tuple  # (fetch: list[(key, value)], ops: list[str], write: list[(key, value)])


@dataclass
class Instance:
    prompt: str
    answer: str
    length: int
    inputs: list  # [(key, value)] restated on the trace's Input line
    states: list = field(default_factory=list)
    key: str = ""  # de-duplication key


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


def _with_point(rng: random.Random, digits: str) -> str:
    if len(digits) < 2:
        return digits
    p = rng.randint(1, len(digits) - 1)
    return digits[:p] + "." + digits[p:]


def _plain(d: Decimal) -> str:
    """A Decimal without exponent, trailing fraction zeros or a bare point."""
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


# ---- Simulation ------------------------------------------------------------------------------------
def addition(rng, n, m, decimals):
    x1 = _digits(rng, n)
    x2 = _digits(rng, m)
    if decimals and rng.random() < 0.5:
        x2 = _with_point(rng, x2)
    f = len(x2.split(".")[1]) if "." in x2 else 0
    a = x1 + "0" * f
    b = x2.replace(".", "")
    width = max(len(a), len(b))
    a, b = a.zfill(width), b.zfill(width)
    states = [([("x", x1), ("y", x2)], ["align"], [("x", a), ("y", b), ("f", str(f))])]
    carry, digits = 0, []
    for i in range(width):
        da, db = int(a[-1 - i]), int(b[-1 - i])
        s = da + db + carry
        states.append(([(f"x{i}", str(da)), (f"y{i}", str(db)), ("c", str(carry))], [f"{da}+{db}+{carry}={s}"],
                       [(f"r{i}", str(s % 10)), ("c", str(s // 10))]))
        carry = s // 10
        digits.append(s % 10)
    if carry:
        states.append(([("c", "1")], [], [(f"r{width}", "1")]))
        digits.append(1)
    raw = "".join(map(str, reversed(digits)))
    answer = _plain(Decimal(raw[: len(raw) - f] + "." + raw[len(raw) - f:] if f else raw))
    fetch = [(f"r{i}", str(digits[i])) for i in reversed(range(len(digits)))] + [("f", str(f))]
    states.append((fetch, [], [("ans", answer)]))
    return Instance(f"{x1} + {x2}", answer, n, [("x", x1), ("y", x2)], states, f"{x1}+{x2}")


def division(rng, n, m, decimals):
    x1 = _digits(rng, n)
    x2 = _digits(rng, max(1, min(m, n)))
    if decimals and rng.random() < 0.5:
        x2 = _with_point(rng, x2)
    f = len(x2.split(".")[1]) if "." in x2 else 0
    a, b = x1 + "0" * f, int(x2.replace(".", ""))
    states = [([("x", x1), ("y", x2)], ["scale"], [("x", a), ("y", str(b))])]
    digits = a + "00"
    r, q = 0, []
    for i, ch in enumerate(digits):
        cur = r * 10 + int(ch)
        qi = cur // b
        states.append(([(f"d{i}", ch), ("r", str(r)), ("y", str(b))],
                       [f"{r}*10+{ch}={cur}", f"{cur}//{b}={qi}", f"{cur}-{qi}*{b}={cur - qi * b}"],
                       [(f"q{i}", str(qi)), ("r", str(cur - qi * b))]))
        q.append(qi)
        r = cur - qi * b
    whole = "".join(map(str, q[:-2])).lstrip("0") or "0"
    answer = f"{whole}.{q[-2]}{q[-1]}"
    states.append(([(f"q{i}", str(v)) for i, v in enumerate(q)], [], [("ans", answer)]))
    return Instance(f"{x1} ÷ {x2}", answer, n, [("x", x1), ("y", x2)], states, f"{x1}/{x2}")


def bubble_sort(rng, n, m, decimals):
    a = rng.sample(range(1, 100 if n < 50 else 1000), n)
    start = ",".join(map(str, a))
    states = []
    for p in range(n - 1):
        for j in range(n - 1 - p):
            u, v = a[j], a[j + 1]
            if u > v:
                a[j], a[j + 1] = v, u
                states.append(([(f"a{j}", str(u)), (f"a{j + 1}", str(v))], [f"{u}>{v}"],
                               [(f"a{j}", str(v)), (f"a{j + 1}", str(u))]))
            else:
                states.append(([(f"a{j}", str(u)), (f"a{j + 1}", str(v))], [f"{u}<{v}"], []))
    answer = ",".join(map(str, a))
    states.append(([(f"a{j}", str(v)) for j, v in enumerate(a)], [], [("ans", answer)]))
    return Instance(start, answer, n, [("a", start)], states, start)


def _sentence(rng, n_chars):
    words: list[str] = []
    while len(" ".join(words)) < n_chars:
        words.append(rng.choice(WORDS))
    text = " ".join(words)[:n_chars]
    return text if not text.endswith(" ") else text[:-1] + rng.choice("abcdefgh")


def word_flip(rng, n, m, decimals):
    s = _sentence(rng, n)
    enc = s.replace(" ", "_")
    states = [([(f"s{len(s) - 1 - j}", enc[len(s) - 1 - j])], [], [(f"r{j}", enc[len(s) - 1 - j])])
              for j in range(len(s))]
    answer = s[::-1]
    states.append(([(f"r{j}", c) for j, c in enumerate(enc[::-1])], [], [("ans", answer.replace(" ", "_"))]))
    return Instance(s, answer, n, [("s", enc)], states, s)


def compare(rng, n, m, decimals):
    x1 = _digits(rng, n)
    if rng.random() < 0.5:  # a shared prefix makes the digit-by-digit phase non-trivial
        keep = rng.randint(0, n)
        x2 = x1[:keep] + "".join(str(rng.randint(0, 9)) for _ in range(n - keep))
        if x2[0] == "0":
            x2 = "1" + x2[1:]
    else:
        x2 = _digits(rng, m)
    if decimals and rng.random() < 0.5:
        x2 = _with_point(rng, x2)
    ia, fa = x1, ""
    ib, fb = (x2.split(".") + [""])[:2]
    w, f = max(len(ia), len(ib)), max(len(fa), len(fb))
    a = ia.zfill(w) + fa.ljust(f, "0")
    b = ib.zfill(w) + fb.ljust(f, "0")
    states = [([("x", x1), ("y", x2)], ["align"], [("x", a), ("y", b)])]
    answer = "="
    for i in range(len(a)):
        u, v = int(a[i]), int(b[i])
        if u == v:
            states.append(([(f"x{i}", a[i]), (f"y{i}", b[i])], [f"{u}={v}"], []))
            continue
        answer = ">" if u > v else "<"
        states.append(([(f"x{i}", a[i]), (f"y{i}", b[i])], [f"{u}{answer}{v}"], [("ans", answer)]))
        break
    else:
        states.append(([], [], [("ans", "=")]))
    return Instance(f"{x1} and {x2}", answer, n, [("x", x1), ("y", x2)], states, f"{x1}?{x2}")


# ---- Recursion -------------------------------------------------------------------------------------
def any_substring(rng, n, m, decimals):
    s = "".join(rng.choice("abc") for _ in range(n))
    states, seen = [], []
    for i in range(n):
        p = ""
        for j in range(i, n):
            q = p + s[j]
            new = q not in seen
            write = [("p", q)] + ([(f"u{len(seen)}", q)] if new else [])
            fetch = [("p", p), (f"s{j}", s[j])] if p else [(f"s{j}", s[j])]  # a new start reads no prefix
            states.append((fetch, ["new" if new else "seen"], write))
            if new:
                seen.append(q)
            p = q
    answer = ",".join(seen)
    states.append(([(f"u{k}", u) for k, u in enumerate(seen)], [], [("ans", answer)]))
    return Instance(s, answer, n, [("s", s)], states, s)


def derangement(rng, n, m, decimals):
    d = {1: 0, 2: 1}
    states = [([], [], [("D1", "0"), ("D2", "1")])]
    for k in range(3, n + 1):
        d[k] = (k - 1) * (d[k - 1] + d[k - 2])
        states.append(([(f"D{k - 1}", str(d[k - 1])), (f"D{k - 2}", str(d[k - 2]))],
                       [f"{k - 1}*({d[k - 1]}+{d[k - 2]})={d[k]}"], [(f"D{k}", str(d[k]))]))
    states.append(([(f"D{n}", str(d[n]))], [], [("ans", str(d[n]))]))
    return Instance(str(n), str(d[n]), n, [("n", str(n))], states, str(n))


# ---- Iteration -------------------------------------------------------------------------------------
def population(rng, n, m, decimals):
    n = max(n, 2)
    x, y, z = rng.randint(1, min(3, n - 1)), rng.randint(1, 5), rng.randint(1, 3)
    pop: list[int] = []
    states = []
    for t in range(n + 1):
        if t < x:
            pop.append(y)
            states.append(([("y", str(y))], [], [(f"P{t}", str(y))]))
        else:
            a, b = pop[t - 1], pop[t - x]
            pop.append(a + z * b)
            states.append(([(f"P{t - 1}", str(a)), (f"P{t - x}", str(b)), ("z", str(z))], [f"{a}+{z}*{b}={pop[t]}"],
                           [(f"P{t}", str(pop[t]))]))
    states.append(([(f"P{n}", str(pop[n]))], [], [("ans", str(pop[n]))]))
    inputs = [("n", str(n)), ("x", str(x)), ("y", str(y)), ("z", str(z))]
    return Instance(f"n={n} x={x} y={y} z={z}", str(pop[n]), n, inputs, states, f"{n},{x},{y},{z}")


# ---- Greedy ----------------------------------------------------------------------------------------
def dijkstra(rng, n, m, decimals):
    edges: dict[tuple[int, int], int] = {}
    for v in range(1, n):
        edges[(rng.randrange(v), v)] = rng.randint(1, 9)
    for _ in range(n // 2):
        u, v = sorted(rng.sample(range(n), 2))
        edges.setdefault((u, v), rng.randint(1, 9))
    edges = dict(sorted(edges.items()))
    inf = float("inf")
    dist = [0] + [inf] * (n - 1)
    show = lambda d: "inf" if d == inf else str(d)  # noqa: E731
    states = [([], [], [(f"d{v}", show(dist[v])) for v in range(n)])]
    done: set[int] = set()
    for _ in range(n):
        frontier = [v for v in range(n) if v not in done]
        u = min(frontier, key=lambda v: (dist[v], v))
        states.append(([(f"d{v}", show(dist[v])) for v in frontier], [f"min=d{u}"], [("u", str(u))]))
        done.add(u)
        for (a, b), w in edges.items():
            if u not in (a, b):
                continue
            v = b if a == u else a
            if v in done:
                continue
            alt = dist[u] + w
            fetch = [(f"d{u}", show(dist[u])), (f"e{a}.{b}", str(w)), (f"d{v}", show(dist[v]))]
            if alt < dist[v]:
                states.append((fetch, [f"{dist[u]}+{w}={alt}", f"{alt}<{show(dist[v])}"], [(f"d{v}", str(alt))]))
                dist[v] = alt
            else:
                states.append((fetch, [f"{dist[u]}+{w}={alt}", f"{alt}>={show(dist[v])}"], []))
    answer = ",".join(map(str, dist))
    states.append(([(f"d{v}", str(dist[v])) for v in range(n)], [], [("ans", answer)]))
    graph = ",".join(f"{a}-{b}:{w}" for (a, b), w in edges.items())
    inputs = [("n", str(n))] + [(f"e{a}.{b}", str(w)) for (a, b), w in edges.items()]
    return Instance(f"{n} vertices, edges {graph}", answer, n, inputs, states, graph)


def schedule(rng, n, m, decimals):
    x = rng.randint(1, max(1, min(3, n - 1)))
    horizon = max(1, -(-n // x) - 1)  # fewer slots than tasks need: the greedy choice matters
    tasks = [(rng.randint(1, 20), rng.randint(1, horizon)) for _ in range(n)]
    order = sorted(range(n), key=lambda i: (-tasks[i][0], i))
    top = max(d for _, d in tasks)
    load = {t: 0 for t in range(1, top + 1)}
    states = [([(f"p{i}", str(p)) for i, (p, _) in enumerate(tasks)], ["sort"],
               [("o", ",".join(map(str, order))), ("b", "0")] + [(f"l{t}", "0") for t in load])]
    total = 0
    for i in order:
        p, d = tasks[i]
        fetch = [(f"p{i}", str(p)), (f"d{i}", str(d)), ("b", str(total))]
        slot = None
        for t in range(d, 0, -1):
            fetch.append((f"l{t}", str(load[t])))
            if load[t] < x:
                slot = t
                break
        if slot is None:
            states.append((fetch, ["skip"], []))
            continue
        load[slot] += 1
        total += p
        states.append((fetch, [f"slot={slot}", f"{total - p}+{p}={total}"], [(f"l{slot}", str(load[slot])), ("b", str(total))]))
    states.append(([("b", str(total))], [], [("ans", str(total))]))
    spec = ",".join(f"{p}/{d}" for p, d in tasks)
    inputs = [("x", str(x))] + [kv for i, (p, d) in enumerate(tasks) for kv in ((f"p{i}", str(p)), (f"d{i}", str(d)))]
    return Instance(f"{x} queues, tasks (profit/deadline) {spec}", str(total), n, inputs, states, f"{x}:{spec}")


# ---- Enumeration -----------------------------------------------------------------------------------
def count_letters(rng, n, m, decimals):
    words = [rng.choice(WORDS) for _ in range(n)]
    letter = rng.choice("".join(words)) if rng.random() < 0.85 else rng.choice("bjkqvxz")
    states = [([], [], [("c", "0")])]
    c = 0
    for i, w in enumerate(words):
        k = w.count(letter)
        states.append(([(f"w{i}", w), ("L", letter), ("c", str(c))], [f"{w}:{letter}={k}", f"{c}+{k}={c + k}"],
                       [("c", str(c + k))]))
        c += k
    states.append(([("c", str(c))], [], [("ans", str(c))]))
    text = " ".join(words)
    return Instance(f"'{letter}' in \"{text}\"", str(c), n, [("L", letter)] + [(f"w{i}", w) for i, w in enumerate(words)],
                    states, f"{letter}:{text}")


def diophantine(rng, n, m, decimals):
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    states, sols = [], []
    for x in range(n // a + 1):
        r = n - a * x
        ops = [f"{n}-{a}*{x}={r}", f"{r}%{b}={r % b}"]
        write = []
        if r % b == 0:
            write = [(f"s{len(sols)}", f"({x},{r // b})")]
            ops.append(f"{r}//{b}={r // b}")
            sols.append(f"({x},{r // b})")
        states.append(([("n", str(n)), ("a", str(a)), ("b", str(b)), ("x", str(x))], ops, write))
    answer = ",".join(sols) or "none"
    states.append(([(f"s{k}", s) for k, s in enumerate(sols)], [], [("ans", answer)]))
    inputs = [("n", str(n)), ("a", str(a)), ("b", str(b))]
    return Instance(f"{a}x + {b}y = {n}", answer, n, inputs, states, f"{a},{b},{n}")


def prime_search(rng, n, m, decimals):
    lo, hi = sorted(rng.sample(range(n, m + 1), 2)) if m > n else (n, n + 1)
    states, primes = [], []
    for c in range(lo, hi + 1):
        ops = []
        prime = c >= 2
        d = 2
        while d * d <= c:
            ops.append(f"{c}%{d}={c % d}")
            if c % d == 0:
                prime = False
                break
            d += 1
        if c < 2:
            ops.append(f"{c}<2")
        write = [(f"p{len(primes)}", str(c))] if prime else []
        if prime:
            primes.append(str(c))
        states.append(([("c", str(c))], ops, write))
    answer = ",".join(primes) or "none"
    states.append(([(f"p{k}", p) for k, p in enumerate(primes)], [], [("ans", answer)]))
    return Instance(f"[{lo}, {hi}]", answer, hi, [("lo", str(lo)), ("hi", str(hi))], states, f"{lo},{hi}")


# ---- Dynamic programming ---------------------------------------------------------------------------
def knapsack(rng, n, m, decimals):
    items = [(rng.randint(1, 5), rng.randint(1, 9)) for _ in range(n)]
    cap = rng.randint(n, 2 * n + 2)
    k = [[0] * (cap + 1) for _ in range(n + 1)]
    states = []
    for i in range(1, n + 1):
        w, v = items[i - 1]
        for c in range(1, cap + 1):
            up = k[i - 1][c]
            if w > c:
                k[i][c] = up
                states.append(([(f"k{i - 1}.{c}", str(up)), (f"w{i}", str(w))], [f"{w}>{c}"], [(f"k{i}.{c}", str(up))]))
            else:
                take = k[i - 1][c - w] + v
                k[i][c] = max(up, take)
                states.append(([(f"k{i - 1}.{c}", str(up)), (f"k{i - 1}.{c - w}", str(k[i - 1][c - w])),
                                (f"w{i}", str(w)), (f"v{i}", str(v))],
                               [f"{k[i - 1][c - w]}+{v}={take}", f"max({up},{take})={k[i][c]}"], [(f"k{i}.{c}", str(k[i][c]))]))
    answer = str(k[n][cap])
    states.append(([(f"k{n}.{cap}", answer)], [], [("ans", answer)]))
    spec = ",".join(f"{w}/{v}" for w, v in items)
    inputs = [("W", str(cap))] + [kv for i, (w, v) in enumerate(items, 1) for kv in ((f"w{i}", str(w)), (f"v{i}", str(v)))]
    return Instance(f"capacity {cap}, items (weight/value) {spec}", answer, n, inputs, states, f"{cap}:{spec}")


def lcs(rng, n, m, decimals):
    x = "".join(rng.choice("abcd") for _ in range(n))
    y = "".join(rng.choice("abcd") for _ in range(m))
    t = [[0] * (m + 1) for _ in range(n + 1)]
    states = []
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            base = [(f"a{i}", x[i - 1]), (f"b{j}", y[j - 1])]
            if x[i - 1] == y[j - 1]:
                t[i][j] = t[i - 1][j - 1] + 1
                states.append((base + [(f"L{i - 1}.{j - 1}", str(t[i - 1][j - 1]))], ["same", f"{t[i - 1][j - 1]}+1={t[i][j]}"],
                               [(f"L{i}.{j}", str(t[i][j]))]))
            else:
                t[i][j] = max(t[i - 1][j], t[i][j - 1])
                states.append((base + [(f"L{i - 1}.{j}", str(t[i - 1][j])), (f"L{i}.{j - 1}", str(t[i][j - 1]))],
                               ["differ", f"max({t[i - 1][j]},{t[i][j - 1]})={t[i][j]}"], [(f"L{i}.{j}", str(t[i][j]))]))
    answer = str(t[n][m])
    states.append(([(f"L{n}.{m}", answer)], [], [("ans", answer)]))
    return Instance(f"{x} and {y}", answer, n, [("a", x), ("b", y)], states, f"{x},{y}")


def levenshtein(rng, n, m, decimals):
    x = "".join(rng.choice("abcd") for _ in range(n))
    y = "".join(rng.choice("abcd") for _ in range(m))
    e = [[i + j if i * j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]
    states = []
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = 0 if x[i - 1] == y[j - 1] else 1
            diag, up, left = e[i - 1][j - 1], e[i - 1][j], e[i][j - 1]
            e[i][j] = min(diag + cost, up + 1, left + 1)
            states.append(([(f"a{i}", x[i - 1]), (f"b{j}", y[j - 1]), (f"E{i - 1}.{j - 1}", str(diag)),
                            (f"E{i - 1}.{j}", str(up)), (f"E{i}.{j - 1}", str(left))],
                           ["same" if not cost else "differ", f"min({diag}+{cost},{up}+1,{left}+1)={e[i][j]}"],
                           [(f"E{i}.{j}", str(e[i][j]))]))
    answer = str(e[n][m])
    states.append(([(f"E{n}.{m}", answer)], [], [("ans", answer)]))
    return Instance(f"{x} into {y}", answer, n, [("a", x), ("b", y)], states, f"{x},{y}")


# ---- Divide and conquer, backtracking --------------------------------------------------------------
def binary_search(rng, n, m, decimals):
    s = sorted(rng.sample(range(1, 1000), n))
    target = rng.choice(s)
    lo, hi = 0, n - 1
    states = [([("n", str(n))], [], [("lo", "0"), ("hi", str(n - 1))])]
    while True:
        mid = (lo + hi) // 2
        fetch = [("lo", str(lo)), ("hi", str(hi)), (f"s{mid}", str(s[mid])), ("t", str(target))]
        if s[mid] == target:
            states.append((fetch, [f"({lo}+{hi})//2={mid}", f"{s[mid]}={target}"], [("ans", str(mid))]))
            break
        if s[mid] > target:
            states.append((fetch, [f"({lo}+{hi})//2={mid}", f"{s[mid]}>{target}"], [("hi", str(mid - 1))]))
            hi = mid - 1
        else:
            states.append((fetch, [f"({lo}+{hi})//2={mid}", f"{s[mid]}<{target}"], [("lo", str(mid + 1))]))
            lo = mid + 1
    listed = ",".join(map(str, s))
    return Instance(f"{target} in {listed}", str(s.index(target)), n, [("t", str(target)), ("s", listed)], states,
                    f"{target}:{listed}")


def combination(rng, n, m, decimals):
    if rng.random() < 0.7:  # mostly lists that do form palindromes
        half = [rng.choice("abcd") for _ in range(n // 2)]
        letters = half + half + ([rng.choice("abcd")] if n % 2 else [])
        rng.shuffle(letters)
    else:
        letters = [rng.choice("abcd") for _ in range(n)]
    s = "".join(letters)
    counts = {c: s.count(c) for c in sorted(set(s))}
    odd = sum(v % 2 for v in counts.values())
    states = [([("s", s)], ["count"], [(f"n{c}", str(v)) for c, v in counts.items()] + [("odd", str(odd))])]
    if odd > 1:
        states.append(([("odd", str(odd))], [f"{odd}>1"], [("ans", "0")]))
        return Instance(s, "0", n, [("s", s)], states, s)
    half = "".join(c * (v // 2) for c, v in counts.items())
    states.append(([(f"n{c}", str(v)) for c, v in counts.items()], ["halve"], [("p", "-"), ("r", half or "-"), ("k", "0")]))
    found = [0]

    def dfs(p: str, r: str) -> None:
        if not r:
            found[0] += 1
            states.append(([("p", p or "-"), ("r", "-"), ("k", str(found[0] - 1))], [f"{found[0] - 1}+1={found[0]}"],
                           [("k", str(found[0]))]))
            return
        for c in sorted(set(r)):
            rest = r.replace(c, "", 1)
            states.append(([("p", p or "-"), ("r", r)], [f"push {c}"], [("p", p + c), ("r", rest or "-")]))
            dfs(p + c, rest)
            states.append(([("p", p + c), ("r", rest or "-")], [f"pop {c}"], [("p", p or "-"), ("r", r)]))

    dfs("", half)
    states.append(([("k", str(found[0]))], [], [("ans", str(found[0]))]))
    return Instance(s, str(found[0]), n, [("s", s)], states, s)
