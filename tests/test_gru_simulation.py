"""The GRU mean-field theory (eqs. (2)-(7), Appendix A.1) against finite-width untied networks.

Tolerances. The simulated correlation is an average over N units of products of standardized
states; such a product has variance about 1 + C^2 <= 2, so the correlation of one network has a
standard error of at most sqrt(2/N) and the mean over n independent networks at most
sqrt(2/(N n)). We allow 5 of those (a false alarm has probability < 1e-6 per comparison), plus
the O(1/N) finite-width bias, taken as 2/N. For Q (after the initial state has washed out,
|s| <= 1 so Var(s^2) <= Q) the standard error is at most sqrt(Q/(2 N n)).
"""
import numpy as np
import pytest

from rnn_mft.sim import simulate_pair
from rnn_mft.theory import Theta, gru

N, SEEDS = 4000, 16
TOL_C = 5 * np.sqrt(2 / (N * SEEDS)) + 2 / N


def theta(mu_f):
    return Theta.uniform("gru", sigma2=1.0, nu2=1.0, rho2=0.1).replace({"f.mu": mu_f})


@pytest.mark.parametrize("mu_f", [0.0, 2.0])
def test_trajectory_matches_untied_simulation(mu_f):
    """C^t for Sigma_z = 0 for t < 10 and 1 after (Figure 5), N = 4000, 16 seeds."""
    sz = (np.arange(1, 41) >= 10).astype(float)
    th = gru.trajectory(theta(mu_f), sz)
    sim = simulate_pair("gru", theta(mu_f), N, sz, n_seeds=SEEDS, seed=11)
    dev = np.abs(sim.mean("c_s") - th.c_s)
    assert dev.max() < TOL_C, (dev.max(), TOL_C)
    # and the theory is not trivially flat: C really moves by much more than the tolerance
    assert th.c_s.max() - th.c_s.min() > 20 * TOL_C


@pytest.mark.parametrize("mu_f,sigma_z", [(-1.0, 0.5), (1.0, 0.0), (1.0, 0.8)])
def test_fixed_point_matches_untied_simulation(mu_f, sigma_z):
    fp = gru.fixed_point(theta(mu_f), sigma_z)
    assert bool(fp.converged)
    sim = simulate_pair("gru", theta(mu_f), N, np.full(150, sigma_z), n_seeds=SEEDS, seed=5)
    c_sim = sim.c_s[-50:].mean()
    q_sim = sim.q_s[-50:].mean()
    assert abs(c_sim - fp.c_s) < TOL_C, (c_sim, fp.c_s)
    assert abs(q_sim - fp.q_s) < 5 * np.sqrt(fp.q_s / (2 * N * SEEDS)) + 2 / N, (q_sim, fp.q_s)
    # the fixed point is a fixed point of the map: one step's residual is the solver's own stopping
    # criterion (tol 1e-9 for (mu, Q), 1e-10 for C; Newton leaves it at ~1e-14, measured)
    st = gru.step(theta(mu_f), gru.GRUState(fp.mu_s, fp.q_s, fp.c_s), sigma_z)
    assert st.c_s == pytest.approx(fp.c_s, abs=1e-9)
    assert st.q_s == pytest.approx(fp.q_s, abs=1e-9)


def test_fixed_point_vectorised_over_a_grid():
    mu = np.linspace(-2, 4, 7)
    fp = gru.fixed_point(theta(mu), 0.5)
    assert fp.c_s.shape == (7,) and fp.converged.all()
    # grid vs point: the quadrature order follows the grid's largest variance (<= 2.1 here: the
    # rule's error ~exp(-2.6 sqrt(n)/Sigma) ~ 1e-8 per expectation at the point's order), plus the
    # solver's residual 1e-9, both times 1/(1 - chi); measured 3.5e-9. Rounding (~1e-14) is far below.
    for j, m in enumerate(mu):
        assert fp.c_s[j] == pytest.approx(float(gru.fixed_point(theta(m), 0.5).c_s), abs=1e-8)
    # identical inputs: C* = 1, up to the C solver's tol 1e-10 (measured 4e-14)
    np.testing.assert_allclose(gru.fixed_point(theta(mu), 1.0).c_s, 1.0, rtol=0, atol=1e-10)


@pytest.mark.slow
def test_gram_sampler_agrees_with_explicit_matrices():
    """The O(N) untied sampler and explicit N x N matrices give the same moments (N=400, 12 seeds)."""
    n, seeds = 400, 12
    sz = (np.arange(1, 16) >= 8).astype(float)
    a = simulate_pair("gru", theta(1.0), n, sz, n_seeds=seeds, seed=1, untied_method="gram")
    b = simulate_pair("gru", theta(1.0), n, sz, n_seeds=seeds, seed=2, untied_method="matrix")
    tol = 5 * np.sqrt(2) * np.sqrt(2 / (n * seeds))
    assert np.abs(a.mean("c_s") - b.mean("c_s")).max() < tol


def test_tied_weights_deviate_from_the_untied_theory():
    """Figure 5, right: tied weights correlate the copies beyond the theory's prediction."""
    sz = (np.arange(1, 31) >= 10).astype(float)
    th = gru.trajectory(theta(2.0), sz)
    sim = simulate_pair("gru", theta(2.0), 1000, sz, tied=True, n_seeds=4, seed=3)
    assert (sim.mean("c_s") - th.c_s)[1:10].max() > 0.1


def test_bad_input():
    with pytest.raises(ValueError, match="sigma_z"):
        gru.fixed_point(theta(1.0), 1.5)
    with pytest.raises(ValueError, match="arch='gru'"):
        gru.fixed_point(Theta.uniform("lstm", sigma2=1.0), 0.5)
    with pytest.raises(ValueError, match="N=0"):
        simulate_pair("gru", theta(1.0), 0, [0.0])
    with pytest.raises(ValueError, match="untied_method"):
        simulate_pair("gru", theta(1.0), 10, [0.0], untied_method="fast")
