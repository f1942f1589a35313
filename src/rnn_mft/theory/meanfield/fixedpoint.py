r"""The closed-form fixed point :math:`(\mu^*, Q^*, C^*)` of eq. (6) and :math:`\chi` (eq. (8)).

:func:`closed_form_fixed_point` (also importable as ``fixed_point``, its historical name) is the
fast path used by :func:`rnn_mft.theory.analyze` for every architecture with a
:class:`~rnn_mft.arch.Spec`; it returns a :class:`FixedPointResult`. The other fixed points of the
library are :func:`rnn_mft.theory.gru.fixed_point` (a hand-expanded direct-quadrature GRU solver
for the Figure 5 chapter, tested against this one), :func:`rnn_mft.theory.lstm.fixed_point`
(the paper's Algorithm 1 for the LSTM) and :func:`rnn_mft.theory.lstm_twostate.fixed_point` (the
two-state LSTM theory).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...arch import SPECS
from ..theta import Theta
from .cmap import CMap, solve_c
from .gates import check_R, check_sigma_z
from .qmap import q_converged, solve_q

__all__ = ["FixedPointResult", "closed_form_fixed_point", "fixed_point"]


@dataclass(frozen=True)
class FixedPointResult:
    """Fixed point (mu*, Q*, C*), chi at C* and diagnostics; NaN where not converged.

    ``one_minus_chi`` is 1 - chi computed without cancellation where the architecture allows
    (:meth:`CMap.one_minus_chi`; ``chi`` is then ``1 - one_minus_chi``, correctly rounded), and
    ``one_minus_chi_err`` its float64 error bound; ``direct`` says where the cancellation-free
    form was used (else ``one_minus_chi = 1 - chi``)."""

    mu_s: np.ndarray
    q_s: np.ndarray
    c_s: np.ndarray
    chi: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    iterations: int
    cmap: CMap | None = None
    one_minus_chi: np.ndarray | None = None
    one_minus_chi_err: np.ndarray | None = None
    direct: np.ndarray | bool = False


def closed_form_fixed_point(theta: Theta, sigma_z=1.0, R=1.0, tol: float = 1e-10, n: int | None = None,
                M: int | None = None, q_init=None) -> FixedPointResult:
    """(mu*, Q*, C*) of eq. (6) and chi (eq. (8)) for a closed-form architecture, on a grid.

    Q* by Newton's method (:func:`solve_q`), C* from the Mehler-series C map (:class:`CMap`,
    :func:`solve_c`). Returns a :class:`FixedPointResult` (NaN where not converged).
    """
    if theta.arch not in SPECS:
        raise ValueError(f"arch={theta.arch!r} has no closed-form map; allowed: {', '.join(SPECS)}")
    sz = check_sigma_z(sigma_z)
    R = check_R(R)
    qinfo: dict = {}
    mu, q, res_q, it_q, _ = solve_q(theta, R, n, tol=tol * 1e-2, q_init=q_init, info=qinfo)
    q_ok = q_converged(theta, q, qinfo["r"], qinfo["dG"], R)
    var_s = q - mu**2
    # a (numerically) deterministic state has no correlation to speak of: C* = 1
    ok_var = var_s > 1e-14 * np.maximum(1.0, q)
    q_safe = np.where(ok_var, q, np.maximum(q, mu**2) + 1e-12)
    cm = CMap(theta, mu, q_safe, sz, R, M=M, nq=n)
    cinfo: dict = {}
    c, chi, res_c, it_c = solve_c(cm, tol=min(tol, 1e-12), info=cinfo)
    shape = c.shape
    omc, omc_err = cinfo["one_minus_chi"], cinfo["one_minus_chi_err"]
    direct = cm.om is not None
    if direct:                          # chi correctly rounded from the cancellation-free 1 - chi
        chi = np.where(np.isfinite(omc), 1.0 - omc, chi)
    res = np.maximum(np.broadcast_to(res_q, shape), res_c)
    conv = (res < tol) & np.isfinite(c) & np.isfinite(chi) & np.broadcast_to(np.isfinite(q) & (q >= 0) & q_ok, shape)
    nan = lambda a: np.where(conv, np.broadcast_to(a, shape), np.nan)  # noqa: E731
    return FixedPointResult(nan(mu), nan(q), nan(c), nan(chi), conv, res, max(it_q, it_c), cm, nan(omc), nan(omc_err),
                            direct)


#: the historical name of :func:`closed_form_fixed_point`
fixed_point = closed_form_fixed_point
