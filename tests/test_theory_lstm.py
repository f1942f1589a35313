"""The LSTM by Algorithm 1: the cell-state sampler against simulated untied networks (Figure 7),
determinism of the seeded sampler, and Algorithm 1's fixed point.

Tolerance for the sampler's moments: the sampler's mean of c^k over n_s samples and the
simulation's over N * n_seeds units each have standard error sqrt(Var(c^k)/n); we allow 5
combined standard errors (Var estimated from the samples) plus the O(1/N) bias 2/N.
"""
import numpy as np
import pytest

from rnn_mft.sim import simulate_cell_state
from rnn_mft.theory import Theta, analyze, lstm, sample_cell_state


def thetas():
    return {
        "unimodal": Theta.uniform("lstm", sigma2=1.0, nu2=1.0, rho2=0.1).replace({"f.mu": 1.0}),
        "bimodal": Theta.uniform("lstm", sigma2=0.01, nu2=0.0).replace(
            {"f.nu2": 9.0, "r.nu2": 4.0, "i.mu": 2.0}),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unimodal", "bimodal"])
def test_sampler_moments_match_simulated_untied_lstm(name):
    th = thetas()[name]
    r = analyze("lstm", th, 1.0, n_s=4000, n_iters=300)
    c = sample_cell_state(th, q_h=r.q_s, mu_h=r.mu_s, n_s=4000, n_iters=300, seed=1)
    sim = simulate_cell_state(th, 200, 300, n_seeds=20, seed=2)
    for k in (1, 2, 3):
        a, b = (c**k), (sim**k)
        tol = 5 * np.sqrt(a.var() / a.size + b.var() / b.size) + 2 / 200
        assert abs(a.mean() - b.mean()) < tol, (k, a.mean(), b.mean(), tol)


def test_sampler_is_seeded_and_vectorised():
    th = thetas()["unimodal"]
    a = sample_cell_state(th, q_h=0.05, n_s=50, n_iters=20, seed=3)
    b = sample_cell_state(th, q_h=0.05, n_s=50, n_iters=20, seed=3)
    assert np.array_equal(a, b) and a.shape == (50,)
    g = Theta.grid(th, {"f.mu": [0.0, 1.0, 2.0]})
    cg = sample_cell_state(g, q_h=0.05, n_s=50, n_iters=20, seed=3)
    assert cg.shape == (3, 50)
    # the same samples through the same element-wise float64 chain (bitwise here); the default
    # rtol 1e-7 allows ~1 ulp per step from vectorised transcendentals over 20 steps, 1e3 times over
    np.testing.assert_allclose(cg[1], a)
    pair = sample_cell_state(th, q_h=0.05, n_s=50, n_iters=20, seed=3, sigma_z=1.0, c_h=1.0)
    np.testing.assert_allclose(pair[0], pair[1])     # identical inputs: identical cell states


def test_algorithm1_fixed_point_is_a_fixed_point():
    th = thetas()["unimodal"]
    fp = lstm.fixed_point(th, 1.0, n_s=500, n_iters=100, seed=4)
    mu, q = lstm.fixed_point_iteration(fp.mu_s, fp.q_s, th, n_s=500, n_iters=100, seed=4)
    # the same seeded map at the returned point: the solver's residual, below its tol = 1e-10
    # (measured 3e-15); the Monte-Carlo error does not enter (common random numbers)
    assert q == pytest.approx(float(fp.q_s), rel=1e-9) and mu == pytest.approx(float(fp.mu_s), abs=1e-9)
    with pytest.raises(ValueError, match="n_iters"):
        lstm.fixed_point_iteration(0.0, 0.1, th, n_iters=0)


def test_lstm_fixed_point_at_sigma_z_zero_converges():
    """At Sigma_z = 0 the stable root C* sits at (or, by Monte-Carlo noise, just below) 0; the root
    search must bracket it on [-1, 0] too instead of reporting a non-converged point."""
    from rnn_mft.theory import Theta, analyze
    th = Theta.grid(Theta.uniform("lstm", sigma2=1.0, nu2=1.0), {"f.mu": [-1.0, 1.0, 2.0, 4.0]})
    r = analyze("lstm", th, sigma_z=0.0, n_s=200, n_iters=100)
    assert r.converged.all()
    # exactly 0 in the n_s -> infinity limit (mu_s = 0); the default two-state theory gives exactly 0
    # ("two-state, C*=0"); a sampled C* of n_s = 200 would carry a standard error ~1/sqrt(n_s): 5 of them
    assert np.all(np.abs(r.c_s) < 5 / np.sqrt(200))
    assert np.all(np.diff(r.xi) > 0)
