r"""Gate statistics: the moments of every pre-activation, eqs. (4a)-(4b) and (17a)-(17b).

:func:`gate_moment` is the one place where eq. (4) is written:
:math:`\sigma_k^2\,m + \nu_k^2 R\,\Sigma_z + \rho_k^2` with :math:`m = Q_s` and
:math:`\Sigma_z = 1` for the variance (4a), :math:`m = \mathbb{E}[s_a s_b]` for the covariance
(4b), and a ``gain`` :math:`\mathbb{E}[g_r^2]` (resp. :math:`\mathbb{E}[g_r(u_a)g_r(u_b)]`) for
the GRU's variable of form (1b), eqs. (17a)-(17b). Also: argument checks shared by the theory,
and the grid helpers that flatten a :class:`~rnn_mft.theory.Theta` and take points of it.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..quadrature import expect, expect2
from ...arch import SPECS
from ..theta import ARCHS, Theta
from .algebra import _sig
from .gauss import finite_max, nodes_for

__all__ = ["check_sigma_z", "check_R", "gate_moment", "gate_stats"]


def gate_moment(p, m, R, sigma_z=1.0, gain=None):
    r"""Eq. (4): :math:`\sigma^2\,[\text{gain}]\,m + \nu^2 R\,\Sigma_z + \rho^2` for gate params ``p``.

    * variance of a (1a) pre-activation, eq. (4a): ``gate_moment(p, Q_s, R)``;
    * covariance of the two copies, eq. (4b): ``gate_moment(p, E[s_a s_b], R, sigma_z)``;
    * the GRU's (1b) variable, eqs. (17a)-(17b): ``gain`` = :math:`\mathbb{E}\sigma(u_r)^2`
      (resp. :math:`\mathbb{E}[\sigma(u_{r,a})\sigma(u_{r,b})]`).

    ``p`` has fields ``sigma2, nu2, rho2`` (a :class:`~rnn_mft.theory.GateParams`, or a mapping
    with those keys, as the two-state LSTM theory's per-point dicts); every argument
    broadcasts (``m`` and ``gain`` may also be forward-mode duals). The means of the pre-activations
    are the bias means ``p.mu`` (the weights have mean zero).
    """
    if isinstance(p, Mapping):
        sigma2, nu2, rho2 = p["sigma2"], p["nu2"], p["rho2"]
    else:
        sigma2, nu2, rho2 = p.sigma2, p.nu2, p.rho2
    s2 = sigma2 if gain is None else sigma2 * gain
    if isinstance(sigma_z, float) and sigma_z == 1.0:
        return s2 * m + nu2 * R + rho2
    return s2 * m + nu2 * R * sigma_z + rho2


def check_sigma_z(sigma_z) -> np.ndarray:
    """Validate the input correlation :math:`\\Sigma_z \\in [0, 1]` (Section 4.2)."""
    try:
        sz = np.asarray(sigma_z, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"sigma_z={sigma_z!r} must lie in [0, 1]") from None
    if not np.all(np.isfinite(sz)) or np.any(sz < 0) or np.any(sz > 1):
        raise ValueError(f"sigma_z={sigma_z!r} must lie in [0, 1]")
    return sz


def check_R(R) -> float:
    """Validate the input second moment R (> 0, finite)."""
    try:
        R = float(R)
    except (TypeError, ValueError):
        raise ValueError(f"R={R!r} must be a finite number > 0") from None
    if not np.isfinite(R) or R <= 0:
        raise ValueError(f"R={R!r} must be a finite number > 0")
    return R


def _var_corr(p, q_s, ss_ab, R, sz):
    """Eqs. (4a)-(4b): variance Q_k - mu_k^2 and correlation C_k of a gate of form (1a)."""
    var = gate_moment(p, q_s, R)
    cov = gate_moment(p, ss_ab, R, sz)
    return var, _safe_corr(cov, var)


def _safe_corr(cov, var):
    var = np.asarray(var, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(var > 0, cov / np.where(var > 0, var, 1.0), 1.0)
    return np.clip(c, -1.0, 1.0)


def gate_stats(theta: Theta, mu_s, q_s, c_s, sigma_z=1.0, R=1.0, n: int | None = None):
    """Mean, variance and correlation of every pre-activation (eqs. (4a)-(4b), (17a)-(17b)).

    Returns ``{gate: (mean, var, corr)}`` broadcast over theta's grid and the arguments.
    """
    arch = theta.arch
    sz = check_sigma_z(sigma_z)
    mu_s, q_s, c_s = (np.asarray(a, dtype=float) for a in (mu_s, q_s, c_s))
    ss_ab = (q_s - mu_s**2) * c_s + mu_s**2
    out = {}
    for k in ARCHS[arch]:
        if k == "r2":
            continue
        var, corr = _var_corr(theta[k], q_s, ss_ab, R, sz)
        out[k] = (theta[k].mu, var, corr)
    spec = SPECS.get(arch)
    if spec is not None and spec.gru:
        mu_r, var_r, c_r = out["r"]
        nn = nodes_for(np.max(var_r), n)
        g2 = expect(lambda u: _sig(u) ** 2, mu_r, var_r, n=nn)
        gab = expect2(_sig, None, mu_r, var_r, c_r, n=nn)
        p = theta["r2"]
        var2 = gate_moment(p, q_s, R, gain=g2)                           # eq. (17a)
        cov2 = gate_moment(p, ss_ab, R, sz, gain=gab)                    # eq. (17b)
        out["r2"] = (p.mu, var2, _safe_corr(cov2, var2))
    return out


def _max_var(theta, q, R):
    """Largest pre-activation variance over the grid, point by point (NaN ignored); for the GRU's
    r2 the bound sigma2 * Q + ... (E sigma(u_r)^2 <= 1)."""
    v = 0.0
    for k in ARCHS[theta.arch]:
        p = theta[k]
        vk = finite_max(gate_moment(p, q, R))          # a diverged point does not set the order
        v = max(v, vk) if np.isfinite(vk) else v
    return v


def _flat(theta: Theta, shape) -> Theta:
    """Theta with every field broadcast to ``shape`` and flattened (grid points on one axis)."""
    return Theta(theta.arch, {g: {f: np.broadcast_to(getattr(theta[g], f), shape).ravel().copy()
                                  for f in ("sigma2", "nu2", "rho2", "mu")} for g in theta})


def _take(theta: Theta, idx) -> Theta:
    """The grid points ``idx`` of a flattened Theta."""
    return Theta(theta.arch, {g: {f: getattr(theta[g], f)[idx] for f in ("sigma2", "nu2", "rho2", "mu")}
                              for g in theta})


def _gate_var_max(theta: Theta, q, R):
    """Largest pre-activation variance point by point (for r2 the bound sigma2 * Q + ...)."""
    v = 0.0
    for k in ARCHS[theta.arch]:
        p = theta[k]
        v = np.maximum(v, gate_moment(p, q, R))
    return v


