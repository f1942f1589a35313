"""Gauss-Hermite expectations against closed forms and high-precision references.

Tolerances. Against adaptive quadrature (error < 1e-11): the rule's own accuracy as order_for
documents it (tanh to 1e-8 up to var = 6, the sigmoid to 1e-12; erf is entire and converges
faster). Where the rule is exact (polynomials of degree < 2n; odd integrands on its symmetric
nodes) only rounding is left: a weighted sum of n terms is off by at most n u64 times the sum of
|terms| (u64 = 2**-53), whatever order a CPU's kernels add them in.
"""
import numpy as np
import pytest
from scipy import integrate, special

from rnn_mft.theory.quadrature import MAX_ORDER_2D, expect, expect2, gauss_hermite, order_for, sigmoid

U64 = 2.0 ** -53                              # float64 unit roundoff


def _ref(f, mu, var):
    """E[f(u)], u ~ N(mu, var), by adaptive quadrature to ~1e-13."""
    sd = np.sqrt(var)
    g = lambda z: f(mu + sd * z) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)  # noqa: E731
    # split at the centre of the sigmoid, where the integrand varies fastest
    val, err = integrate.quad(g, -40, 40, epsabs=1e-15, epsrel=1e-15, limit=1000, points=[-mu / sd])
    assert err < 1e-11
    return val


def test_weights_sum_to_one_and_bad_order():
    x, w = gauss_hermite(20)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)      # normalised, then summed again: 2 n u64 = 4e-15
    with pytest.raises(ValueError, match="order"):
        gauss_hermite(0)


@pytest.mark.parametrize("mu,var", [(0.0, 1.0), (1.5, 0.3), (-2.0, 4.0), (0.7, 0.0)])
def test_gaussian_moments_exact(mu, var):
    # exact for polynomials: rounding only, n u64 sum|terms| <= 80 u64 (mu^2 + var + 1) ~ 1e-13,
    # plus the nodes' and weights' own ~1e-15 relative accuracy
    assert expect(lambda u: u, mu, var) == pytest.approx(mu, abs=1e-12)
    assert expect(lambda u: u**2, mu, var) == pytest.approx(mu**2 + var, abs=1e-12)
    assert expect(lambda u: u**4, mu, var) == pytest.approx(mu**4 + 6 * mu**2 * var + 3 * var**2, rel=1e-12)


@pytest.mark.parametrize("var", [0.1, 1.0, 5.0, 10.0])
def test_odd_functions_vanish_at_zero_mean(var):
    # the symmetric nodes cancel the odd part exactly; left is the rounding of n terms whose |values|
    # sum to <= 1: n u64 for the sum, plus ~u64 per term for tanh's and the weights' own rounding,
    # so 2 n u64 (8.9e-14 at var = 10, n = 400; the former 1e-14 held for the summation order of
    # this CPU's kernels, measured 1e-16); the 2-D rule: two nested sums of n <= 200
    tol, tol2 = 2 * order_for(var) * U64, 4 * order_for(var, MAX_ORDER_2D) * U64
    assert abs(expect(np.tanh, 0.0, var)) < tol
    assert expect(sigmoid, 0.0, var) == pytest.approx(0.5, abs=tol)
    # E[tanh(u_a) tanh(u_b)] = 0 for independent zero-mean u_a, u_b
    assert abs(expect2(np.tanh, None, 0.0, var, 0.0)) < tol2


@pytest.mark.parametrize("mu,var", [(0.0, 1.0), (1.0, 2.0), (-3.0, 0.5), (2.0, 4.0), (0.5, 6.0), (5.0, 10.0)])
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_sigmoid_tanh_against_reference(mu, var):
    """Default order, against adaptive quadrature, in the range that order_for documents."""
    for f in (sigmoid, lambda u: sigmoid(u) ** 2):
        assert expect(f, mu, var) == pytest.approx(_ref(f, mu, var), abs=1e-8)
    if var <= 6:
        for f in (np.tanh, lambda u: np.tanh(u) ** 2):
            assert expect(f, mu, var) == pytest.approx(_ref(f, mu, var), abs=1e-8)
    # symmetry: E[sigma(mu + x)] + E[sigma(-mu + x)] = 1, exact on the symmetric nodes: rounding of
    # two sums of n <= 400 terms of total weight 1, 2 n u64 <= 9e-14
    assert expect(sigmoid, mu, var) + expect(sigmoid, -mu, var) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("mu,var,a", [(0.0, 1.0, 1.0), (0.8, 2.0, 0.7), (-1.0, 5.0, 1.3)])
def test_erf_closed_form(mu, var, a):
    # E[erf(a u)] = erf(a mu / sqrt(1 + 2 a^2 var))
    want = special.erf(a * mu / np.sqrt(1 + 2 * a * a * var))
    assert expect(lambda u: special.erf(a * u), mu, var) == pytest.approx(want, abs=1e-8)


@pytest.mark.parametrize("var,c", [(0.5, 0.3), (1.0, -0.6), (2.0, 0.9), (3.0, 0.99)])
def test_expect2_erf_arcsin(var, c):
    # Williams (1997): E[erf(u_a) erf(u_b)] = (2/pi) arcsin(2 c var / (1 + 2 var)) at zero mean
    want = 2 / np.pi * np.arcsin(2 * c * var / (1 + 2 * var))
    assert expect2(special.erf, None, 0.0, var, c) == pytest.approx(want, abs=1e-8)


def test_expect2_limits_and_broadcasting():
    mu = np.array([-1.0, 0.0, 2.0])[:, None]
    var = np.array([0.5, 3.0])[None, :]
    # C = 1: E[f(u) g(u)];  C = 0: E[f] E[g]. The 2-D rule reduces to the 1-D one there (same
    # nodes, order_for(3.0, 200) = 200): rounding of nested sums, 4 n u64 ~ 9e-14 (allowed 1e-12)
    one = expect2(sigmoid, np.tanh, mu, var, 1.0)
    assert one.shape == (3, 2)
    np.testing.assert_allclose(one, expect(lambda u: sigmoid(u) * np.tanh(u), mu, var), atol=1e-12)
    zero = expect2(sigmoid, np.tanh, mu, var, 0.0)
    np.testing.assert_allclose(zero, expect(sigmoid, mu, var) * expect(np.tanh, mu, var), atol=1e-12)


def test_bad_variance_and_correlation():
    with pytest.raises(ValueError, match="var"):
        expect(np.tanh, 0.0, -1.0)
    with pytest.raises(ValueError, match="corr"):
        expect2(np.tanh, None, 0.0, 1.0, 1.5)
