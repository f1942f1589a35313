r"""One entry point for the whole theory: :func:`analyze`.

For any architecture of Table 1 and any grid of :math:`\Theta` (and of :math:`\Sigma_z`) it
returns the fixed point :math:`(\mu_s^*, Q_s^*, C_s^*)` of eq. (6), :math:`\chi` (eq. (8)),
:math:`\xi = -1/\log\chi` (eq. (9)), the Jacobian moments :math:`m_1` (eqs. (11)-(12)) and
:math:`m_2` (free-probability second moment; the printed eq. (14) as ``m2_printed``) and
``var = m2 - m1**2``.

**Resolution of xi.** Near :math:`\chi = 1`, :math:`\xi \approx 1/(1 - \chi)` and a float64
:math:`\chi` resolves :math:`1 - \chi` only to about :math:`10^{-16}`. Every result therefore carries
:math:`1 - \chi` itself (``one_minus_chi``), computed without cancellation where the architecture
allows it (minimal, GRU, peephole LSTM: :meth:`rnn_mft.theory.meanfield.CMap.one_minus_chi`,
relative error ~1e-13 for any :math:`\mu_f`), its float64 error bound (``one_minus_chi_err``),
the Monte Carlo standard error of :math:`\chi` (``chi_stderr``, Algorithm 1 only, else 0), the
relative error of :math:`\xi = -1/\log(1 - (1 - \chi))` that these imply (``xi_rel_err``), a lower
bound (``xi_lower``) and ``xi_resolved`` with a reason (``xi_note``) where it is False. Where float64
does not resolve :math:`\xi` to ``xi_rtol`` (vanilla, the LSTM, at :math:`1 - \chi` within a
factor ``1/xi_rtol`` of the rounding error), ``xi`` is NaN and ``xi_lower`` is all that is known.
Algorithm 1 (``method="paper"``) is not called converged when its Monte Carlo error of
:math:`\xi` exceeds ``mc_rtol``. A correlation :math:`C^*` outside :math:`[-1, 1]` by more than
rounding is not converged either.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import lstm as _lstm
from . import lstm_twostate as _lstm2
from . import meanfield as _mf
from . import schedule as _schedule
from .. import arch as _arch
from .theta import Theta, check_arch

__all__ = ["AnalysisResult", "analyze", "xi_from_chi", "xi_from_one_minus_chi", "LSTM_METHODS", "XI_RTOL",
           "MC_RTOL", "RESOLUTION_KEYS"]

#: LSTM methods of :func:`analyze`: the two-state theory (default, it agrees with the network) and
#: the paper's Algorithm 1 with the hidden-state approximation of Appendix A.2.3
LSTM_METHODS = ("two_state", "paper")
#: the theories :func:`analyze` runs, by the name an architecture gives as ``Architecture.theory``:
#: the closed-form map built from its ``spec`` (:mod:`rnn_mft.theory.meanfield`), and the LSTM's
#: cell-state theories (two-state, and the paper's Algorithm 1; ``method=``)
THEORIES = ("closed_form", "lstm_two_state")

KEYS = ("mu_s", "q_s", "c_s", "chi", "xi", "m1", "m2", "var", "converged")
#: the resolution fields (module docstring), in :meth:`AnalysisResult.to_dict` with ``resolution=True``
RESOLUTION_KEYS = ("one_minus_chi", "one_minus_chi_err", "chi_stderr", "xi_rel_err", "xi_lower", "xi_resolved",
                   "xi_note")

#: default ``xi_rtol`` of :func:`analyze`: the relative error of xi (float64 rounding and Monte
#: Carlo) up to which xi counts as resolved; the default accuracy of :func:`solve_for_timescale`
XI_RTOL = 1e-4
#: default ``mc_rtol``: Algorithm 1 is not converged where the Monte Carlo standard error of chi,
#: propagated to xi, exceeds this relative error (one significant digit)
MC_RTOL = 0.1

_EPS = float(np.finfo(float).eps)


def _gamma(n):
    """Higham's gamma_n = n eps / (1 - n eps): the relative error bound of n roundings."""
    return n * _EPS / (1.0 - n * _EPS)


#: float64 error model of the LSTM's chi (1 - chi has no cancellation-free form there). Two-state
#: theory at C* = 1: chi is the root of f(x) = alpha/x + beta <a_p, (x - P_2)^{-1} w> - 1, with
#: P_2 built from sums over the grid and the Gauss-Hermite nodes and LU solves on the n-point grid;
#: the backward error of both is gamma_N |.| and moves the root by at most 2 x gamma_N (the
#: perturbed solve has the form of x f'(x)): N = 1024 bounds the roundings per entry (grid
#: n = 35, stencils, n_f <= 400 nodes). Measured: a point alone and in a batch, 8e-14 apart at
#: mu_f = 12 (bound 4.5e-13). C* = 0 and the joint theory: roots of larger systems (the joint
#: operator has n(n+1)/2 = 630 unknowns) found to a relative 1e-13 (bisection) / 1e-14 (brentq).
TWO_STATE_ROUNDINGS = 1024
JOINT_ROUNDINGS = 4096
ROOT_STOP = 1e-13


def xi_from_chi(chi):
    r"""Eq. (9): :math:`\xi = -1/\log\chi` (``inf`` for :math:`\chi \ge 1`, NaN stays NaN).

    Near :math:`\chi = 1` this is only as good as :math:`1 - \chi` is: prefer
    :func:`xi_from_one_minus_chi` with a :math:`1 - \chi` computed without cancellation
    (``AnalysisResult.one_minus_chi``)."""
    chi = np.asarray(chi, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.where(chi >= 1.0, np.inf, -1.0 / np.log(np.where(chi > 0, chi, np.nan)))
    return np.where(np.isnan(chi), np.nan, np.where(chi <= 0, 0.0, xi))


def xi_from_one_minus_chi(omc):
    r"""Eq. (9) from :math:`\delta = 1 - \chi`: :math:`\xi = -1/\log1p(-\delta)` (accurate for any
    small :math:`\delta`, e.g. 4e-22 gives 2.6e21; ``inf`` for :math:`\delta \le 0`, 0 for
    :math:`\delta \ge 1`, i.e. :math:`\chi \le 0`)."""
    d = np.asarray(omc, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = -1.0 / np.log1p(-np.where((d > 0) & (d < 1), d, 0.5))
    return np.where(np.isnan(d), np.nan, np.where(d <= 0, np.inf, np.where(d >= 1, 0.0, xi)))


def _rel_err_xi(omc, err):
    """Relative error of xi = -1/log(1 - omc) from an absolute error ``err`` of omc:
    d xi / xi = d omc / ((1 - omc) |log(1 - omc)|) (inf where omc <= 0, 0 where omc >= 1)."""
    omc, err = np.asarray(omc, float), np.asarray(err, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        den = (1.0 - omc) * np.abs(np.log1p(-np.where((omc > 0) & (omc < 1), omc, 0.5)))
        r = err / den
    return np.where(omc <= 0, np.inf, np.where(omc >= 1, 0.0, r))


def _points(mask):
    """The indices where ``mask`` (any shape, 0-d included) is True."""
    return list(zip(*np.nonzero(mask))) if np.ndim(mask) else ([()] if mask else [])


def _resolve(omc, err, se, conv, c_s, xi_rtol, mc_rtol, n_s=None):
    """The resolution fields (module docstring) and the updated ``conv``.

    ``omc``, ``err``: 1 - chi and its float64 error bound; ``se``: Monte Carlo standard error of
    chi (0 for a deterministic theory, NaN where it has no estimate); ``c_s``: C* (checked against
    [-1, 1]). Returns ``conv, xi, fields`` (``fields``: {name: array} of :data:`RESOLUTION_KEYS`).
    """
    shape = np.shape(omc)
    conv = np.array(np.broadcast_to(conv, shape))
    omc, err, se = (np.broadcast_to(np.asarray(a, float), shape) for a in (omc, err, se))
    notes = np.full(shape, "", dtype=object)
    noted = np.zeros(shape, bool)

    def note(mask, text):
        """Put ``text`` (a str, or a function of the index) at the points of ``mask``."""
        nonlocal noted
        for i in _points(mask):
            notes[i] = text(i) if callable(text) else text
        noted = noted | mask

    # C* is a correlation: outside [-1, 1] beyond its solver's tolerance it is no solution
    with np.errstate(invalid="ignore"):
        bad_c = conv & (np.abs(np.broadcast_to(np.asarray(c_s, float), shape)) > 1.0 + 1e-8)
    if bad_c.any():
        note(bad_c, "not converged: C* outside [-1, 1]")
        conv &= ~bad_c
    rel_round = _rel_err_xi(omc, err)
    rel = rel_round
    up = omc + err
    mc = se != 0
    if mc.any():
        # the standard error is itself estimated from n_s samples: the test uses its one-sided 95%
        # upper confidence bound, se * sqrt((n_s - 1) / chi2_{0.05, n_s - 1}) (a factor 16 at
        # n_s = 2, 1.6 at 10, 1.05 at 1000), so that a few samples cannot pass by luck
        from scipy.special import chdtri
        k = float(np.sqrt((n_s - 1) / chdtri(n_s - 1, 0.95))) if n_s and n_s > 1 else np.inf
        se_ = np.where(np.isfinite(se), se, np.inf)
        rel_mc = _rel_err_xi(omc, se_)
        with np.errstate(invalid="ignore"):
            no_se = conv & mc & ~np.isfinite(se)
            noisy = conv & mc & np.isfinite(se) & ~(k * rel_mc <= mc_rtol) & ~(omc + err + k * se <= 0)
        note(no_se, f"not converged: one sample (n_s = {n_s}) gives no Monte Carlo error estimate"
             if n_s == 1 else "not converged: no Monte Carlo error estimate")

        def noisy_text(i):
            chi_i = 1.0 - float(omc[i])
            return (f"not converged: chi = {chi_i:.6g} +- {float(se[i]):.2g} (Monte Carlo standard error, "
                    f"n_s = {n_s}): " + (f"xi +- {float(rel_mc[i]):.2g} relative (95% bound {k * float(rel_mc[i]):.2g})"
                                         f" > mc_rtol = {mc_rtol:g}" if chi_i < 1 else "chi >= 1, no finite xi"))
        note(noisy, noisy_text)
        conv &= ~(no_se | noisy)
        rel = np.where(mc, rel_round + rel_mc, rel_round)
        up = up + 2.0 * np.where(mc, se_, 0.0)
    xi = xi_from_one_minus_chi(omc)
    xi_lower = xi_from_one_minus_chi(up)
    # chi >= 1 beyond every error: no decay, xi = inf is the resolved answer
    with np.errstate(invalid="ignore"):
        inf = conv & (up <= 0)
        # float64 does not resolve xi to xi_rtol: no number, only the lower bound
        unres = conv & ~(rel_round <= xi_rtol) & ~inf
        rel = np.where(inf, 0.0, rel)
        resolved = conv & (rel <= xi_rtol) & (np.isfinite(xi) | inf)
    if inf.any():
        note(inf, "chi >= 1 beyond its errors: no decay, xi = inf")
    if unres.any():
        note(unres, lambda i: (f"not resolved: 1 - chi = {float(omc[i]):.3g} +- {float(err[i]):.2g} (float64 "
                               f"rounding), xi > {float(xi_lower[i]):.4g} only"))
    rest = conv & ~resolved & ~noted
    if rest.any():
        note(rest, lambda i: (f"Monte Carlo: xi known to {float(rel[i]):.2g} (relative, one standard error) > "
                              f"xi_rtol = {xi_rtol:g}"))
    if not conv.all():
        note(~conv & ~noted, "not converged")
    nanc = lambda a: np.where(conv, a, np.nan)  # noqa: E731
    xi = np.where(conv & ~unres, xi, np.nan)
    fields = dict(one_minus_chi=nanc(omc), one_minus_chi_err=nanc(err), chi_stderr=nanc(se),
                  xi_rel_err=nanc(rel), xi_lower=nanc(xi_lower), xi_resolved=resolved,
                  xi_note=notes if np.ndim(notes) else str(notes[()]))
    return conv, xi, fields


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
    #: 1 - chi (without cancellation where the architecture allows; module docstring)
    one_minus_chi: np.ndarray | None = None
    #: float64 error bound of ``one_minus_chi``
    one_minus_chi_err: np.ndarray | None = None
    #: Monte Carlo standard error of chi (Algorithm 1; 0 for the deterministic theories)
    chi_stderr: np.ndarray | None = None
    #: relative error of xi from ``one_minus_chi_err`` and ``chi_stderr``
    xi_rel_err: np.ndarray | None = None
    #: lower bound of xi (1 - chi at its error bound, plus two standard errors for Algorithm 1)
    xi_lower: np.ndarray | None = None
    #: converged and ``xi_rel_err <= xi_rtol``
    xi_resolved: np.ndarray | None = None
    #: why ``xi_resolved`` is False ("" where it is True, except at xi = inf): a str, or an object array of str
    xi_note: object = None

    @property
    def shape(self):
        return np.shape(self.chi)

    def to_dict(self, resolution: bool = False) -> dict:
        """The CLI's JSON object: plain floats (or nested lists), NaN and inf as None (null).

        ``resolution``: also the fields of :data:`RESOLUTION_KEYS` (how well xi is resolved)."""
        def conv(a):
            if isinstance(a, str):
                return a
            a = np.asarray(a)
            if a.dtype == bool or a.dtype == object:
                return a.item() if a.ndim == 0 else a.tolist()
            f = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
            return f(a.item()) if a.ndim == 0 else np.vectorize(f, otypes=[object])(a).tolist()
        keys = KEYS + (RESOLUTION_KEYS if resolution else ())
        return {k: conv(getattr(self, k)) for k in keys}


def analyze(arch: str, theta: Theta, sigma_z=1.0, R: float = 1.0, *, tol: float = 1e-10,
            order: int | None = None, n_s: int = _lstm.DEFAULT_NS, n_iters: int = _lstm.DEFAULT_ITERS,
            seed: int = 0, method: str | None = None, xi_rtol: float = XI_RTOL,
            mc_rtol: float = MC_RTOL) -> AnalysisResult:
    r"""Forward and backward mean-field quantities of ``arch`` at ``theta`` (Sections 4.2-4.5).

    Parameters
    ----------
    arch : str
        A registered architecture with a theory (:func:`rnn_mft.arch.names`: Table 1's
        ``vanilla``, ``minimal``, ``gru``, ``peephole_lstm``, ``lstm``, and any registered with a
        ``spec``, :func:`rnn_mft.arch.register`).
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
    xi_rtol : float
        Relative error of xi (float64 rounding of 1 - chi, and Algorithm 1's Monte Carlo error)
        up to which ``xi_resolved`` is True; where float64 alone misses it, ``xi`` is NaN (see
        ``xi_lower``, ``xi_note``).
    mc_rtol : float
        Algorithm 1 only: a point whose Monte Carlo standard error of chi, propagated to xi, is
        above this relative error is not converged (the standard error at its one-sided 95% upper
        confidence bound for n_s samples; with ``n_s = 1``, which gives no error estimate, no
        point is).

    Returns
    -------
    AnalysisResult

    Examples
    --------
    >>> r = analyze("gru", Theta.standard("gru"), sigma_z=1.0)
    >>> bool(r.converged), round(float(r.m1 - r.chi), 8)
    (True, 0.0)
    >>> r = analyze("gru", Theta.critical("gru").replace({"f.mu": 50.0}))   # 1 - chi = 4e-22
    >>> f"{float(r.xi):.4g}", bool(r.xi_resolved)
    ('2.592e+21', True)
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
    a = _arch.get(arch)
    if a.theory not in THEORIES:
        raise ValueError(f"arch {arch!r} has theory={a.theory!r}: no mean-field theory to analyze; the theories "
                         f"are {', '.join(THEORIES)} (give the architecture a spec for the closed-form one)")
    lstm_theory = a.theory == "lstm_two_state"     # the cell-state theories (two-state, Algorithm 1)
    if method is not None and not a.methods:
        with_methods = [n for n in _arch.names() if _arch.get(n).methods]
        raise ValueError(f"method={method!r} applies to arch={' or '.join(map(repr, with_methods))} only")
    for name, v in (("xi_rtol", xi_rtol), ("mc_rtol", mc_rtol)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not v > 0:
            raise ValueError(f"{name}={v!r} must be a number > 0")
    if lstm_theory:
        _lstm._check_sampling(n_s, n_iters)
    if lstm_theory and (method or a.methods[0]) == "two_state":
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
        # no cancellation-free 1 - chi here: 1 - chi with the root's float64 error (TWO_STATE_ROUNDINGS)
        at_one = np.vectorize(lambda m: str(m) == "two-state, C*=1", otypes=[bool])(meth) if np.ndim(meth) \
            else np.asarray(str(meth) == "two-state, C*=1")
        err = np.where(at_one, 2.0 * _gamma(TWO_STATE_ROUNDINGS), 2.0 * _gamma(JOINT_ROUNDINGS) + ROOT_STOP) \
            * np.abs(chi) + _EPS
        conv, xi, res = _resolve(1.0 - chi, err, 0.0, conv, d["c_s"], xi_rtol, mc_rtol)
        for i in _points(~conv):                 # the theory's own reason (info["methods"]) where it has one
            m = str(meth[i] if np.ndim(meth) else meth)
            if m.startswith("not covered"):
                if np.ndim(res["xi_note"]):
                    res["xi_note"][i] = f"not converged: {m}"
                else:
                    res["xi_note"] = f"not converged: {m}"
        b = lambda a: np.where(conv, a, np.nan)  # noqa: E731
        chi, m1, m2 = b(chi), b(m1), b(m2)
        return AnalysisResult(arch, b(d["mu_s"]), b(d["q_s"]), b(d["c_s"]), chi, xi, m1, m2,
                              m2 - m1**2, np.asarray(conv).copy(), nanp, nanp, d["residual"],
                              np.broadcast_to(sz, np.shape(chi)), info, **res)
    if lstm_theory:
        if method not in LSTM_METHODS:
            raise ValueError(f"method={method!r}; allowed for the LSTM: {', '.join(LSTM_METHODS)}")
        fp = _lstm.fixed_point(theta, sz, R=R, n_s=n_s, n_iters=n_iters, seed=seed, tol=tol)
        m1, m2, m2p = fp.m1, fp.m2, fp.m2_printed
        info = {"method": "paper: Algorithm 1 (cell-state sampling) and Appendix A.2.3", "n_s": n_s,
                "n_iters": n_iters, "seed": seed, "iterations": fp.iterations}
        chi = np.asarray(fp.chi, float)
        omc = 1.0 - chi
        # chi: sample means over n_s terms and Mehler series of the output gate (<= 2 * 320 + 600)
        err = _gamma(n_s + 1240) * (np.abs(chi) + 1.0)
        se = np.asarray(fp.chi_stderr, float)
    else:
        # the closed-form theory (meanfield), solved per group of grid points (schedule)
        fp, m1, m2, m2p, nq = _schedule.solve_grid(theta, sz, R, tol, order)
        info = {"method": "quadrature + Mehler series", "order": nq, "iterations": fp.iterations}
        omc, err, se = fp.one_minus_chi, fp.one_minus_chi_err, 0.0
    shape = np.shape(fp.chi)
    conv = np.broadcast_to(fp.converged, shape)
    # a NaN (or inf) anywhere in the outputs is no convergence (e.g. m2 overflowing at sigma2 = 1e300)
    with np.errstate(all="ignore"):
        for a in (fp.mu_s, fp.q_s, fp.c_s, fp.chi, m1, m2):
            conv = conv & np.isfinite(np.broadcast_to(a, shape))
    conv, xi, res = _resolve(omc, err, np.where(conv, se, 0.0) if np.ndim(se) else se, conv, fp.c_s, xi_rtol,
                             mc_rtol, n_s if lstm_theory else None)
    b = lambda a: np.where(conv, np.broadcast_to(a, shape), np.nan)  # noqa: E731
    m1, m2, m2p = b(m1), b(m2), b(m2p)
    return AnalysisResult(arch, b(fp.mu_s), b(fp.q_s), b(fp.c_s), b(fp.chi), xi,
                          m1, m2, m2 - m1**2, conv.copy(), m2p, m2p - m1**2, np.broadcast_to(fp.residual, shape),
                          np.broadcast_to(sz, shape), info, **res)
