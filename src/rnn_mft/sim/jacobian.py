r"""State-to-state Jacobians of finite-width untied networks (Sections 4.3 and 5.1.2, Figure 3).

:func:`jacobian` runs one untied network of width N for ``T`` steps of i.i.d. Gaussian input
(inputs drawn as in :func:`~rnn_mft.sim.simulate_pair`, weights fresh at every step), then draws
the weights of step ``T + 1`` as explicit matrices and differentiates the true update of
Table 1 with autograd: :math:`J = \partial s^{T+1}/\partial s^T` (eq. (10)). For the LSTM the
state is ``(h, c)``: with ``joint=True`` (the default) we return the 2N x 2N Jacobian of
:math:`(h, c) \mapsto (h', c')` (rows and columns ordered h then c), whose moments the two-state
theory (:mod:`rnn_mft.theory.lstm_twostate`) describes; with ``joint=False``, following the
paper's hidden-state approximation (Appendix A.2.3),
:math:`\partial h^{T+1}/\partial h^T|_{c^T\ \mathrm{fixed}} + D_{\sigma(u_f)}`, the N x N
matrix whose moments the paper's LSTM formulas (:mod:`rnn_mft.theory.lstm`) describe.

:func:`squared_singular_values` gives the spectrum of :math:`JJ^\top`; its mean and second
moment are the empirical :math:`m_1, m_2` (one realization: the ergodicity assumption of
Section 5.1.2).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import arch as _arch
from ..theory.theta import ARCHS, Theta
from .networks import INIT_STATE, STEPS, draw_params

__all__ = ["jacobian", "squared_singular_values"]


def jacobian(arch: str, theta: Theta, N: int, T: int = 100, seed: int = 0, R: float = 1.0,
             n_in: int | None = None, joint: bool = True) -> np.ndarray:
    """The state-to-state Jacobian after ``T`` untied steps (float64 numpy array): N x N, or
    2N x 2N for the LSTM's joint state (h, c) (``joint=True``; see the module docstring)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture arch={arch!r}; allowed: {', '.join(ARCHS)}")
    if theta.arch != arch or theta.shape != ():
        raise ValueError("theta must be a scalar Theta for the same architecture")
    for name, v in (("N", N), ("T", T)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if name == "N" else 0):
            raise ValueError(f"{name}={v!r} must be a positive integer")
    n_in = N if n_in is None else int(n_in)
    gen = torch.Generator().manual_seed(int(seed))
    dt = torch.float64
    step = STEPS[arch]
    with torch.no_grad():
        x = torch.randn(1, N, 1, generator=gen, dtype=dt)
        state = INIT_STATE[arch](torch.cat([x, x], dim=2))
        for _ in range(T):
            P = draw_params(theta, N, n_in, 1, gen, lazy=True)
            z = np.sqrt(R) * torch.randn(1, n_in, 1, generator=gen, dtype=dt)
            state = step(P, state, torch.cat([z, z], dim=2))
        P = draw_params(theta, N, n_in, 1, gen, lazy=False)
        z = np.sqrt(R) * torch.randn(1, n_in, 1, generator=gen, dtype=dt)
    Pm = {k: (W[0], U[0], b[0]) for k, (W, U, b) in P.items()}
    Z = z[0]
    a = _arch.get(arch)
    pair = len(a.state) == 2                     # an (h, c) state: the LSTM
    if pair and joint:
        h0, c0 = state[0][0, :, 0], state[1][0, :, 0]

        def g(x):
            h2, c2 = step(Pm, (x[:N, None], x[N:, None]), Z)
            return torch.cat([h2[:, 0], c2[:, 0]])
        J = torch.func.jacrev(g)(torch.cat([h0, c0]))
    elif pair:
        h0, c0 = state[0][0, :, :1], state[1][0, :, :1]

        def f(h):
            return step(Pm, (h[:, None], c0), Z)[0][:, 0]
        J = torch.func.jacrev(f)(h0[:, 0])
        fg = a.forget_gate
        uf = Pm[fg][0] @ h0 + Pm[fg][1] @ Z + Pm[fg][2]
        J = J + torch.diag(torch.sigmoid(uf[:, 0]))
    else:
        s0 = state[0, :, :1]

        def f(s):
            return step(Pm, s[:, None], Z)[:, 0]
        J = torch.func.jacrev(f)(s0[:, 0])
    return J.detach().numpy()


def squared_singular_values(J: np.ndarray) -> np.ndarray:
    """Eigenvalues of :math:`JJ^\\top` (the squared singular values of J)."""
    return np.linalg.svd(np.asarray(J), compute_uv=False) ** 2
