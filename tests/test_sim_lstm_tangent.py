"""The exact (h, c) tangent of untied LSTMs (rnn_mft.sim.lstm_tangent): closed forms, the two-copy
1 - C decay of simulate_pair, determinism and input checks. Each test runs in seconds on one core."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnn_mft.sim import correlation_decay, simulate_pair, tangent_decay
from rnn_mft.theory.theta import Theta

torch.set_num_threads(1)


def _ef2(mu, var, n=200):
    x, w = np.polynomial.hermite_e.hermegauss(n)
    F = 1 / (1 + np.exp(-(mu + math.sqrt(var) * x)))
    return float(w @ F**2 / w.sum())


def test_no_recurrence_is_a_product_of_forget_gates():
    r"""All sigma2_k = 0: du_k = 0, dc^t = sigma(u_f) dc^{t-1} exactly and dh^t = sigma(u_o) tanh'(c) dc^t.

    dc is a product of i.i.d. factors F = sigma(u_f), u_f ~ N(mu_f, nu2_f R + rho2_f), so
    E[|dc^t|^2 | dc^{t-1}] = E[F^2] |dc^{t-1}|^2 at any N: the window growth factor averaged over
    windows (the estimator of tangent_decay) is unbiased for E[F^2]^t, and ``chi_dc`` must match
    the quadrature within its seed SE (4 SE; the only other error is the O(1/N) spread of
    |z|^2/N_in around R, ~1e-4 relative here). The total norm includes dh, slaved to dc with a
    ratio that is stationary after alignment, so ``chi`` must match too.
    """
    th = Theta.critical("lstm", mu_f=2.0).replace({"i.sigma2": 0, "f.sigma2": 0, "r.sigma2": 0, "o.sigma2": 0,
                                                   "f.rho2": 0.3})
    r = tangent_decay(th, 2000, n_seeds=8, t_burn=60, t_align=12, t_window=8, n_windows=30)
    exact = _ef2(2.0, 1.0 + 0.3)
    se_dc = r.chi_se  # same order as the SE of chi_dc (both from 8 seeds of the same windows)
    assert abs(r.chi_dc - exact) < 4 * se_dc + 2e-4, (r.chi_dc, exact, se_dc)
    assert abs(r.chi - exact) < 4 * r.chi_se + 2e-4, (r.chi, exact, r.chi_se)
    assert -1 / r.xi == pytest.approx(math.log(r.chi), abs=1e-12)    # eq. (9), in log chi: one log, one division
    assert r.xi_lo < r.xi < r.xi_hi


def test_matches_two_copy_one_minus_c():
    r"""The tangent's chi against the decay of 1 - C of simulate_pair (Sigma_z = 1), a fast case.

    Every sigma2 = nu2 = 1, mu_f = 2 (xi ~ 3.6). Two copies with identical weights and inputs,
    started at C = 0.99, are a finite difference of the same dynamics: once 1 - C is small it is
    |h_a - h_b|^2 / (2 Var h) to first order, O(|dh|^2), so it decays by chi per step. We fit
    log(1 - C) per seed over steps 40..80 (the state is stationary after ~6 tau_c ~ 40 steps;
    1 - C goes from ~1e-6 to ~1e-11.5, far above float64 rounding ~1e-15 and far below the
    nonlinear regime). Tolerance: the per-seed slopes give an SE over 8 seeds, the tangent's SE
    over its 8 seeds likewise; we require |difference| < 4 sqrt(SE_pair^2 + SE_tan^2) + 2e-3. The
    2e-3 (in log chi, 0.7% of it) covers the pair's one long window: |h_a - h_b|^2 is a finite-N
    mean of products and over 80 steps drifts toward the typical rate; with the gates' recurrent
    mixing here (sigma2 = 1) the effective N stays large, and the tangent at N = 2000 vs 30000
    agrees to < 1e-3 in log chi (tools/lstm_ground_truth.py --ncheck).
    """
    th = Theta.uniform("lstm", sigma2=1.0, nu2=1.0, f={"mu": 2.0})
    N, T, S = 2000, 80, 8
    res = simulate_pair("lstm", th, N, np.ones(T), n_seeds=S, seed=3, c0=0.99)
    t = np.arange(40, T + 1)
    assert np.all(1 - res.c_s[40:T + 1] > 1e-13)
    y = np.log(1 - res.c_s[40:T + 1])                 # (len(t), S)
    slopes = np.polyfit(t, y, 1)[0]                   # per-seed log rate
    pair = slopes.mean()
    se_pair = slopes.std(ddof=1) / math.sqrt(S)
    r = tangent_decay(th, N, n_seeds=S, seed=5, t_burn=60, t_align=15, t_window=15, n_windows=10)
    tan = math.log(r.chi)
    se_tan = r.chi_se / r.chi
    assert abs(pair - tan) < 4 * math.hypot(se_pair, se_tan) + 2e-3, (pair, se_pair, tan, se_tan)
    assert 1.5 < r.xi < 6


def test_deterministic_and_seeded():
    th = Theta.critical("lstm", mu_f=1.0)
    kw = dict(n_seeds=2, t_burn=5, t_align=3, t_window=4, n_windows=2)
    a, b = tangent_decay(th, 200, seed=7, **kw), tangent_decay(th, 200, seed=7, **kw)
    c = tangent_decay(th, 200, seed=8, **kw)
    assert np.array_equal(a.log_rates, b.log_rates) and a.chi == b.chi
    assert not np.array_equal(a.log_rates, c.log_rates)
    assert a.chi_seeds.shape == (2,) and (a.N, a.n_seeds, a.t_window, a.n_windows, a.seed) == (200, 2, 4, 2, 7)


def test_norms_agree_asymptotically():
    """|dh|^2, |dc|^2 and their sum decay at one rate once the direction is aligned."""
    th = Theta.critical("lstm", mu_f=3.0)
    r = tangent_decay(th, 2000, n_seeds=4, t_burn=100, t_align=40, t_window=30, n_windows=4)
    # three estimates from the same windows of the same seeds: their differences scatter less than
    # one estimate does, so 4 of its SE (5.4e-4 here; measured difference 5.6e-5); the faster modes
    # have decayed over t_align = 40 steps by (their rate / chi)^40, nothing
    tol = 4 * r.chi_se
    assert r.chi_dh == pytest.approx(r.chi, abs=tol) and r.chi_dc == pytest.approx(r.chi, abs=tol)


@pytest.mark.parametrize("bad, match", [
    (dict(theta=Theta.critical("gru")), "arch='lstm'"),
    (dict(theta=Theta.grid(Theta.critical("lstm"), {"f.mu": [1.0, 2.0]})), "scalar"),
    (dict(N=0), "N="),
    (dict(N=10.5), "N="),
    (dict(n_seeds=0), "n_seeds"),
    (dict(R=0.0), "R="),
    (dict(t_window=1), "t_window"),
    (dict(n_windows=0), "n_windows"),
    (dict(t_burn=-1), "t_burn"),
    (dict(theta="lstm"), "Theta"),
])
def test_bad_input(bad, match):
    kw = dict(theta=Theta.critical("lstm"), N=10)
    kw.update(bad)
    theta, N = kw.pop("theta"), kw.pop("N")
    with pytest.raises(ValueError, match=match):
        tangent_decay(theta, N, **kw)


def test_correlation_decay_without_recurrence():
    r"""sigma2_k = 0 for every gate, Sigma_z = 0.5: chi_{C*} = E[sigma(u_f^a) sigma(u_f^b)].

    Without recurrent weights each unit's pair (c_a, c_b) is a Markov chain driven by gates shared
    through U (inputs of correlation Sigma_z) and the common bias: cov(u_f^a, u_f^b) =
    nu2_f Sigma_z R + rho2_f. The perturbation dc_b = c_a - (fit on copy-b features) decays as
    prod_t sigma(u_f^b), and its overlap with h_a keeps the factor prod_t sigma(u_f^a) of c_a's
    memory: the slowest cross-copy mode decays by E[F_a F_b] per step (other cross functions
    carry more factors and decay faster). Tolerance 4 SE over 6 seeds.
    """
    th = Theta.critical("lstm", mu_f=2.0).replace({"i.sigma2": 0, "f.sigma2": 0, "r.sigma2": 0, "o.sigma2": 0})
    r = correlation_decay(th, 2000, 0.5, n_seeds=6, t_burn=60, t_align=6, t_window=14, n_windows=24)
    x, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    X, Y = np.meshgrid(x, x)
    s = lambda u: 1 / (1 + np.exp(-u))  # noqa: E731
    exact = float((np.outer(w, w) * s(2 + X) * s(2 + 0.5 * X + math.sqrt(0.75) * Y)).sum())  # 0.72047
    assert abs(r.chi - exact) < 4 * r.chi_se, (r.chi, exact, r.chi_se)
    assert 0 < r.c_star < 1 and r.response.shape == (21, 6)


def test_correlation_decay_checks_and_determinism():
    th = Theta.critical("lstm", mu_f=1.0)
    kw = dict(n_seeds=2, t_burn=3, t_align=2, t_window=3, n_windows=2)
    a, b = correlation_decay(th, 100, 0.3, seed=4, **kw), correlation_decay(th, 100, 0.3, seed=4, **kw)
    assert np.array_equal(a.response, b.response) and a.chi == b.chi
    for bad, match in ((dict(sigma_z=1.0), "sigma_z"), (dict(sigma_z=-0.1), "sigma_z"), (dict(N=0), "N="),
                       (dict(theta=Theta.critical("gru")), "arch='lstm'")):
        args = dict(theta=th, N=50, sigma_z=0.5)
        args.update(bad)
        with pytest.raises(ValueError, match=match):
            correlation_decay(args["theta"], args["N"], args["sigma_z"], **kw)
