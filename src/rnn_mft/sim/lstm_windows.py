r"""Window sizing, argument checks and rate summaries shared by the LSTM ground-truth
simulations :func:`rnn_mft.sim.tangent_decay` and :func:`rnn_mft.sim.correlation_decay`
(the method, and why it uses windows, is in :mod:`rnn_mft.sim.lstm_tangent`).

The forget-gate moments use the pre-activation law of eq. (4a) with a crude
:math:`Q_h = 0.25`: :math:`u_f \sim \mathcal{N}(\mu_f, \sigma_f^2 q_h + \nu_f^2 R + \rho_f^2)`.
"""
from __future__ import annotations

import math

import numpy as np

from ..theory.meanfield import gate_moment
from ..theory.quadrature import expect
from ..theory.theta import Theta

__all__ = ["forget_gate_moments", "crude_cell_law", "auto_windows"]

_GATES = ("i", "f", "r", "o")
#: crude Q_h = E[h^2] used only to size the default windows (|h| < 1, typically 0.05-0.3)
_Q_H_CRUDE = 0.25


def _check(theta, N, n_seeds, R, name="tangent_decay"):
    if not isinstance(theta, Theta):
        raise ValueError(f"{name} needs a Theta, got {type(theta).__name__}")
    if theta.arch != "lstm":
        raise ValueError(f"{name} is for arch='lstm', theta is for arch={theta.arch!r}")
    if theta.shape != ():
        raise ValueError(f"{name} needs scalar hyperparameters, theta has shape {theta.shape}")
    for nm, v in (("N", N), ("n_seeds", n_seeds)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{nm}={v!r} must be a positive integer")
    if not (isinstance(R, (int, float, np.floating, np.integer)) and np.isfinite(R) and R > 0):
        raise ValueError(f"R={R!r} must be a finite number > 0")


def _pos_int_or_none(name, v, lo=1):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name}={v!r} must be an integer >= {lo} (or None for the default)")
    return int(v)


def forget_gate_moments(theta: Theta, R: float = 1.0, q_h: float = _Q_H_CRUDE) -> dict:
    r"""Quadrature moments of :math:`F = \sigma(u_f)`, :math:`u_f \sim \mathcal{N}(\mu_f,
    \nu_f^2 R + \rho_f^2 + \sigma_f^2 q_h)`: ``EF``, ``EF2``, ``EF4``, ``tau_c = 1/(1 - EF)``
    (relaxation time of the cell state), ``kappa = EF4/EF2^2`` (per-step shrink factor of
    N_eff for product-like tangents) and ``xi0 = -1/log EF2`` (the rate of dc alone)."""
    p = theta["f"]
    var = float(gate_moment(p, q_h, R))                     # eq. (4a)
    mu = float(p.mu)
    sig = lambda u: 0.5 * (1.0 + np.tanh(0.5 * u))  # noqa: E731
    ef, ef2, ef4 = (float(expect(lambda u, m=m: sig(u) ** m, mu, var, n=120)) for m in (1, 2, 4))
    return dict(EF=ef, EF2=ef2, EF4=ef4, tau_c=1.0 / max(1.0 - ef, 1e-12), kappa=ef4 / ef2**2,
                xi0=-1.0 / math.log(ef2) if ef2 < 1 else math.inf)


def crude_cell_law(theta: Theta, R: float = 1.0, q_h: float = _Q_H_CRUDE) -> tuple[float, float]:
    r"""Mean and variance of the stationary cell state if the gates were independent of c and
    :math:`Q_h = q_h`: :math:`m = E\sigma(u_i) E\tanh(u_r)/(1 - EF)`,
    :math:`Q = (E\sigma(u_i)^2 E\tanh(u_r)^2 + 2 EF\, m\, E\sigma(u_i) E\tanh(u_r))/(1 - EF^2)`.
    Only used to start the burn-in near stationarity."""
    sig = lambda u: 0.5 * (1.0 + np.tanh(0.5 * u))  # noqa: E731

    def mom(k, f):
        p = theta[k]
        return float(expect(f, float(p.mu), float(gate_moment(p, q_h, R)), n=120))

    ef, ef2 = mom("f", sig), mom("f", lambda u: sig(u) ** 2)
    ei, ei2 = mom("i", sig), mom("i", lambda u: sig(u) ** 2)
    er, er2 = mom("r", np.tanh), mom("r", lambda u: np.tanh(u) ** 2)
    m = ei * er / max(1 - ef, 1e-12)
    q = (ei2 * er2 + 2 * ef * m * ei * er) / max(1 - ef2, 1e-12)
    return m, max(q - m * m, 0.0)


def auto_windows(theta: Theta, N: int, R: float = 1.0) -> dict:
    r"""Default ``t_burn``, ``t_align``, ``t_window``, ``n_windows`` from :math:`\Theta`.

    With :math:`\tau_c = 1/(1 - E\sigma(u_f))` (quadrature at a crude :math:`Q_h = 0.25`) and
    :math:`\kappa = E F^4/(E F^2)^2`:

    * ``t_burn = max(200, 5 tau_c)``: the cell state starts from the Gaussian of
      :func:`crude_cell_law`; its mean relaxes as :math:`(EF)^t`, its variance as
      :math:`(EF^2)^t`; 5 tau_c leaves :math:`e^{-5}` of the (already small) initial error.
    * ``t_align = max(10, tau_c)`` and ``t_window = max(20, 2 tau_c)``, both capped so that
      ``t_align + t_window <= log(N/300)/log(kappa)`` (N_eff stays above ~100 even for a pure
      product of forget gates; ``n_eff_min`` reports what was met), but at least 4 + 6 steps.
    * ``n_windows = max(2, ceil(400 / t_window))``: about 400 measured steps per seed (more
      windows for fast Thetas, whose single windows are noisy; two long ones for slow Thetas,
      whose per-step growth hardly fluctuates).
    """
    m = forget_gate_moments(theta, R)
    tau = m["tau_c"]
    t_cap = math.log(max(N / 300.0, 1.0 + 1e-9)) / math.log(m["kappa"]) if m["kappa"] > 1 + 1e-12 else math.inf
    t_align = max(10, math.ceil(tau))
    t_window = max(20, math.ceil(2.0 * tau))
    if t_align + t_window > t_cap:
        t_align = max(4, int(t_cap / 3))
        t_window = max(6, int(t_cap - t_align))
    n_windows = max(2, math.ceil(400.0 / t_window))
    return dict(t_burn=max(200, math.ceil(5 * tau)), t_align=int(t_align), t_window=int(t_window),
                n_windows=int(n_windows), tau_c=tau, kappa=m["kappa"], xi0=m["xi0"])


def _lme(x: np.ndarray) -> np.ndarray:
    """log(mean(exp(x), axis=0)), stably: the log of the mean growth factor over windows."""
    m = x.max(0)
    return m + np.log(np.exp(x - m).mean(0))


def _summary(logr: np.ndarray):
    """chi, chi_se, xi, xi_lo, xi_hi from per-seed per-step log growths."""
    n = logr.size
    m = float(logr.mean())
    se = float(logr.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    chi = math.exp(m)

    def xi_of(l):
        return -1.0 / l if l < 0 else math.inf

    lo, hi = (xi_of(m - 2 * se), xi_of(m + 2 * se)) if np.isfinite(se) else (math.nan, math.nan)
    return chi, chi * se, xi_of(m), lo, hi
