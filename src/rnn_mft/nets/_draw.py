r"""Random draws shared by the cells and the initializers of :mod:`rnn_mft.nets`.

This module sits below both :mod:`rnn_mft.nets.cells` (whose ``reset_parameters`` applies the
standard initialization) and :mod:`rnn_mft.nets.init` (every initializer), so that neither of
those two imports the other's module at run time. Draws are float64 on the CPU from
``generator`` (torch's global generator when ``None``), then copied into the parameters, so a
seed gives the same weights on every device and dtype.
"""
from __future__ import annotations

import math

import torch

from .. import arch as _arch

__all__ = ["randn", "uniform", "orthogonal", "standard_cell_init_"]


def randn(shape, generator, mean=0.0, std=1.0) -> torch.Tensor:
    """float64 normals ``N(mean, std^2)`` of ``shape``."""
    x = torch.randn(tuple(shape), generator=generator, dtype=torch.float64)
    return x.mul_(float(std)).add_(float(mean))


def uniform(shape, generator, low, high) -> torch.Tensor:
    """float64 uniforms on ``[low, high)`` of ``shape``."""
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float64).mul_(high - low).add_(low)


def orthogonal(shape, generator) -> torch.Tensor:
    """Haar-orthogonal square matrices (batched over leading axes), as torch.nn.init.orthogonal_."""
    a = randn(shape, generator)
    q, r = torch.linalg.qr(a)
    d = torch.diagonal(r, dim1=-2, dim2=-1).sign()
    d[d == 0] = 1
    return q * d.unsqueeze(-2)


@torch.no_grad()
def standard_cell_init_(cell, generator: torch.Generator | None = None, forget_bias: float = 1.0):
    """The standard initialization of Appendix C.5 on a :class:`~rnn_mft.nets.RecurrentCell`
    (the body of :func:`rnn_mft.nets.standard_init_`, which documents it). Returns ``cell``."""
    N, n_in = cell.n_hidden, cell.n_in
    a = math.sqrt(6.0 / (n_in + len(cell.gates) * N))
    forget = _arch.get(cell.arch).forget_gate
    for k in cell.gates:
        W, U, b = cell.gate(k)
        W.copy_(orthogonal(W.shape, generator))
        U.copy_(uniform(U.shape, generator, -a, a))
        b.fill_(float(forget_bias) if k == forget else 0.0)
    return cell
