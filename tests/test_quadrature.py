"""Gauss-Hermite expectations against closed forms and high-precision references."""
import numpy as np
import pytest
from scipy import integrate, special

from rnn_mft.theory.quadrature import expect, expect2, gauss_hermite, sigmoid


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
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    with pytest.raises(ValueError, match="order"):
        gauss_hermite(0)


@pytest.mark.parametrize("mu,var", [(0.0, 1.0), (1.5, 0.3), (-2.0, 4.0), (0.7, 0.0)])
def test_gaussian_moments_exact(mu, var):
    assert expect(lambda u: u, mu, var) == pytest.approx(mu, abs=1e-12)
    assert expect(lambda u: u**2, mu, var) == pytest.approx(mu**2 + var, abs=1e-12)
    assert expect(lambda u: u**4, mu, var) == pytest.approx(mu**4 + 6 * mu**2 * var + 3 * var**2, rel=1e-12)


@pytest.mark.parametrize("var", [0.1, 1.0, 5.0, 10.0])
def test_odd_functions_vanish_at_zero_mean(var):
    assert abs(expect(np.tanh, 0.0, var)) < 1e-14
    assert expect(sigmoid, 0.0, var) == pytest.approx(0.5, abs=1e-14)
    # E[tanh(u_a) tanh(u_b)] = 0 for independent zero-mean u_a, u_b
    assert abs(expect2(np.tanh, None, 0.0, var, 0.0)) < 1e-14


@pytest.mark.parametrize("mu,var", [(0.0, 1.0), (1.0, 2.0), (-3.0, 0.5), (2.0, 4.0), (0.5, 6.0), (5.0, 10.0)])
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_sigmoid_tanh_against_reference(mu, var):
    """Default order, against adaptive quadrature, in the range that order_for documents."""
    for f in (sigmoid, lambda u: sigmoid(u) ** 2):
        assert expect(f, mu, var) == pytest.approx(_ref(f, mu, var), abs=1e-8)
    if var <= 6:
        for f in (np.tanh, lambda u: np.tanh(u) ** 2):
            assert expect(f, mu, var) == pytest.approx(_ref(f, mu, var), abs=1e-8)
    # symmetry: E[sigma(mu + x)] + E[sigma(-mu + x)] = 1
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
    # C = 1: E[f(u) g(u)];  C = 0: E[f] E[g]
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
