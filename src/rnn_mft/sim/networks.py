r"""Two copies of a random network with identical weights, fed correlated inputs (Section 4.2).

``simulate_pair`` draws ``n_seeds`` independent networks of width ``N`` from
:math:`\Theta` (:math:`W_k \sim \mathcal{N}(0, \sigma_k^2/N)`, :math:`U_k \sim
\mathcal{N}(0, \nu_k^2/N_{in})`, :math:`b_k \sim \mathcal{N}(\mu_k, \rho_k^2)`), feeds copy ``a``
inputs :math:`z_a^t \sim \mathcal{N}(0, R)` and copy ``b`` inputs
:math:`z_b^t = \Sigma_z^t z_a^t + \sqrt{1 - (\Sigma_z^t)^2}\,\xi^t`, and records the empirical
moments (2a)-(2c) over the ``N`` units at every step:

.. math::
    \hat\mu_s = \tfrac{1}{2N}\sum_{i,c} s_{ic},\quad
    \hat Q_s = \tfrac{1}{2N}\sum_{i,c} s_{ic}^2,\quad
    \hat C_s = \frac{\tfrac1N\sum_i s_{ia}s_{ib} - \hat\mu_s^2}{\hat Q_s - \hat\mu_s^2}.

With ``tied=False`` every weight matrix and bias is drawn afresh at every step (the *untied*
assumption of Section 4.1, under which the theory is exact as N grows); with ``tied=True`` they
are drawn once, as in a real network. Per-unit moments have standard errors of order
:math:`1/\sqrt{N}` per seed, so averages over ``n_seeds`` seeds agree with the theory to
:math:`O(1/\sqrt{N n_{seeds}})`.

The step of every architecture is the registry's reference update (:mod:`rnn_mft.arch`) run on
torch tensors (:func:`step_fn`; :data:`STEPS` holds one per registered architecture):
``step(params, state, Z)`` gets the
weights ``{gate: (W, U, b)}`` with ``W`` of shape (B, N, N), ``U`` (B, N, N_in), ``b`` (B, N, 1),
a state whose tensors have shape (B, N, 2) (last axis: the two copies) and inputs ``Z`` of shape
(B, N_in, 2); it returns the new state. ``OBSERVE[arch](state)`` gives the tensor whose moments
the theory describes (``s`` of Table 1).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Callable

import numpy as np
import torch

from .. import arch as _arch
from ..arch import Ops
from ..theory.meanfield import check_sigma_z
from ..theory.theta import ARCHS, Theta

__all__ = ["SimResult", "simulate_pair", "draw_params", "FreshGaussian", "STEPS", "OBSERVE", "INIT_STATE",
           "step_fn", "TORCH"]


#: torch operators for the registry's updates (the float64 reference runs the same ``update``
#: with numpy operators: :func:`rnn_mft.theory.reference_step`)
TORCH = Ops(torch.sigmoid, torch.tanh, torch.zeros_like)


def step_fn(arch: str) -> Callable:
    """``step(params, state, Z)`` of a registered architecture: its ``update`` (eq. (1c),
    :mod:`rnn_mft.arch`) on batched torch tensors, with ``u_k = W_k x + U_k Z + b_k`` (eq. (1a))."""
    update = _arch.get(arch).update

    def step(P, S, Z):
        def pre(g, x):
            W, U, b = P[g]
            return W @ x + U @ Z + b
        return update(pre, S, TORCH)
    step.__name__ = f"{arch}_step"
    step.__doc__ = f"Table 1, {arch}: the registry's update (rnn_mft.arch.get({arch!r}).update) on torch tensors."
    return step


#: arch -> step(params, state, Z) -> state
STEPS: Mapping[str, Callable] = _arch.Live(step_fn)
#: arch -> state -> tensor (B, N, 2) whose moments are (mu_s, Q_s, C_s)
OBSERVE: Mapping[str, Callable] = _arch.Live(lambda arch: _arch.get(arch).observe)
#: arch -> (s0 of shape (B, N, 2)) -> initial state (e.g. a tuple (h, c) for the LSTM)
INIT_STATE: Mapping[str, Callable] = _arch.Live(
    lambda arch: (lambda s0, _init=_arch.get(arch).init_state: _init(s0, TORCH)))


@dataclass(frozen=True)
class SimResult:
    """Empirical moments per step and seed: arrays of shape (T + 1, n_seeds)."""

    mu_s: np.ndarray
    q_s: np.ndarray
    c_s: np.ndarray
    N: int
    tied: bool
    seed: int

    def mean(self, field: str) -> np.ndarray:
        """Average over seeds of ``mu_s``, ``q_s`` or ``c_s`` (shape (T + 1,))."""
        return getattr(self, field).mean(axis=1)

    def sem(self, field: str) -> np.ndarray:
        """Standard error of that average across seeds (NaN for a single seed)."""
        a = getattr(self, field)
        if a.shape[1] < 2:
            return np.full(a.shape[0], np.nan)
        return a.std(axis=1, ddof=1) / np.sqrt(a.shape[1])


class FreshGaussian:
    r"""A Gaussian matrix with i.i.d. :math:`\mathcal{N}(0, v)` entries, drawn lazily on use.

    For a matrix drawn afresh and independently of ``X`` (the untied setting), ``W @ X`` with
    ``X`` of shape (B, n, 2) is exactly Gaussian: its rows are i.i.d. with covariance
    :math:`v X^\top X` (2 x 2). Sampling that directly costs O(N) instead of O(N^2) and has
    the same distribution as drawing ``W``. It may be used once (a second product would have to
    reuse the same ``W``, which this shortcut cannot do).
    """

    def __init__(self, B: int, n_out: int, v: float, gen: torch.Generator, dtype):
        self.B, self.n_out, self.v, self.gen, self.dtype, self.used = B, n_out, v, gen, dtype, False

    def __matmul__(self, X: torch.Tensor) -> torch.Tensor:
        if self.used:
            raise RuntimeError("FreshGaussian operator used twice; use untied_method='matrix'")
        self.used = True
        xa, xb = X[..., 0], X[..., 1]                           # (B, n) each
        a = self.v * (xa * xa).sum(1)                           # row covariance v X^T X (2 x 2)
        c = self.v * (xa * xb).sum(1)
        d = self.v * (xb * xb).sum(1)
        l11 = torch.sqrt(a.clamp_min(0))
        l21 = torch.where(l11 > 0, c / torch.where(l11 > 0, l11, torch.ones_like(l11)), torch.zeros_like(c))
        l22 = torch.sqrt((d - l21 * l21).clamp_min(0))
        g = torch.randn(self.B, self.n_out, 2, generator=self.gen, dtype=self.dtype)
        ya = g[..., 0] * l11[:, None]
        yb = g[..., 0] * l21[:, None] + g[..., 1] * l22[:, None]
        return torch.stack([ya, yb], dim=2)


def draw_params(theta: Theta, N: int, n_in: int, B: int, gen: torch.Generator, dtype=torch.float64,
                lazy: bool = False):
    """Weights ``{gate: (W, U, b)}`` for ``B`` networks, drawn as Theta says (Section 4.1).

    With ``lazy=True`` the matrices are :class:`FreshGaussian` operators (untied networks only).
    """
    P = {}
    for k in ARCHS[theta.arch]:
        p = theta[k]
        if lazy:
            W = FreshGaussian(B, N, float(p.sigma2) / N, gen, dtype)
            U = FreshGaussian(B, N, float(p.nu2) / n_in, gen, dtype)
        else:
            W = torch.randn(B, N, N, generator=gen, dtype=dtype) * float(np.sqrt(p.sigma2 / N))
            U = torch.randn(B, N, n_in, generator=gen, dtype=dtype) * float(np.sqrt(p.nu2 / n_in))
        b = float(p.mu) + torch.randn(B, N, 1, generator=gen, dtype=dtype) * float(np.sqrt(p.rho2))
        P[k] = (W, U, b)
    return P


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Run with ``n`` intra-op threads (None: unchanged), restoring the caller's setting."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _moments(S: torch.Tensor):
    mu = S.mean(dim=(1, 2))
    q = (S * S).mean(dim=(1, 2))
    ab = (S[..., 0] * S[..., 1]).mean(dim=1)
    var = q - mu * mu
    c = torch.where(var > 0, (ab - mu * mu) / torch.where(var > 0, var, torch.ones_like(var)),
                    torch.ones_like(var))
    return mu, q, c


def simulate_pair(arch: str, theta: Theta, N: int, sigma_z, *, tied: bool = False, n_seeds: int = 1,
                  seed: int = 0, R: float = 1.0, q0: float = 1.0, c0: float = 1.0, n_in: int | None = None,
                  untied_method: str = "gram") -> SimResult:
    """Simulate two copies of ``n_seeds`` random networks of width ``N`` for ``len(sigma_z)`` steps.

    Parameters
    ----------
    arch : str
        Architecture with a registered step in :data:`STEPS`.
    theta : Theta
        Scalar hyperparameters (``theta.shape == ()``) for ``arch``.
    N : int
        Width (number of units); inputs have ``n_in`` (default ``N``) coordinates.
    sigma_z : array_like, shape (T,)
        Input correlation at t = 1..T, each in [0, 1].
    tied : bool
        Draw the weights once (True) or afresh at every step (False, the untied assumption).
    n_seeds, seed : int
        Number of independent networks (run as one batch) and the seed of the generator.
    R : float
        Second moment of each input coordinate.
    q0, c0 : float
        Initial state: ``s0_a ~ N(0, q0)`` and ``s0_b = c0 s0_a + sqrt(1 - c0^2) xi``.
    untied_method : {"gram", "matrix"}
        For untied networks, draw each product ``W @ [s_a, s_b]`` from its exact Gaussian law
        (``"gram"``, O(N) per step, see :class:`FreshGaussian`) or draw the N x N matrices
        (``"matrix"``, O(N^2)). The two agree in distribution (tests/test_gru_simulation.py).

    Returns
    -------
    SimResult
        Moments at t = 0..T for each seed.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture arch={arch!r}; allowed: {', '.join(ARCHS)}")
    if arch not in STEPS:
        raise ValueError(f"no simulator for arch={arch!r} yet; available: {', '.join(STEPS)}")
    if theta.arch != arch:
        raise ValueError(f"theta is for arch={theta.arch!r}, simulation asked for arch={arch!r}")
    if theta.shape != ():
        raise ValueError(f"simulate_pair needs scalar hyperparameters, theta has shape {theta.shape}")
    for name, v, lo in (("N", N, 1), ("n_seeds", n_seeds, 1)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name}={v!r} must be an integer >= {lo}")
    if not (0 <= c0 <= 1) or q0 <= 0 or R <= 0:
        raise ValueError(f"need q0 > 0 (got {q0}), R > 0 (got {R}) and c0 in [0, 1] (got {c0})")
    sz = check_sigma_z(sigma_z)
    n_in = N if n_in is None else int(n_in)
    step, observe = STEPS[arch], OBSERVE[arch]
    if untied_method not in ("gram", "matrix"):
        raise ValueError(f"untied_method={untied_method!r}; allowed: 'gram', 'matrix'")
    lazy = (not tied) and untied_method == "gram"
    gen = torch.Generator().manual_seed(int(seed))
    B, dt = int(n_seeds), torch.float64
    # The O(N) path works on small tensors, where intra-op threads cost more than they give
    # (and oversubscribe a loaded machine badly); explicit matrices use the caller's threads.
    with torch.no_grad(), _torch_threads(1 if lazy else None):
        xa = torch.randn(B, N, 1, generator=gen, dtype=dt)
        xb = torch.randn(B, N, 1, generator=gen, dtype=dt)
        s0 = np.sqrt(q0) * torch.cat([xa, c0 * xa + np.sqrt(1 - c0**2) * xb], dim=2)
        state = INIT_STATE[arch](s0)
        P = draw_params(theta, N, n_in, B, gen) if tied else None
        out = [_moments(observe(state))]
        for s in sz:
            if not tied:
                P = draw_params(theta, N, n_in, B, gen, lazy=lazy)
            za = torch.randn(B, n_in, 1, generator=gen, dtype=dt)
            zb = float(s) * za + float(np.sqrt(1 - s * s)) * torch.randn(B, n_in, 1, generator=gen, dtype=dt)
            Z = np.sqrt(R) * torch.cat([za, zb], dim=2)
            state = step(P, state, Z)
            out.append(_moments(observe(state)))
    mu, q, c = (torch.stack([o[i] for o in out]).numpy() for i in range(3))
    return SimResult(mu, q, c, int(N), bool(tied), int(seed))


def simulate_cell_state(theta: Theta, N: int, T: int, *, n_seeds: int = 1, seed: int = 0, R: float = 1.0,
                        tied: bool = False) -> np.ndarray:
    """Cell states ``c^T`` of ``n_seeds`` random LSTMs of width ``N`` after ``T`` steps of i.i.d.
    Gaussian input (untied by default), for Figure 7; returns an array of N * n_seeds values."""
    if _arch.get(theta.arch).state != ("h", "c"):
        raise ValueError(f"simulate_cell_state needs an architecture with a cell state (state ('h', 'c'), the "
                         f"LSTM); theta is for arch={theta.arch!r}")
    for name, v in (("N", N), ("T", T), ("n_seeds", n_seeds)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}={v!r} must be a positive integer")
    gen = torch.Generator().manual_seed(int(seed))
    B, dt = int(n_seeds), torch.float64
    # The O(N) path works on small tensors, where intra-op threads cost more than they give
    # (and oversubscribe a loaded machine badly); explicit matrices use the caller's threads.
    with torch.no_grad(), _torch_threads(1 if not tied else None):
        z0 = torch.zeros(B, N, 2, dtype=dt)
        state = (z0, z0.clone())
        P = draw_params(theta, N, N, B, gen) if tied else None
        for _ in range(T):
            if not tied:
                P = draw_params(theta, N, N, B, gen, lazy=True)
            z = np.sqrt(R) * torch.randn(B, N, 1, generator=gen, dtype=dt)
            state = STEPS[theta.arch](P, state, torch.cat([z, z], dim=2))
    return state[1][..., 0].numpy().ravel()
