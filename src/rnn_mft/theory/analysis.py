r"""One entry point for the whole theory: :func:`analyze`.

For any architecture of Table 1 and any grid of :math:`\Theta` (and of :math:`\Sigma_z`) it
returns the fixed point :math:`(\mu_s^*, Q_s^*, C_s^*)` of eq. (6), :math:`\chi` (eq. (8)),
:math:`\xi = -1/\log\chi` (eq. (9)), the Jacobian moments :math:`m_1` (eqs. (11)-(12)) and
:math:`m_2` (free-probability second moment; the printed eq. (14) as ``m2_printed``) and
``var = m2 - m1**2``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import lstm as _lstm
from . import lstm_twostate as _lstm2
from . import meanfield as _mf
from . import schedule as _schedule
from .theta import Theta, check_arch

__all__ = ["AnalysisResult", "analyze", "xi_from_chi", "LSTM_METHODS"]

#: LSTM methods of :func:`analyze`: the two-state theory (default, it agrees with the network) and
#: the paper's Algorithm 1 with the hidden-state approximation of Appendix A.2.3
LSTM_METHODS = ("two_state", "paper")

KEYS = ("mu_s", "q_s", "c_s", "chi", "xi", "m1", "m2", "var", "converged")


def xi_from_chi(chi):
    r"""Eq. (9): :math:`\xi = -1/\log\chi` (``inf`` for :math:`\chi \ge 1`, NaN stays NaN)."""
    chi = np.asarray(chi, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.where(chi >= 1.0, np.inf, -1.0 / np.log(np.where(chi > 0, chi, np.nan)))
    return np.where(np.isnan(chi), np.nan, np.where(chi <= 0, 0.0, xi))


@dataclass(frozen=True)
class AnalysisResult:
    """Fixed point, time scale and Jacobian moments over the grid of ``theta`` (and ``sigma_z``).

    Every array field has the broadcast shape of ``theta.shape`` and ``sigma_z``; where the
    solver did not converge the values are NaN and ``converged`` is False.
    """

    arch: str
    mu_s: np.ndarray
    q_s: np.ndarray
    c_s: np.ndarray
    chi: np.ndarray
    xi: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    var: np.ndarray
    converged: np.ndarray
    m2_printed: np.ndarray
    var_printed: np.ndarray
    residual: np.ndarray
    sigma_z: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def shape(self):
        return np.shape(self.chi)

    def to_dict(self) -> dict:
        """The CLI's JSON object: plain floats (or nested lists), NaN/inf as None/"inf"."""
        def conv(a):
            a = np.asarray(a)
            if a.dtype == bool:
                return a.item() if a.ndim == 0 else a.tolist()
            f = lambda x: None if np.isnan(x) else ("inf" if np.isposinf(x) else float(x))  # noqa: E731
            return f(a.item()) if a.ndim == 0 else np.vectorize(f, otypes=[object])(a).tolist()
        return {k: conv(getattr(self, k)) for k in KEYS}


def analyze(arch: str, theta: Theta, sigma_z=1.0, R: float = 1.0, *, tol: float = 1e-10,
            order: int | None = None, n_s: int = _lstm.DEFAULT_NS, n_iters: int = _lstm.DEFAULT_ITERS,
            seed: int = 0, method: str | None = None) -> AnalysisResult:
    r"""Forward and backward mean-field quantities of ``arch`` at ``theta`` (Sections 4.2-4.5).

    Parameters
    ----------
    arch : {"vanilla", "minimal", "gru", "peephole_lstm", "lstm"}
        Or any architecture registered with a ``spec`` (:func:`rnn_mft.arch.register`).
    theta : Theta
        Hyperparameters for ``arch``; any grid shape (e.g. from :meth:`Theta.grid`).
    sigma_z : float or array in [0, 1]
        Input correlation :math:`\Sigma_z` (broadcast against the grid).
    R : float > 0
        Second moment of the inputs.
    tol : float
        Residual below which a fixed point counts as converged.
    order : int, optional
        Gauss-Hermite order; default chosen from the largest pre-activation variance.
    n_s, n_iters, seed : int
        LSTM with ``method="paper"`` only: Algorithm 1's samples, iterations and seed of the
        common random numbers.
    method : {"two_state", "paper"}, optional
        LSTM only. ``"two_state"`` (default): the deterministic theory of the pair (h, c) of
        :mod:`rnn_mft.theory.lstm_twostate`, which agrees with simulated networks; it covers
        Sigma_z = 1 (C* = 1), Sigma_z = 0 with independent copies (C* = 0) and other Sigma_z < 1
        through the joint law of (c_a, c_b) (:mod:`rnn_mft.theory.lstm_joint`, seconds per point),
        ``info["methods"]`` naming the method per point, and returns NaN (``converged`` False,
        ``info["methods"]`` saying why) at an unstable fixed point; m1, m2 are the moments
        of the 2N x 2N Jacobian of (h, c) and ``m2_printed`` is NaN. ``"paper"``: Algorithm 1
        with Appendix A.2.3's hidden-state approximation (Monte Carlo; for comparison).

    Returns
    -------
    AnalysisResult

    Examples
    --------
    >>> r = analyze("gru", Theta.standard("gru"), sigma_z=1.0)
    >>> bool(r.converged), round(float(r.m1 - r.chi), 8)
    (True, 0.0)
    """
    check_arch(arch)
    if not isinstance(theta, Theta):
        raise ValueError(f"theta must be a rnn_mft.theory.Theta, got {type(theta).__name__}")
    if theta.arch != arch:
        raise ValueError(f"theta is for arch={theta.arch!r} but arch={arch!r} was asked for")
    sz = _mf.check_sigma_z(sigma_z)
    R = _mf.check_R(R)
    if 0 in tuple(theta.shape) or np.size(sz) == 0:
        raise ValueError(f"the grid is empty (theta shape {tuple(theta.shape)}, sigma_z shape {np.shape(sz)}); "
                         f"give at least one point")
    if method is not None and arch != "lstm":
        raise ValueError(f"method={method!r} applies to arch='lstm' only")
    if arch == "lstm":
        _lstm._check_sampling(n_s, n_iters)
    if arch == "lstm" and (method or "two_state") == "two_state":
        d = _lstm2.fixed_point(theta, sz, R=R)
        # NaN anywhere in the outputs means not converged
        conv = d["converged"] & np.isfinite(d["q_s"]) & np.isfinite(d["chi"]) & np.isfinite(d["m1"]) \
            & np.isfinite(d["m2"])
        b = lambda a: np.where(conv, a, np.nan)  # noqa: E731
        chi = b(d["chi"])
        m1, m2 = b(d["m1"]), b(d["m2"])
        nanp = np.full(np.shape(chi), np.nan)
        meth = d["method"]
        info = {"method": "two-state theory (deterministic)",
                "methods": meth if np.ndim(meth) else str(meth)}
        return AnalysisResult(arch, b(d["mu_s"]), b(d["q_s"]), b(d["c_s"]), chi, xi_from_chi(chi), m1, m2,
                              m2 - m1**2, np.asarray(conv).copy(), nanp, nanp, d["residual"],
                              np.broadcast_to(sz, np.shape(chi)), info)
    if arch == "lstm":
        if method not in LSTM_METHODS:
            raise ValueError(f"method={method!r}; allowed for the LSTM: {', '.join(LSTM_METHODS)}")
        fp = _lstm.fixed_point(theta, sz, R=R, n_s=n_s, n_iters=n_iters, seed=seed, tol=tol)
        m1, m2, m2p = fp.m1, fp.m2, fp.m2_printed
        info = {"method": "paper: Algorithm 1 (cell-state sampling) and Appendix A.2.3", "n_s": n_s,
                "n_iters": n_iters, "seed": seed, "iterations": fp.iterations}
    else:
        # the closed-form theory (meanfield), solved per group of grid points (schedule)
        fp, m1, m2, m2p, nq = _schedule.solve_grid(theta, sz, R, tol, order)
        info = {"method": "quadrature + Mehler series", "order": nq, "iterations": fp.iterations}
    shape = np.shape(fp.chi)
    conv = np.broadcast_to(fp.converged, shape)
    # a NaN (or inf) anywhere in the outputs is no convergence (e.g. m2 overflowing at sigma2 = 1e300)
    with np.errstate(all="ignore"):
        for a in (fp.mu_s, fp.q_s, fp.c_s, fp.chi, m1, m2):
            conv = conv & np.isfinite(np.broadcast_to(a, shape))
    b = lambda a: np.where(conv, np.broadcast_to(a, shape), np.nan)  # noqa: E731
    m1, m2, m2p = b(m1), b(m2), b(m2p)
    return AnalysisResult(arch, b(fp.mu_s), b(fp.q_s), b(fp.c_s), b(fp.chi), xi_from_chi(b(fp.chi)),
                          m1, m2, m2 - m1**2, conv.copy(), m2p, m2p - m1**2, np.broadcast_to(fp.residual, shape),
                          np.broadcast_to(sz, shape), info)
