"""The appendix reference script of /work/shared/specs/rl-length-methods.md, verbatim (numpy).

Its values are the worked numbers of the spec at full precision; the catalog tests compare to them
at 1e-6 (and to the printed 4-decimal numbers at 5e-5).
"""
# ruff: noqa

import math
import numpy as np

def grpo_adv(r, ddof=1, eps=1e-6):
    r = np.asarray(r, float)
    return (r - r.mean()) / (r.std(ddof=ddof) + eps)

sigmoid = lambda x: 1.0 / (1.0 + math.exp(-x))

# Baselines on the reference group
c = np.array([1, 1, 0, 0]); L = np.array([1000, 3000, 2000, 4000])
lam = 0.5 - (L - L.min()) / (L.max() - L.min())
kimi = np.where(c == 1, lam, np.minimum(0, lam))                  # Kimi
def cosine(l, ok, T=4096, r0c=2., rLc=1., r0w=-10., rLw=0., rex=-10.):
    if l >= T: return rex
    k = 0.5 * (1 + math.cos(math.pi * l / T))
    return rLc + (r0c - rLc) * k if ok else rLw + (r0w - rLw) * k
def dapo_pen(l, Lmax=4096, Lc=1024):
    return 0.0 if l <= Lmax - Lc else (((Lmax - Lc) - l) / Lc if l <= Lmax else -1.0)
l1_exact = [o - 3e-4 * abs(l - 2000) for l, o in zip(L, c)]
l1_max = [o * min(1, max(0, 3e-4 * (2000 - l) + 0.5)) for l, o in zip(L, c)]
cl = L[c == 1]; mu, sd = cl.mean(), cl.std()
arora = [o * (1 - 0.1 * sigmoid((l - mu) / (sd + 1e-7))) for l, o in zip(L, c)]

# DLER: group-mean centring, then token-weighted whitening (verl style)
groups = {"A": ([1200, 2500, 3900, 4000], [1, 1, 1, 0], [1, 1, 0, 0]),
          "B": ([800, 1500, 4000, 4000], [1, 1, 0, 0], [1, 0, 0, 0]),
          "C": ([600, 700, 900, 1000], [1, 1, 1, 1], [1, 1, 1, 1])}
cent, lens = [], []
for Ls, fin, cor in groups.values():
    s = np.array([a * f for a, f in zip(cor, fin)], float)
    r = s * np.where(np.array(fin) == 1, 1.0, 0.1)
    if s.std() == 0: continue                                          # dynamic sampling
    cent += list(r - r.mean()); lens += Ls
cent, lens = np.array(cent), np.array(lens, float)
N = lens.sum(); m = (lens * cent).sum() / N
v = (lens * (cent - m) ** 2).sum() / N * N / (N - 1)
dler_adv = (cent - m) / math.sqrt(v + 1e-8)

# HAPO cosine length reward
def hapo_cos(h, l, ok):
    if h is None: return 0.0
    u = math.cos(l / h * math.pi / 2) if l < 2 * h else -1.0
    return max(-0.7, u) if ok else min(0.0, u)

# HBPO (paper form); code form replaces the branch by min(f1, f2)
f1 = lambda n, b: 4 * math.cos(math.pi * n / 8192) - abs(n - b) / 4096
f2 = lambda b: 4 * math.cos(math.pi * b / 8192)
rows = [(512, 400, 1), (512, 700, 1), (1024, 900, 1), (1024, 1300, 0),
        (2048, 1500, 1), (2048, 2300, 1), (2560, 3000, 1), (2560, 4200, 1)]
R = np.array([0.0 if (not ok or n > 4096) else (f1(n, b) if n > b else f2(b)) for b, n, ok in rows])
bud = np.array([b for b, _, _ in rows])
A_hbpo = np.array([R[bud == b].mean() - f2(b) for b in bud]) + grpo_adv(R)

# DRPO positive weights and per-question objective
Lc = np.array([1000, 2000, 7800.]); w = np.exp(-(Lc / 8192) / 0.1); w /= w.sum()
sp, sn, tau = np.array([-0.30, -0.35, -0.50]), np.array([-0.40, -0.60, -0.90]), 10.0
J = (w * sp).sum() - tau * math.log(np.exp(sn / tau).mean())

# CRF (illustrative constants)
Ro = np.array([1, 1, 0, 1.]); cs = np.array([0.9, 0.5, 0.3, 0.7])
R_crf = Ro * (1 + 0.5 * cs * (0.8 + 0.25))
