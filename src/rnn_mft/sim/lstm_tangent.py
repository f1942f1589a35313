r"""Ground truth for the LSTM's time scales: the exact tangent of untied finite-width LSTMs.

:func:`tangent_decay` runs ``n_seeds`` untied LSTMs of width ``N`` (Table 1; every ``W_k``,
``U_k``, ``b_k`` drawn afresh at every step, inputs :math:`z \sim \mathcal{N}(0, R)` per
coordinate) together with the exact linearization of the joint state :math:`(h, c)` for
identical inputs (:math:`\Sigma_z = 1`):

.. math::
    du_k &= W_k\, dh^{t-1}\quad(\text{the same } W_k \text{ as in } u_k),\\
    dc^t &= \sigma(u_f) dc^{t-1} + \sigma'(u_f) c^{t-1} du_f + \sigma'(u_i)\tanh(u_r) du_i
            + \sigma(u_i)\tanh'(u_r) du_r,\\
    dh^t &= \sigma'(u_o)\tanh(c^t) du_o + \sigma(u_o)\tanh'(c^t) dc^t .

The pairs :math:`(W_k h, W_k dh)` are drawn jointly and exactly from the Gram matrix of
``[h, dh]`` (``rnn_mft.sim.networks.FreshGaussian``), O(N) per step. ``chi`` is the
per-step growth factor of :math:`|dh|^2 + |dc|^2` in the large-N limit, and
:math:`\xi = -1/\log\chi`.

Method (why windows). In an untied network every unit's gates are fresh at each step, so each
unit's ``dc`` is (nearly, when the recurrent variances are small) a product of i.i.d. factors
:math:`F = \sigma(u_f)`. The large-N rate of :math:`\tfrac1N\sum_i dc_i^2` is the growth of the
*mean* of such products, :math:`E[F^2]` per step; at finite N the empirical mean is carried by
ever fewer lucky units and, over long times, decays at the *typical* rate
:math:`\exp E\log F^2` instead. Renormalizing the whole tangent each step does not help (it is
a property of the population average). The effective number of units carrying the tangent,
:math:`N_{\rm eff} = (\sum_i w_i)^2/\sum_i w_i^2` with :math:`w_i = dh_i^2 + dc_i^2`, shrinks
by about :math:`\kappa = E[F^4]/E[F^2]^2` per step. So the forward state runs for ``t_burn``
steps to stationarity, then the tangent is restarted ``n_windows`` times from a fresh random
direction (i.i.d. N(0, 1) entries in ``dh`` and ``dc``) on the running state; in each window the
first ``t_align`` steps let the direction align (not measured) and the next ``t_window`` steps
are measured. Windows are kept short enough that :math:`N_{\rm eff}` stays large
(``n_eff_min`` is reported); the result is checked to be N-independent in
``tools/lstm_ground_truth.py``.

Estimates: per seed, ``log(mean over windows of the growth factor of |dh|^2 + |dc|^2 over the
measured steps) / t_window``: the *mean* growth factor, not the mean of its log. For a product
of fresh factors, :math:`E[\sum_i dc_i^2 F_i^2 | \text{past}] = E[F^2]\sum_i dc_i^2` at any N, so
the mean growth factor is unbiased for the large-N rate even where the per-window log is biased
toward the typical rate (``chi_typical``, exp of the mean log, is kept as a diagnostic); short
windows keep its variance (~ kappa^t / N_eff) small. ``chi`` is exp of the mean over seeds,
``chi_se`` its standard error over seeds (delta method), ``xi_lo, xi_hi`` the image of
:math:`\log\chi \pm 2\,\mathrm{SE}` (inf where that is >= 0). ``chi_dh``, ``chi_dc`` (the same
on one part of the tangent) and ``chi_early``, ``chi_late`` (first and second half of each
measured window) check that the direction has aligned.

Measured (``data/lstm_ground_truth.json``): on the C.4 line at mu_f = 4 xi = 17.908 +- 0.016
(N = 3000), 17.877 +- 0.018 (10000), 17.879 +- 0.015 (30000), 2 SE; a single 400-step window at
mu_f = 3 (N = 30000) drifts from xi = 7.236 (first half) to 7.206 (second half) toward the
typical 6.66, while the windowed estimate is 7.231 +- 0.002 = -1/log E[F^2] (7.2317).

:func:`correlation_decay` measures :math:`\chi_{C^*}` for :math:`\Sigma_z < 1` with two copies.
It lives in ``rnn_mft.sim.lstm_correlation``, the window sizing (``auto_windows``) and the
rate summaries shared by both in ``rnn_mft.sim.lstm_windows``; all are importable from here.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..theory.theta import Theta
from .lstm_correlation import CorrelationDecay, correlation_decay
from .lstm_windows import _GATES, _check, _lme, _pos_int_or_none, _summary, auto_windows, crude_cell_law
from .networks import _torch_threads

__all__ = ["TangentDecay", "tangent_decay", "auto_windows", "CorrelationDecay", "correlation_decay"]


@dataclass(frozen=True)
class TangentDecay:
    """Result of :func:`tangent_decay` (rates are per step, of squared norms)."""

    chi: float            #: per-step growth of |dh|^2 + |dc|^2: exp(mean over seeds of log(mean growth factor over windows)/t_window)
    chi_se: float         #: its standard error over seeds (delta method; NaN for one seed)
    xi: float             #: -1/log(chi)
    xi_lo: float          #: xi at log(chi) - 2 SE
    xi_hi: float          #: xi at log(chi) + 2 SE (inf if that is >= 0; chi > 1: the tangent grows, xi = inf)
    chi_seeds: np.ndarray  #: per-seed chi (shape (n_seeds,))
    N: int
    n_seeds: int
    t_burn: int
    t_align: int
    t_window: int
    n_windows: int
    seed: int
    R: float = 1.0
    chi_dh: float = math.nan   #: same rate measured on |dh|^2 alone
    chi_dc: float = math.nan   #: same rate measured on |dc|^2 alone
    chi_early: float = math.nan  #: rate over the first half of each measured window
    chi_late: float = math.nan   #: rate over the second half
    chi_typical: float = math.nan  #: exp(mean of per-step log growth): the finite-N *typical* rate (diagnostic)
    n_eff_min: float = math.nan  #: smallest N_eff = (sum w)^2 / sum w^2 met while measuring
    log_rates: np.ndarray = field(default=None, repr=False)  #: (n_windows, n_seeds) per-step log growth
    wall_s: float = math.nan

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("chi", "chi_se", "xi", "xi_lo", "xi_hi", "N", "n_seeds", "t_burn",
                                           "t_align", "t_window", "n_windows", "seed", "R", "chi_dh", "chi_dc",
                                           "chi_early", "chi_late", "chi_typical", "n_eff_min", "wall_s")}
        d = {k: (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (int, np.integer))
                 else v) for k, v in d.items()}
        d["chi_seeds"] = [float(x) for x in self.chi_seeds]
        return d


class _Net:
    """Untied LSTM of B seeds, width N: forward state and (optionally) one tangent.

    Every gate's pre-activation is a sum of independent Gaussians given the state: the bias
    (variance rho2), the input term U z (variance nu2 |z|^2 / n_in, with |z|^2 ~ R chi^2(n_in)
    drawn exactly) and the recurrent term; with the tangent, the pair (W h, W dh) has row
    covariance (sigma2/N) Gram([h, dh]). So (u_k - mu_k, du_k) = (a g1, b g1 + d g2) with
    a^2 = rho2 + nu2 |z|^2/n_in + sigma2 |h|^2/N, a b = sigma2 h.dh/N, b^2 + d^2 = sigma2 |dh|^2/N:
    exactly the law of the explicit matrices, two normals per unit and gate (one without tangent).
    Random numbers come from numpy's PCG64 (faster than torch's here); arithmetic in float64.
    """

    def __init__(self, theta: Theta, N: int, B: int, seed: int, R: float, n_in: int):
        self.p = {k: tuple(float(getattr(theta[k], f)) for f in ("sigma2", "nu2", "rho2", "mu")) for k in _GATES}
        self.N, self.B, self.R, self.n_in = N, B, float(R), n_in
        self.rng = np.random.default_rng(int(seed))
        self.h = torch.zeros(B, N, dtype=torch.float64)
        self.c = torch.zeros(B, N, dtype=torch.float64)

    def init_c(self, mean: float, var: float):
        """Start the cell state at N(mean, var) per unit (a crude stationary law, to shorten burn-in)."""
        self.c = mean + math.sqrt(max(var, 0.0)) * self.randn(self.B, self.N)

    def randn(self, *shape):
        return torch.from_numpy(self.rng.standard_normal(shape))

    def _var_in(self):
        """Per seed, per gate: variance of bias + input term."""
        zz = self.R * torch.from_numpy(self.rng.chisquare(self.n_in, size=self.B))
        return {k: self.p[k][2] + self.p[k][1] * zz / self.n_in for k in _GATES}

    def forward(self):
        """One step of the forward state only."""
        vin = self._var_in()
        hh = (self.h * self.h).sum(1) / self.N
        u = {k: self.p[k][3] + torch.sqrt(vin[k] + self.p[k][0] * hh)[:, None] * self.randn(self.B, self.N)
             for k in _GATES}
        self.c = torch.sigmoid(u["f"]) * self.c + torch.sigmoid(u["i"]) * torch.tanh(u["r"])
        self.h = torch.sigmoid(u["o"]) * torch.tanh(self.c)

    def step(self, dh, dc):
        """One step of state and tangent (dh, dc); returns the new tangent."""
        vin = self._var_in()
        hh = (self.h * self.h).sum(1) / self.N
        hd = (self.h * dh).sum(1) / self.N
        dd = (dh * dh).sum(1) / self.N
        u, du = {}, {}
        for k in _GATES:
            s2, _, _, mu = self.p[k]
            a = torch.sqrt(vin[k] + s2 * hh)
            g = self.randn(self.B, self.N)
            u[k] = mu + a[:, None] * g
            if s2 > 0:
                b = torch.where(a > 0, s2 * hd / torch.where(a > 0, a, torch.ones_like(a)), torch.zeros_like(a))
                d = torch.sqrt((s2 * dd - b * b).clamp_min(0))
                du[k] = b[:, None] * g + d[:, None] * self.randn(self.B, self.N)
            else:
                du[k] = None
        si, sf, so = torch.sigmoid(u["i"]), torch.sigmoid(u["f"]), torch.sigmoid(u["o"])
        tr = torch.tanh(u["r"])
        dc_new = sf * dc
        if du["f"] is not None:
            dc_new = dc_new + sf * (1 - sf) * self.c * du["f"]
        if du["i"] is not None:
            dc_new = dc_new + si * (1 - si) * tr * du["i"]
        if du["r"] is not None:
            dc_new = dc_new + si * (1 - tr * tr) * du["r"]
        self.c = sf * self.c + si * tr
        tc = torch.tanh(self.c)
        self.h = so * tc
        dh_new = so * (1 - tc * tc) * dc_new
        if du["o"] is not None:
            dh_new = dh_new + so * (1 - so) * tc * du["o"]
        return dh_new, dc_new


def tangent_decay(theta: Theta, N: int, *, n_seeds: int = 6, seed: int = 0, t_burn: int | None = None,
                  t_align: int | None = None, t_window: int | None = None, n_windows: int | None = None,
                  R: float = 1.0, n_in: int | None = None, threads: int | None = 1) -> TangentDecay:
    r"""Asymptotic per-step decay :math:`\chi` of the exact (h, c) tangent of untied LSTMs, :math:`\Sigma_z = 1`.

    Parameters
    ----------
    theta : Theta
        Scalar hyperparameters for ``arch="lstm"``.
    N : int
        Width; inputs have ``n_in`` (default ``N``) coordinates of variance ``R``.
    n_seeds, seed : int
        Independent networks (one batch) and the generator's seed; results are deterministic.
    t_burn, t_align, t_window, n_windows : int, optional
        Forward burn-in, unmeasured alignment steps per window, measured steps per window, and
        number of tangent restarts; ``None`` takes :func:`auto_windows`.
    threads : int or None
        torch intra-op threads during the run (default 1; None leaves the setting alone).

    Returns
    -------
    TangentDecay
    """
    _check(theta, N, n_seeds, R)
    _pos_int_or_none("seed", seed, lo=0)
    n_in = N if n_in is None else _pos_int_or_none("n_in", n_in)
    auto = auto_windows(theta, N, R)
    t_burn = auto["t_burn"] if t_burn is None else _pos_int_or_none("t_burn", t_burn, lo=0)
    t_align = auto["t_align"] if t_align is None else _pos_int_or_none("t_align", t_align, lo=0)
    t_window = auto["t_window"] if t_window is None else _pos_int_or_none("t_window", t_window, lo=2)
    n_windows = auto["n_windows"] if n_windows is None else _pos_int_or_none("n_windows", n_windows)
    B = int(n_seeds)
    t0 = time.perf_counter()
    half = t_window // 2
    with torch.no_grad(), _torch_threads(threads):
        net = _Net(theta, int(N), B, int(seed), float(R), int(n_in))
        net.init_c(*crude_cell_law(theta, R))
        for _ in range(t_burn):
            net.forward()
        rates = np.zeros((n_windows, B))
        r_dh = np.zeros((n_windows, B))
        r_dc = np.zeros((n_windows, B))
        r_early = np.zeros((n_windows, B))
        neff_min = math.inf
        for w in range(n_windows):
            dh, dc = net.randn(B, N), net.randn(B, N)
            s = torch.sqrt(N / ((dh * dh).sum(1) + (dc * dc).sum(1)))[:, None]
            dh, dc = dh * s, dc * s
            L = torch.zeros(B, dtype=torch.float64)    # log of the normalizations so far
            marks = {0: (L.clone(), torch.log((dh * dh).sum(1)), torch.log((dc * dc).sum(1)))}
            for t in range(1, t_align + t_window + 1):
                dh, dc = net.step(dh, dc)
                a2, c2 = (dh * dh).sum(1), (dc * dc).sum(1)
                n2 = a2 + c2
                if t > t_align:
                    wgt = dh * dh + dc * dc
                    neff_min = min(neff_min, float((n2 * n2 / (wgt * wgt).sum(1)).min()))
                if t in (t_align, t_align + half, t_align + t_window):
                    marks[t] = (L + torch.log(n2 / N), L + torch.log(a2), L + torch.log(c2))
                L = L + torch.log(n2 / N)
                s = torch.sqrt(N / n2)[:, None]
                dh, dc = dh * s, dc * s
            a, m_, e = marks[t_align], marks[t_align + half], marks[t_align + t_window]
            rates[w] = ((e[0] - a[0]) / t_window).numpy()
            r_dh[w] = ((e[1] - a[1]) / t_window).numpy()
            r_dc[w] = ((e[2] - a[2]) / t_window).numpy()
            r_early[w] = ((m_[0] - a[0]) / half).numpy()
    late = (rates * t_window - r_early * half) / (t_window - half)
    per_seed = _lme(rates * t_window) / t_window
    chi, chi_se, xi, lo, hi = _summary(per_seed)

    def rate(r, t):
        return math.exp(float(np.mean(_lme(r * t) / t)))

    return TangentDecay(chi=chi, chi_se=chi_se, xi=xi, xi_lo=lo, xi_hi=hi, chi_seeds=np.exp(per_seed), N=int(N),
                        n_seeds=B, t_burn=int(t_burn), t_align=int(t_align), t_window=int(t_window),
                        n_windows=int(n_windows), seed=int(seed), R=float(R),
                        chi_dh=rate(r_dh, t_window), chi_dc=rate(r_dc, t_window),
                        chi_early=rate(r_early, half), chi_late=rate(late, t_window - half),
                        chi_typical=math.exp(float(rates.mean())),
                        n_eff_min=float(neff_min), log_rates=rates, wall_s=time.perf_counter() - t0)
