r""":func:`correlation_decay`: the ground truth for the LSTM's :math:`\chi_{C^*}` at
:math:`\Sigma_z < 1`, measured on two copies of one untied finite-width LSTM (shared weights,
inputs of correlation :math:`\Sigma_z`). The windows and the estimator of the rate are those of
:func:`rnn_mft.sim.tangent_decay` (:mod:`rnn_mft.sim.lstm_tangent`, whose docstring gives the
method); both are re-exported from :mod:`rnn_mft.sim` and :mod:`rnn_mft.sim.lstm_tangent`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..theory.theta import Theta
from .lstm_windows import _GATES, _check, _pos_int_or_none, _summary, auto_windows, crude_cell_law
from .networks import _torch_threads

__all__ = ["CorrelationDecay", "correlation_decay"]


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
