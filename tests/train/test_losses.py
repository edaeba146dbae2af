"""Loss functions against hand computations (rl-length-methods §1, §5, §7.1; length-control §2)."""

from __future__ import annotations

import math

import pytest
import torch

from er.train import losses as L

# Two sequences: seq 0 has 3 tokens and A = +1, seq 1 has 2 tokens and A = -0.5.
OLD = [-1.0, -2.0, -0.5, -1.5, -0.7]
RATIO = [1.5, 0.9, 1.1, 0.5, 1.3]  # token ratios pi/pi_old
SEQ = [0, 0, 0, 1, 1]
ADV = [1.0, 1.0, 1.0, -0.5, -0.5]


def _batch():
    old = torch.tensor(OLD, dtype=torch.float64)
    logp = (old + torch.log(torch.tensor(RATIO, dtype=torch.float64))).requires_grad_(True)
    adv = torch.tensor(ADV, dtype=torch.float64)
    seq = torch.tensor(SEQ)
    seq_len = torch.tensor([3, 3, 3, 2, 2])
    return logp, old, adv, seq, seq_len


def _hand_per_token(clip_low=0.2, clip_high=0.28):
    out = []
    for r, a in zip(RATIO, ADV):
        c = min(max(r, 1 - clip_low), 1 + clip_high)
        out.append(max(-a * r, -a * c))
    return out


# By hand: token losses = [-1.28 (clipped high), -0.9, -1.1, 0.4 (clipped low), 0.65]
def test_per_token_clipping_on_both_sides_matches_hand_numbers():
    assert _hand_per_token() == pytest.approx([-1.28, -0.9, -1.1, 0.4, 0.65], abs=1e-12)


@pytest.mark.parametrize("agg,expected", [
    # token-mean: sum / 5 tokens
    ("token-mean", (-1.28 - 0.9 - 1.1 + 0.4 + 0.65) / 5),
    # seq-mean-token-mean: mean over sequences of the token mean
    ("seq-mean-token-mean", ((-1.28 - 0.9 - 1.1) / 3 + (0.4 + 0.65) / 2) / 2),
    # seq-mean-token-sum-norm (Dr. GRPO) with L_norm = 4
    ("seq-mean-token-sum-norm", ((-1.28 - 0.9 - 1.1) + (0.4 + 0.65)) / (2 * 4)),
])
def test_clipped_loss_equals_hand_computation_for_each_aggregation(agg, expected):
    logp, old, adv, seq, seq_len = _batch()
    w = L.agg_weights(agg, seq_len, n_tokens=5, n_seqs=2, norm_length=4).double()
    loss, stats = L.pg_loss(logp, old, adv, w, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert int(stats["clip_high"]) == 1 and int(stats["clip_low"]) == 1
    # gradient: clipped tokens get none, the others -A * ratio * w (d ratio / d logp = ratio)
    loss.backward()
    grad = logp.grad.tolist()
    assert grad[0] == 0.0 and grad[3] == 0.0
    assert grad[1] == pytest.approx(-1.0 * 0.9 * float(w[1]), abs=1e-9)
    assert grad[4] == pytest.approx(0.5 * 1.3 * float(w[4]), abs=1e-9)


def test_dual_clip_caps_the_loss_of_negative_advantages():
    # a negative-advantage token with ratio 4: PPO loss -A*4 = 2.0, dual clip c=3 caps it at 1.5
    old = torch.tensor([-1.0], dtype=torch.float64)
    logp = (old + math.log(4.0)).requires_grad_(True)
    adv = torch.tensor([-0.5], dtype=torch.float64)
    w = torch.ones(1, dtype=torch.float64)
    plain, _ = L.pg_loss(logp, old, adv, w)
    capped, stats = L.pg_loss(logp, old, adv, w, dual_clip=3.0)
    assert plain.item() == pytest.approx(2.0, abs=1e-12)
    assert capped.item() == pytest.approx(1.5, abs=1e-12)
    assert int(stats["dual_clip"]) == 1
    capped.backward()
    assert float(logp.grad) == 0.0


def test_is_cap_truncates_the_importance_weight_value_and_gradient():
    old = torch.tensor([-1.0], dtype=torch.float64)
    logp = (old + math.log(4.0)).requires_grad_(True)
    adv = torch.tensor([-0.5], dtype=torch.float64)
    loss, stats = L.pg_loss(logp, old, adv, torch.ones(1, dtype=torch.float64), is_cap=2.0)
    assert loss.item() == pytest.approx(1.0, abs=1e-12)  # -A * min(4, 2)
    loss.backward()
    assert float(logp.grad) == pytest.approx(1.0, abs=1e-12)  # -A * 2 * dlog
    assert int(stats["is_capped"]) == 1


def test_kl_estimators_match_their_formulas():
    logp = torch.tensor([-1.0, -2.0], dtype=torch.float64)
    ref = torch.tensor([-1.5, -1.0], dtype=torch.float64)
    d = [0.5, -1.0]
    assert L.kl_penalty(logp, ref, "k1").tolist() == pytest.approx(d)
    assert L.kl_penalty(logp, ref, "k3").tolist() == pytest.approx([math.exp(-x) + x - 1 for x in d])
    assert L.kl_penalty(logp, ref, "mse").tolist() == pytest.approx([0.125, 0.5])


def test_drpo_objective_and_gradients_match_spec_worked_example():
    # spec §5e: w = [0.77204, 0.22777, 0.00019], s+ = [-0.30, -0.35, -0.50], s- = [-0.40, -0.60, -0.90]
    lengths = torch.tensor([1000.0, 2000.0, 7800.0], dtype=torch.float64)
    w = torch.softmax(-(lengths / 8192) / 0.1, 0)
    assert w.tolist() == pytest.approx([0.77204, 0.22777, 0.00019], abs=1e-5)
    scores = torch.tensor([-0.30, -0.35, -0.50, -0.40, -0.60, -0.90], dtype=torch.float64, requires_grad=True)
    weight = torch.cat([w, torch.zeros(3, dtype=torch.float64)])
    negative = torch.tensor([False] * 3 + [True] * 3)
    group = torch.zeros(6, dtype=torch.long)
    J, used = L.drpo_objective(scores, group, weight, negative, tau=10.0)
    assert used == 1
    assert J.item() == pytest.approx(0.3198, abs=5e-5)
    J.backward()
    assert scores.grad[:3].tolist() == pytest.approx(w.tolist(), abs=1e-9)
    assert scores.grad[3:].tolist() == pytest.approx([-0.3411, -0.3344, -0.3245], abs=5e-5)


def test_drpo_skips_groups_without_both_positives_and_negatives():
    scores = torch.tensor([-0.3, -0.4], dtype=torch.float64)
    J, used = L.drpo_objective(scores, torch.tensor([0, 0]), torch.tensor([0.5, 0.5], dtype=torch.float64),
                               torch.tensor([False, False]), tau=10.0)
    assert used == 0 and J.item() == 0.0


def test_drpo_trust_region_gradient_coefficient_is_beta_times_excess_kl():
    # spec §5e: K = 3e-4, beta = 1e3, delta = 1e-4 -> coefficient 0.2
    old = torch.zeros(2, dtype=torch.float64)
    logp = torch.full((2,), -3e-4, dtype=torch.float64, requires_grad=True)
    term, K = L.drpo_kl_term(logp, old, beta=1e3, delta=1e-4)
    assert float(K) == pytest.approx(3e-4, abs=1e-12)
    term.backward()
    # d(coef * mean(old - logp))/dlogp_t = -coef / 2
    assert logp.grad.tolist() == pytest.approx([-0.1, -0.1], abs=1e-9)


def test_mode_switch_loss_matches_spec_worked_numbers():
    zl, zs = torch.tensor([2.1]), torch.tensor([1.4])
    short = torch.tensor([True])
    assert float(L.mode_switch_loss(zl, zs, short, "hinge", margin=1.0)) == pytest.approx(1.7, abs=1e-6)
    assert float(L.mode_switch_loss(zl, zs, short, "ce")) == pytest.approx(1.1032, abs=1e-4)
    assert float(L.mode_switch_loss(zl, zs, ~short, "ce")) == pytest.approx(math.log(1 + math.exp(-0.7)), abs=1e-6)


def test_token_logprobs_and_entropy_from_logits():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    logp, ent = L.token_logprobs_entropy(logits, torch.tensor([1]), entropy="grad")
    assert float(logp) == pytest.approx(math.log(0.75), abs=1e-6)
    assert float(ent) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-6)


def test_micro_batch_sums_equal_the_whole_batch():
    """Aggregation weights use step totals, so splitting the batch in two changes nothing."""
    logp, old, adv, seq, seq_len = _batch()
    for agg in L.AGGS:
        w = L.agg_weights(agg, seq_len, 5, 2, norm_length=4).double()
        whole, _ = L.pg_loss(logp, old, adv, w)
        a, _ = L.pg_loss(logp[:3], old[:3], adv[:3], w[:3])
        b, _ = L.pg_loss(logp[3:], old[3:], adv[3:], w[3:])
        assert (a + b).item() == pytest.approx(whole.item(), abs=1e-12)
