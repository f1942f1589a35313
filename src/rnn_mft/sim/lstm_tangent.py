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
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..theory.meanfield import gate_moment
from ..theory.quadrature import expect
from ..theory.theta import Theta
from .networks import _torch_threads

__all__ = ["TangentDecay", "tangent_decay", "auto_windows", "CorrelationDecay", "correlation_decay"]

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


@dataclass(frozen=True)
class CorrelationDecay:
    """Result of :func:`correlation_decay` (first-order rate of the cross-copy correlation, per step)."""

    chi: float             #: chi_{C*}: per-step decay of the response of S = <h_a, h_b>/N
    chi_se: float          #: standard error over seeds (delta method)
    xi: float              #: -1/log(chi)
    xi_lo: float           #: xi at log(chi) - 2 SE
    xi_hi: float           #: xi at log(chi) + 2 SE
    chi_seeds: np.ndarray  #: per-seed estimates
    sigma_z: float
    c_star: float          #: empirical C* (pooled moments of h, as simulate_pair) at the window starts
    N: int
    n_seeds: int
    t_burn: int
    t_align: int
    t_window: int
    n_windows: int
    seed: int
    R: float = 1.0
    response: np.ndarray = field(default=None, repr=False)  #: (t_align + t_window + 1, n_seeds) mean response / response at 0
    wall_s: float = math.nan

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("chi", "chi_se", "xi", "xi_lo", "xi_hi", "sigma_z", "c_star", "N",
                                           "n_seeds", "t_burn", "t_align", "t_window", "n_windows", "seed", "R",
                                           "wall_s")}
        d = {k: (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (int, np.integer))
                 else v) for k, v in d.items()}
        d["chi_seeds"] = [float(x) for x in self.chi_seeds]
        return d


def _gram(cols: list[torch.Tensor]) -> torch.Tensor:
    """(B, m, m) Gram matrix of m columns of shape (B, n), by elementwise sums (reproducible)."""
    m = len(cols)
    G = [[None] * m for _ in range(m)]
    for i in range(m):
        for j in range(i + 1):
            G[i][j] = G[j][i] = (cols[i] * cols[j]).sum(1)
    return torch.stack([torch.stack(row, -1) for row in G], -2)


def _chol_rows(G: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Rows with covariance G (B, m, m) from i.i.d. normals g (B, N, m): returns (B, N, m), via a
    pivot-safe Cholesky (semi-definite G allowed)."""
    m = G.shape[-1]
    L = torch.zeros_like(G)
    for j in range(m):
        d = G[:, j, j] - (L[:, j, :j] ** 2).sum(-1)
        ljj = torch.sqrt(d.clamp_min(0))
        L[:, j, j] = ljj
        for i in range(j + 1, m):
            num = G[:, i, j] - (L[:, i, :j] * L[:, j, :j]).sum(-1)
            L[:, i, j] = torch.where(ljj > 1e-300, num / torch.where(ljj > 1e-300, ljj, torch.ones_like(ljj)),
                                     torch.zeros_like(num))
    # explicit sums, not a BLAS matmul: bitwise reproducible whatever the memory alignment
    return torch.stack([sum(g[..., j] * L[:, i, j][:, None] for j in range(i + 1)) for i in range(m)], 2)


class _Pair:
    """Two copies (a, b) of B untied LSTMs with shared weights, inputs of correlation sigma_z, and a
    tangent (dh_b, dc_b) of copy b. Per gate the rows of W applied to [h_a, h_b, dh_b] are drawn from
    their 3 x 3 Gram matrix, the rows of U applied to [z_a, z_b] from the 2 x 2 input Gram matrix
    (inputs drawn explicitly), the bias is common: exactly the law of explicit matrices."""

    def __init__(self, theta, N, B, seed, R, n_in, sigma_z):
        self.p = {k: tuple(float(getattr(theta[k], f)) for f in ("sigma2", "nu2", "rho2", "mu")) for k in _GATES}
        self.N, self.B, self.R, self.n_in, self.sz = N, B, float(R), n_in, float(sigma_z)
        self.rng = np.random.default_rng(int(seed))
        z = torch.zeros(B, N, dtype=torch.float64)
        self.ha, self.ca, self.hb, self.cb = z, z.clone(), z.clone(), z.clone()

    def randn(self, *shape):
        return torch.from_numpy(self.rng.standard_normal(shape))

    def step(self, dh=None, dc=None):
        B, N = self.B, self.N
        za = self.randn(B, self.n_in)
        zb = self.sz * za + math.sqrt(max(1 - self.sz ** 2, 0.0)) * self.randn(B, self.n_in)
        Z = torch.stack([za, zb], 2) * math.sqrt(self.R)
        Gz = _gram([Z[..., 0], Z[..., 1]]) / self.n_in              # (B, 2, 2)
        cols = [self.ha, self.hb] + ([dh] if dh is not None else [])
        Gx = _gram(cols) / N                                        # (B, m, m)
        m = len(cols)
        u, du = {}, {}
        for k in _GATES:
            s2, nu2, rho2, mu = self.p[k]
            y = torch.full((B, N, 2), mu, dtype=torch.float64)
            if rho2 > 0:
                y = y + math.sqrt(rho2) * self.randn(B, N, 1)
            if nu2 > 0:
                y = y + _chol_rows(nu2 * Gz, self.randn(B, N, 2))
            d = None
            if s2 > 0:
                w = _chol_rows(s2 * Gx, self.randn(B, N, m))
                y = y + w[..., :2]
                d = w[..., 2] if dh is not None else None
            u[k], du[k] = y, d
        si, sf, so = torch.sigmoid(u["i"]), torch.sigmoid(u["f"]), torch.sigmoid(u["o"])
        tr = torch.tanh(u["r"])
        c_old_b = self.cb
        c = sf * torch.stack([self.ca, self.cb], 2) + si * tr
        tc = torch.tanh(c)
        h = so * tc
        out = None
        if dh is not None:
            b = (slice(None), slice(None), 1)
            dc_new = sf[b] * dc
            if du["f"] is not None:
                dc_new = dc_new + sf[b] * (1 - sf[b]) * c_old_b * du["f"]
            if du["i"] is not None:
                dc_new = dc_new + si[b] * (1 - si[b]) * tr[b] * du["i"]
            if du["r"] is not None:
                dc_new = dc_new + si[b] * (1 - tr[b] ** 2) * du["r"]
            dh_new = so[b] * (1 - tc[b] ** 2) * dc_new
            if du["o"] is not None:
                dh_new = dh_new + so[b] * (1 - so[b]) * tc[b] * du["o"]
            out = (dh_new, dc_new)
        self.ca, self.cb = c[..., 0], c[..., 1]
        self.ha, self.hb = h[..., 0], h[..., 1]
        return out


def _residual(y: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
    """y minus its least-squares fit (per seed) on the features: removes every first-order change
    of copy b's own statistics that the features span."""
    p = len(feats)
    # normal equations with elementwise sums (reproducible) and a small numpy solve per seed
    G = np.array([[[float(x) for x in (feats[i] * feats[j]).sum(1)] for j in range(p)] for i in range(p)])
    r = np.array([[float(x) for x in (feats[i] * y).sum(1)] for i in range(p)])      # (p, B)
    coef = torch.from_numpy(np.stack([np.linalg.lstsq(G[:, :, b], r[:, b], rcond=None)[0]
                                      for b in range(y.shape[0])], 0))              # (B, p)
    return y - sum(coef[:, i][:, None] * feats[i] for i in range(p))


def correlation_decay(theta: Theta, N: int, sigma_z: float, *, n_seeds: int = 6, seed: int = 0,
                      t_burn: int | None = None, t_align: int | None = None, t_window: int | None = None,
                      n_windows: int | None = None, R: float = 1.0, n_in: int | None = None,
                      threads: int | None = 1) -> CorrelationDecay:
    r""":math:`\chi_{C^*}` for :math:`\Sigma_z < 1`: first-order decay of the cross-copy correlation.

    Two copies ``a``, ``b`` of one untied network (shared weights at every step, inputs of
    correlation ``sigma_z``) run to their stationary joint law (``t_burn``). In each of
    ``n_windows`` windows copy ``b`` is perturbed by the tangent :math:`(dh_b, dc_b) =
    (h_a, c_a)` minus their least-squares fit on features of copy ``b`` alone
    (:math:`1, h_b, c_b, \tanh c_b, h_b^2, c_b^2, h_b c_b`): this moves b toward a (first-order
    change of :math:`S = \langle h_a, h_b\rangle/N` of order 1) while leaving copy b's own
    statistics unchanged to first order, so the single-copy (Q) modes are not excited. The
    response :math:`\delta S^t = \langle h_a^t, dh_b^t\rangle/N` is carried exactly and
    averaged, signed, over windows (its O(1/sqrt(N)) fluctuation has mean zero, so averaging
    the curves, not their logs, removes it); ``chi`` is :math:`\exp` of the slope of
    :math:`\log` of the mean response over steps ``t_align .. t_align + t_window``, per seed,
    then averaged over seeds (SE over seeds). Defaults as :func:`auto_windows`, with
    ``t_window`` at most 3 tau_c.
    """
    _check(theta, N, n_seeds, R, name="correlation_decay")
    try:
        sz = float(sigma_z)
    except (TypeError, ValueError):
        raise ValueError(f"sigma_z={sigma_z!r} must be a number in [0, 1)") from None
    if not (0.0 <= sz < 1.0):
        raise ValueError(f"sigma_z={sigma_z!r} must be in [0, 1) (sigma_z = 1: use tangent_decay)")
    _pos_int_or_none("seed", seed, lo=0)
    n_in = N if n_in is None else _pos_int_or_none("n_in", n_in)
    auto = auto_windows(theta, N, R)
    t_burn = auto["t_burn"] if t_burn is None else _pos_int_or_none("t_burn", t_burn, lo=0)
    t_align = auto["t_align"] if t_align is None else _pos_int_or_none("t_align", t_align, lo=0)
    t_window = auto["t_window"] if t_window is None else _pos_int_or_none("t_window", t_window, lo=2)
    n_windows = max(auto["n_windows"], 8) if n_windows is None else _pos_int_or_none("n_windows", n_windows)
    B, T = int(n_seeds), t_align + t_window
    t0 = time.perf_counter()
    with torch.no_grad(), _torch_threads(threads):
        net = _Pair(theta, int(N), B, int(seed), float(R), int(n_in), sz)
        m0, v0 = crude_cell_law(theta, R)
        net.ca = m0 + math.sqrt(v0) * net.randn(B, N)
        net.cb = sz * (net.ca - m0) + m0 + math.sqrt(max(1 - sz * sz, 0.0) * v0) * net.randn(B, N)
        for _ in range(t_burn):
            net.step()
        resp = np.zeros((n_windows, T + 1, B))
        cstar = []
        for w in range(n_windows):
            hb, cb = net.hb, net.cb
            feats = [torch.ones_like(hb), hb, cb, torch.tanh(cb), hb * hb, cb * cb, hb * cb]
            dh, dc = _residual(net.ha, feats), _residual(net.ca, feats)
            mu = 0.5 * (net.ha.mean(1) + net.hb.mean(1))
            q = 0.5 * ((net.ha ** 2).mean(1) + (net.hb ** 2).mean(1))
            cstar.append(float((((net.ha * net.hb).mean(1) - mu * mu) / (q - mu * mu)).mean()))
            r0 = (net.ha * dh).mean(1)
            resp[w, 0] = 1.0
            for t in range(1, T + 1):
                dh, dc = net.step(dh, dc)
                resp[w, t] = ((net.ha * dh).mean(1) / r0).numpy()
    mean_resp = resp.mean(0)                                   # (T + 1, B)
    ts = np.arange(t_align, T + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.log(mean_resp[t_align:])
    if not np.all(np.isfinite(y)):
        raise RuntimeError("mean response reached <= 0: the fluctuation part dominates; use more windows, "
                           "a larger N or a shorter t_window")
    slopes = np.polyfit(ts, y, 1)[0]
    chi, chi_se, xi, lo, hi = _summary(slopes)
    return CorrelationDecay(chi=chi, chi_se=chi_se, xi=xi, xi_lo=lo, xi_hi=hi, chi_seeds=np.exp(slopes),
                            sigma_z=sz, c_star=float(np.mean(cstar)), N=int(N), n_seeds=B, t_burn=int(t_burn),
                            t_align=int(t_align), t_window=int(t_window), n_windows=int(n_windows),
                            seed=int(seed), R=float(R), response=mean_resp, wall_s=time.perf_counter() - t0)
