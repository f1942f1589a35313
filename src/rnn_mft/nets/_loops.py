r"""Which time loop runs an architecture: a hand-fused loop of :mod:`._recurrence`, or autograd.

An architecture names its hand-fused loop in the registry (``Architecture.fused``, e.g.
``"gru_loop"``); :data:`FUSED_LOOPS` holds the loops, each with the facts the cells need about
it (:class:`Loop`): the gate order it is written for, whether its state is an ``(h, c)`` pair,
whether it supports h-detach, and how the output :math:`p^t` is formed from what it returns. A
copy of the GRU registered under a new name with ``fused="gru_loop"`` runs the GRU's loop.

An architecture without a fused loop (``fused=None``, e.g. a new one) runs its registry
``update`` step by step on torch tensors under autograd (:func:`autograd_loop`): the same
reference update the float64 theory and the finite-width simulator run, so it is correct by
construction, and slower (one autograd graph node per operation and step).

Every loop returns ``(S, O)``: ``S (M, T, B, N)`` the observed state sequence (``h`` of the
LSTM, ``c`` of the peephole LSTM) and ``O`` the second part of a pair state (the LSTM's cell
states), the peephole LSTM's output gates, the outputs of an autograd architecture whose output
is not its state, or ``None``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .. import arch as _arch
from ._recurrence import GRU, LSTM, Minimal, Peephole, Vanilla, gate_sigmoid, project

__all__ = ["Loop", "FUSED_LOOPS", "loop_for", "run_projected", "autograd_loop", "detach_archs"]


def _state_output(S, O):
    return S


def _peephole_output(S, O):
    return O * torch.tanh(S)


@dataclass(frozen=True)
class Loop:
    """A time loop and what the cells need to know about it.

    ``run(X, U, b, W, state0, untied, hard, detach) -> (S, O)``; ``U = b = None``: ``X`` holds the
    pre-activations ``A``. ``gates``: the storage order it is written for (``None``: any);
    ``pair_state``: ``state0`` is ``(h, c)`` and ``O`` carries ``c``; ``detach``: h-detach is
    supported; ``output(S, O)``: the output :math:`p^t`."""

    run: Callable
    gates: tuple | None
    pair_state: bool = False
    detach: bool = False
    output: Callable = _state_output


def _projected(fn):
    def run(X, U, b, W, state0, untied, hard, detach):
        A = X if U is None else project(X, U, b, untied)
        return fn.apply(A, W, state0, untied, hard), None
    return run


def _peephole(X, U, b, W, state0, untied, hard, detach):
    return Peephole.apply(X, U, b, W, state0, untied, hard, detach)


def _lstm(X, U, b, W, state0, untied, hard, detach):
    h0, c0 = state0
    return LSTM.apply(X, U, b, W, h0, c0, untied, hard, detach)


#: the hand-fused loops of :mod:`._recurrence`, by the name an architecture gives as ``fused``
FUSED_LOOPS: dict[str, Loop] = {
    "vanilla_loop": Loop(_projected(Vanilla), ("f",)),
    "minimal_loop": Loop(_projected(Minimal), ("f", "r")),
    "gru_loop": Loop(_projected(GRU), ("f", "r", "r2")),
    "peephole_lstm_loop": Loop(_peephole, ("i", "f", "o", "r"), detach=True, output=_peephole_output),
    "lstm_loop": Loop(_lstm, ("i", "f", "o", "r"), pair_state=True, detach=True),
}


class _TorchOps:
    """:class:`rnn_mft.arch.Ops` on torch tensors, with the (hard) gate sigmoid."""

    def __init__(self, hard: bool):
        self.sig = lambda x: gate_sigmoid(x, hard)
        self.tanh = torch.tanh
        self.zeros_like = torch.zeros_like


def autograd_loop(a: "_arch.Architecture"):
    """The :class:`Loop` that runs ``a.update`` step by step under autograd (no fused loop)."""
    parts = len(a.state)
    if parts > 2:
        raise ValueError(f"arch {a.name!r}: the autograd loop runs states of one part or an (h, c) pair; "
                         f"state={a.state!r} has {parts}")
    custom = a.output is not _arch.Architecture.__dataclass_fields__["output"].default
    if custom and parts == 2:
        raise ValueError(f"arch {a.name!r}: the autograd loop supports a custom output only for a one-part "
                         f"state; give the architecture a fused loop (Architecture.fused)")
    order = {g: j for j, g in enumerate(a.storage_order)}

    def run(X, U, b, W, state0, untied, hard, detach):
        A = X if U is None else project(X, U, b, untied)
        ops = _TorchOps(hard)
        N = W.shape[-2]
        state = state0
        Ss, Os = [], []
        for t in range(A.shape[1]):
            At, Wt = A[:, t], (W[:, t] if untied else W)

            def pre(k, x, _At=At, _Wt=Wt):
                j = order[k]
                return torch.baddbmm(_At[..., j * N:(j + 1) * N], x, _Wt[..., j * N:(j + 1) * N])
            new = a.update(pre, state, ops)
            if custom:
                Os.append(a.output(pre, state, new, ops))
            elif parts == 2:
                Os.append(new[1])
            Ss.append(a.observe(new) if parts == 1 else new[0])
            state = new
        S = torch.stack(Ss, 1)
        return S, (torch.stack(Os, 1) if Os else None)

    return Loop(run, None, pair_state=parts == 2, detach=False,
                output=(lambda S, O: O) if custom else _state_output)


def detach_archs() -> str:
    """The registered architectures whose loop has h-detach, for messages (``'peephole_lstm' and 'lstm'``)."""
    names = [repr(n) for n in _arch.names() if _arch.get(n).fused in FUSED_LOOPS
             and FUSED_LOOPS[_arch.get(n).fused].detach]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def loop_for(name: str) -> Loop:
    """The :class:`Loop` of the registered architecture ``name``: its fused loop, checked against
    its storage order and state, or :func:`autograd_loop`."""
    a = _arch.get(name)
    if a.fused is None:
        return autograd_loop(a)
    loop = FUSED_LOOPS.get(a.fused)
    if loop is None:
        raise ValueError(f"arch {name!r} names fused={a.fused!r}; the fused loops are {', '.join(FUSED_LOOPS)} "
                         f"(or fused=None: autograd)")
    if loop.gates != a.storage_order:
        raise ValueError(f"arch {name!r}: fused loop {a.fused!r} is written for the gate order {loop.gates!r}, "
                         f"but storage_order={a.storage_order!r}")
    if loop.pair_state != (len(a.state) == 2):
        raise ValueError(f"arch {name!r}: fused loop {a.fused!r} runs {'an (h, c) pair' if loop.pair_state else 'a one-part'} "
                         f"state, but state={a.state!r}")
    return loop


def run_projected(name: str, X: torch.Tensor, U, b, W: torch.Tensor, state0, untied: bool, hard: bool,
                  detach=None):
    """Run architecture ``name`` over all steps: ``X (M, T, B, n_in)`` (may be an expanded view),
    ``U (M, n_in, G*N)`` / ``b (M, G*N)`` (untied: ``(M, T, n_in, G*N)`` / ``(M, T, G*N)``);
    ``U = b = None``: ``X`` is the pre-activations ``A``. The LSTMs form ``A`` chunk by chunk
    inside their loop; the others form it first. ``detach``: the h-detach mask ``(M, T)`` of the
    loops that support it; forward values do not depend on it. Returns ``(S, O)`` (module docstring)."""
    loop = loop_for(name)
    if detach is not None and not loop.detach:
        raise ValueError(f"h-detach (detach mask) is defined for arch {detach_archs()} only, not {name!r}")
    if detach is not None and tuple(detach.shape) != (X.shape[0], X.shape[1]):
        raise ValueError(f"detach mask of shape {tuple(detach.shape)}; expected (members, T) = "
                         f"{(X.shape[0], X.shape[1])}")
    return loop.run(X, U, b, W, state0, untied, hard, detach)
