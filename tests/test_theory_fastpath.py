"""The fast path of the closed-form theory (issue 3): Newton on Q with G'(Q) from Stein's lemma,
the per-gate Mehler series evaluated together, and the grid split into groups solved on two
threads, each checked against an independent evaluation.

Tolerances: the derivative of the Q map against a central finite difference (step 1e-6, so
O(h^2) ~ 1e-12 plus rounding u64 |G| / h ~ 1e-10); the grouped grid against a high-order solve of
the same points (quadrature accuracy, ~1e-8 in chi and log chi at these variances). Comparisons
of one computation vectorised two ways are rounding: n-term sums off by <= n u64 (u64 = 2**-53).
"""
import numpy as np
import pytest

from rnn_mft.theory import Theta, analyze, meanfield as mf
from rnn_mft.theory import hermite as h

CLOSED = ("vanilla", "minimal", "gru", "peephole_lstm")


def _grid(arch, n=6):
    base = Theta.uniform(arch, sigma2=1.0, nu2=1.0, rho2=0.1)
    return Theta.grid(base, {"f.mu": np.linspace(-1.0, 4.0, n), "f.sigma2": [0.3, 1.5]})


@pytest.mark.parametrize("arch", CLOSED)
def test_q_map_derivative_matches_finite_difference(arch):
    """G'(Q) carried by the dual numbers equals a central difference of G (eq. (6))."""
    th = mf._flat(_grid(arch), _grid(arch).shape)
    spec = mf.SPECS[arch]
    q = np.linspace(0.2, 2.0, th.shape[0])
    n = 300                  # the rule (nodes_for) at the largest variance here (~5) asks for 228
    step = 1e-6
    _, g, _ = mf._q_map(th, spec, q, 1.0, n, deriv=True)
    gp = mf._q_map(th, spec, q + step, 1.0, n)[1]
    gm = mf._q_map(th, spec, q - step, 1.0, n)[1]
    np.testing.assert_allclose(g.v, mf._q_map(th, spec, q, 1.0, n)[1], rtol=1e-13)   # 300-node sums: n u64 = 3e-14
    np.testing.assert_allclose(g.d, (gp - gm) / (2 * step), rtol=1e-7, atol=1e-9)


def test_series_stack_equals_the_single_series():
    rng = np.random.default_rng(0)
    series = [h.PairSeries(c, c, v1, d1) for c, v1, d1 in
              ((rng.normal(size=(5, 41)) * 0.5 ** np.arange(41), rng.random(5), rng.random(5)) for _ in range(3))]
    C = rng.uniform(-1, 1, size=(3, 5))
    val, der = h.SeriesStack(series)(C, True)
    # one Horner recurrence vectorised two ways (bitwise here); 1e-14 = 90 u64 would allow a
    # reordered one over these 41 coefficients decaying like 2^-k (2 x 41 u64 sum|c_k C^k|)
    for k, s in enumerate(series):
        v, d = s(C[k], True)
        np.testing.assert_allclose(val[k], v, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(der[k], d, rtol=1e-14, atol=1e-15)
    # a grid of coefficients evaluated at correlations with an extra leading axis
    Cx = rng.uniform(-1, 1, size=(3, 4, 5))
    val = h.SeriesStack(series)(Cx)
    np.testing.assert_allclose(val[1, 2], series[1](Cx[1, 2]), rtol=1e-14)


@pytest.mark.parametrize("arch", CLOSED)
def test_grouped_grid_equals_a_high_order_solve(arch):
    """A grid large enough to be split into groups (two halves or order buckets, solved on two
    threads) gives the fixed point, chi and xi of a single high-order solve of the same points."""
    base = Theta.uniform(arch, sigma2=1.0, nu2=1.0, rho2=0.1)
    mu_f, s2 = np.meshgrid(np.linspace(-2.0, 5.0, 64), np.linspace(0.1, 1.8, 40), indexing="ij")
    th = base.replace({"f.mu": mu_f, **{f"{g}.sigma2": s2 for g in base}})
    assert th.shape == (64, 40) and th.shape[0] * th.shape[1] >= 2048
    r = analyze(arch, th, 0.5)
    assert r.converged.all()
    ref = analyze(arch, th, 0.5, order=400)
    # discretisation (nodes_for's order against 400 nodes; measured at most 0.36 of each bound);
    # C* carries the fixed point's 1/(1 - chi) <= 50, m1 and m2 sums of many expectations
    for k, rtol in (("q_s", 1e-8), ("c_s", 1e-7), ("chi", 1e-8), ("m1", 1e-6), ("m2", 1e-5)):
        np.testing.assert_allclose(getattr(r, k), getattr(ref, k), rtol=rtol, atol=1e-10, err_msg=k)
    # the time scale as log chi = -1/xi, in absolute terms and to chi's accuracy (measured 1.1e-10):
    # a relative tolerance on xi near chi = 1 would be a chi tolerance shrinking like 1/xi
    np.testing.assert_allclose(np.log(r.chi), np.log(ref.chi), rtol=0, atol=1e-8, err_msg="log chi")


def test_long_memory_cell_state_converges():
    """A forget gate that is (almost) always open gives Q* >> 1, reached through G' >= 1 at small Q:
    the Newton solve grows Q there instead of crawling by Picard steps, and finds Q* = G(Q*)."""
    th = Theta.uniform("peephole_lstm", sigma2=1.0, nu2=1.0, rho2=0.1).replace(
        {"f.mu": np.array([6.0, 8.0]), "f.sigma2": 0.0})
    mu, q, res, _, _ = mf.solve_q(th, 1.0, tol=1e-12)
    assert np.all(res < 1e-12) and np.all(q > 40)
    mu2, q2, _ = mf.step(th, mu, q, np.ones_like(q), 1.0, n=int(np.ceil(mf.Q_ORDER_FACTOR * mf.nodes_for(
        float(np.max(q)) + 1.1))))
    # residual 1e-12 and the two node orders' discretisation difference, times 1/(1 - G') ~ 1e2
    # for this long memory (measured 2.5e-13 relative)
    np.testing.assert_allclose(q2, q, rtol=1e-9)
    np.testing.assert_allclose(mu2, mu, atol=1e-9)
