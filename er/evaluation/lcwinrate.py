"""Length-Controlled AlpacaEval win rate (Dubois, Galambosi, Liang, Hashimoto 2024, arXiv 2404.04475).

Spec length-control-and-eval.md §7 ([CODE], tatsu-lab/alpaca_eval metrics/glm_winrate.py). Input:
pairwise annotation records in AlpacaEval's shape — `output_1` (baseline b, `generator_1`), `output_2`
(model m, `generator_2`), `preference` in [1, 2] (1 baseline preferred, 2 model preferred, 0 or 1.5 a
draw, continuous for weighted annotators) and optionally `instruction_difficulty` (γ, AlpacaEval's
precomputed per-instruction table).

    y_x = p_x − 1 (0 ↦ 1.5 first; a missing p: see "Null preferences" below)
    Δ_x = len_chars(output_1) − len_chars(output_2)      (baseline − model, characters)
    u_x = tanh(Δ_x / s),  s = std(Δ over the model's rows, ddof = 1)
    P(y_x = 1) = σ(θ·c + φ·u_x + ψ·γ_x),   c = 1 on the model's rows, no intercept
    LC win rate = mean_x σ(θ + ψ·γ_x)  (length term set to 0),  SE = sem over x
    raw win rate = mean_x y_x

Null preferences (None or NaN), as alpaca_eval's `get_length_controlled_winrate`: such a row is left
out of the GLM fit and of the raw win rate, but it stays in the length normaliser s (the std of Δ
is taken over every row of the model) and in the LC mean and its standard error (x runs over every
row: the prediction needs only γ_x). `n` counts every row; `win_rate` is null when no row has a
preference.

Fit: L1-penalised logistic regression on continuous labels — minimise C·Σ w_i·CE(y_i, σ(z_i)) + ‖β‖₁
(liblinear's objective; a continuous label y is the same as the pair (1, w·y), (0, w·(1−y)) of the
official code) with scipy.optimize.minimize (L-BFGS-B on β = a − b, a, b ≥ 0). C is chosen from
logspace(−4, 4, 10) by 5-fold cross-validation on the weighted log-loss (fold = row index mod 5, what
GroupKFold gives for equal-size groups), then refit on all rows. `C=None` fits unpenalised.
Regularise-to-baseline: rows whose generator_2 is a length-gamed baseline variant (`--gamed NAME`)
join every model's fit with c = 0 and weight λ / (number of gamed variants) (λ = 0.2,
`length_controlled_v1`); their u uses the model's s. Without γ on every row the difficulty term is
left out (`length_controlled_minimal`). When m is the baseline itself, LC = 0.5.
Sanity flag (as AlpacaEval): LC < min(WR − WR/4, WR − 10) or LC > max(WR + (100 − WR)/4, WR + 10),
in percent.
Departures: scipy instead of liblinear (same objective; solutions agree to optimiser tolerance), our
own fold assignment; win rates are fractions in [0, 1], not percent.
"""

from __future__ import annotations

import math
from typing import Any

from er.errors import ErError
from er.evaluation.report import Keys

CS = tuple(10.0 ** (-4 + 8 * i / 9) for i in range(10))  # numpy.logspace(-4, 4, 10)


def preference_to_y(p) -> float | None:
    """AlpacaEval preference -> y in [0, 1]: 1 -> 0, 2 -> 1, 0 and 1.5 -> 0.5 (draws); None/NaN -> None."""
    if p is None or isinstance(p, bool):
        return None
    p = float(p)
    if math.isnan(p):
        return None
    if p == 0:
        p = 1.5
    if not 1.0 <= p <= 2.0:
        raise ErError(f"field 'preference' should be in [1, 2] (or 0 for a draw), got {p}")
    return p - 1.0


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def win_probability(theta: float, phi: float, psi: float, delta: float, s: float, gamma: float, c: float = 1.0) -> float:
    """The GLM's P(model preferred) for one instruction."""
    return sigmoid(theta * c + phi * math.tanh(delta / s) + psi * gamma)


def lc_probabilities(theta: float, psi: float, gammas):
    """σ(θ + ψ·γ_x) per instruction (length term u = 0): the terms the LC win rate averages."""
    import numpy as np

    return 0.5 * (1 + np.tanh(0.5 * (theta + psi * np.asarray(gammas, dtype=np.float64))))


def lc_win_rate(theta: float, psi: float, gammas) -> float:
    """Length-controlled win rate: mean over instructions of σ(θ + ψ·γ_x) (u = 0)."""
    return float(lc_probabilities(theta, psi, list(gammas)).mean())


def _loss_grad(beta, X, y, w):
    import numpy as np

    z = X @ beta
    loss = float(np.sum(w * (y * np.logaddexp(0.0, -z) + (1.0 - y) * np.logaddexp(0.0, z))))
    p = 0.5 * (1.0 + np.tanh(0.5 * z))
    grad = X.T @ (w * (p - y))
    return loss, grad


def fit_glm(X, y, w, C: float | None = None):
    """β minimising C·Σ w·CE + ‖β‖₁ (or Σ w·CE when C is None), with scipy.optimize.minimize."""
    import numpy as np
    from scipy.optimize import minimize

    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    d = X.shape[1]
    if C is None:
        res = minimize(lambda b: _loss_grad(b, X, y, w), np.zeros(d), jac=True, method="BFGS",
                       options={"gtol": 1e-10, "maxiter": 1000})
        return res.x

    def objective(ab):
        loss, grad = _loss_grad(ab[:d] - ab[d:], X, y, w)
        return C * loss + ab.sum(), np.concatenate([C * grad + 1.0, -C * grad + 1.0])

    res = minimize(objective, np.zeros(2 * d), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * d),
                   options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 2000})
    return res.x[:d] - res.x[d:]


def weighted_log_loss(beta, X, y, w) -> float:
    loss, _ = _loss_grad(beta, X, y, w)
    return loss / float(w.sum())


def fit_cv(X, y, w, folds: int = 5, Cs=CS):
    """(β, C): C picked by `folds`-fold CV on the weighted log-loss, then refit on every row."""
    import numpy as np

    X, y, w = (np.asarray(a, dtype=np.float64) for a in (X, y, w))
    fold = np.arange(len(y)) % folds
    best_c, best = Cs[0], -math.inf
    for C in Cs:
        scores = []
        for f in range(min(folds, len(y))):
            train, test = fold != f, fold == f
            if not test.any() or not train.any():
                continue
            beta = fit_glm(X[train], y[train], w[train], C)
            scores.append(-weighted_log_loss(beta, X[test], y[test], w[test]))
        score = sum(scores) / len(scores) if scores else -math.inf
        if score > best:
            best_c, best = C, score
    return fit_glm(X, y, w, best_c), best_c


class LCWinRateReport:
    def __init__(self, keys: Keys, gamed: tuple[str, ...] = (), lam: float = 0.2, cv: bool = True):
        self.keys, self.gamed, self.lam, self.cv = keys, set(gamed), lam, cv
        self.state: dict[tuple, dict[str, list]] = {}
        self.gamed_rows: dict[tuple, dict[str, list]] = {}

    def add(self, source: str, record: dict) -> str | None:
        for name in ("output_1", "output_2"):
            if not isinstance(record.get(name), str):
                raise ErError(f"missing field {name!r} (AlpacaEval annotation records: output_1 = baseline, "
                              "output_2 = model, preference)")
        if "preference" not in record:
            raise ErError("missing field 'preference'")
        y = preference_to_y(record["preference"])  # None: kept for s and the LC mean, not fitted
        gamma = record.get("instruction_difficulty")
        if gamma is not None and (not isinstance(gamma, (int, float)) or isinstance(gamma, bool)):
            raise ErError(f"field 'instruction_difficulty' should be a number, got {gamma!r}")
        key = self.keys(source, record)
        model = record.get("generator_2")
        if isinstance(model, str):
            key = (key[0], model) + key[2:]
        delta = float(len(record["output_1"]) - len(record["output_2"]))
        row = (y, delta, None if gamma is None else float(gamma), record.get("generator_1"))
        pool = self.gamed_rows if key[1] in self.gamed else self.state
        cell = pool.setdefault(key if pool is self.state else key[2:], {"rows": []})
        cell["rows"].append(row)
        return None

    def reports(self) -> list[dict]:
        import numpy as np

        out = []
        for key, cell in self.state.items():
            rows = cell["rows"]
            fitted = [i for i, r in enumerate(rows) if r[0] is not None]
            ys = np.array([rows[i][0] for i in fitted], dtype=np.float64)
            deltas = np.array([r[1] for r in rows])
            gammas = [r[2] for r in rows]
            baselines = {r[3] for r in rows if r[3] is not None}
            use_gamma = all(g is not None for g in gammas)
            gamed = self.gamed_rows.get(key[2:], {"rows": []})["rows"]
            if use_gamma and any(r[2] is None for r in gamed):
                gamed = []
            n_gamed_models = max(1, len(self.gamed))
            s = float(np.std(deltas, ddof=1)) if len(deltas) > 1 else 0.0
            s = s if s > 0 else 1.0
            X = [[1.0, math.tanh(deltas[i] / s)] + ([gammas[i]] if use_gamma else []) for i in fitted]
            Y, W = list(ys), [1.0] * len(fitted)
            for gy, gd, gg, _ in gamed:
                if gy is None:  # alpaca_eval filters null preferences out of the gamed rows too
                    continue
                X.append([0.0, math.tanh(gd / s)] + ([gg] if use_gamma else []))
                Y.append(gy)
                W.append(self.lam / n_gamed_models)
            is_baseline = key[1] in baselines
            if is_baseline or len(fitted) < 2:
                beta, C = np.zeros(3 if use_gamma else 2), None
            elif self.cv:
                beta, C = fit_cv(np.array(X), np.array(Y), np.array(W))
            else:
                beta, C = fit_glm(np.array(X), np.array(Y), np.array(W), None), None
            theta, phi = float(beta[0]), float(beta[1])
            psi = float(beta[2]) if use_gamma else 0.0
            p_hat = lc_probabilities(theta, psi, [g if use_gamma else 0.0 for g in gammas])
            lc = 0.5 if is_baseline else float(p_hat.mean())
            se = 0.0 if is_baseline or len(p_hat) < 2 else float(np.std(p_hat, ddof=1) / math.sqrt(len(p_hat)))
            wr = float(ys.mean()) if len(ys) else None
            flagged = False
            if wr is not None:
                lc100, wr100 = 100 * lc, 100 * wr
                flagged = lc100 < min(wr100 - wr100 / 4, wr100 - 10) or lc100 > max(wr100 + (100 - wr100) / 4, wr100 + 10)
            glm = ("length_controlled_v1" if gamed else "length_controlled_noreg") if use_gamma else "length_controlled_minimal"
            rec: dict[str, Any] = {"metric": "lc_winrate", **self.keys.fields(key), "n": len(rows),
                                   "baseline": ",".join(sorted(baselines)) or None, "win_rate": wr,
                                   "lc_win_rate": lc, "lc_standard_error": se, "theta": theta, "phi": phi,
                                   "psi": psi if use_gamma else None, "C": C, "glm": glm, "flagged": bool(flagged)}
            out.append(rec)
        return out
