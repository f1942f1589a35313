"""Sequence classifiers: a :class:`~rnn_mft.nets.RecurrentCell` (or a stock ``torch.nn`` RNN)
followed by a linear read-out of its output at the last step, and :func:`stack` (an ensemble
from single networks).

The output read out is :math:`p^t` of Table 1 (:meth:`RecurrentCell.output`). Members of an
ensemble may read out at their own step (``lengths``), so that members trained on different
sequence lengths share one batch.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .cells import RecurrentCell, _pos_int, make

__all__ = ["SequenceClassifier", "StockSequenceClassifier", "make_classifier", "stack"]


class SequenceClassifier(nn.Module):
    """A cell followed by a linear read-out of the output at the last step.

    For the peephole LSTM the read-out sees :math:`p = \\sigma(u_o) \\circ \\tanh(c)`; for the
    other architectures :math:`p = s` (Table 1). ``lengths`` (ensembles only; one int per
    member) reads member ``m`` out at step ``lengths[m]`` instead of the last step, so that
    members trained on different sequence lengths ``T`` share one batch of the longest
    sequences: member ``m`` then sees exactly the first ``lengths[m]`` steps. A single network
    accepts ``lengths=[T]`` (read out at step ``T`` of longer inputs). Tied cells run the
    members as a staircase (:meth:`RecurrentCell.run_lengths`: member ``m`` computes only its
    own ``lengths[m]`` steps); untied cells run every member ``max(lengths)`` steps.
    """

    def __init__(self, cell: RecurrentCell, n_out: int, lengths: Sequence[int] | None = None):
        super().__init__()
        if not isinstance(cell, RecurrentCell):
            raise ValueError(f"cell must be a RecurrentCell, got {type(cell).__name__}")
        self.cell = cell
        self.n_out = _pos_int("n_out", n_out)
        M, N = cell.n_members, cell.n_hidden
        self.weight = nn.Parameter(torch.empty(M, N, n_out))
        self.bias_out = nn.Parameter(torch.empty(M, n_out))
        if lengths is not None:
            lengths = [int(v) for v in lengths]
            if len(lengths) != M or min(lengths) < 1:
                raise ValueError(f"lengths={lengths!r} must hold {M} positive ints (one per member)")
            if cell.untied is not None and max(lengths) > cell.untied:
                raise ValueError(f"lengths={lengths!r} exceed this untied model's length untied={cell.untied}")
            self.register_buffer("lengths", torch.tensor(lengths, dtype=torch.long))
        else:
            self.lengths = None
        # a host copy of the lengths: the forward pass never reads the (device) buffer back, so it
        # has no host synchronisation and can be captured in a CUDA graph
        self._lengths_host = None if lengths is None else tuple(lengths)
        self.register_load_state_dict_post_hook(SequenceClassifier._refresh_lengths)
        self.reset_readout()

    @staticmethod
    def _refresh_lengths(module, incompatible_keys) -> None:
        if module.lengths is not None:
            module._lengths_host = tuple(int(v) for v in module.lengths.tolist())

    @property
    def members(self):
        return self.cell.members

    @property
    def n_members(self) -> int:
        return self.cell.n_members

    @property
    def is_ensemble(self) -> bool:
        return self.cell.is_ensemble

    @property
    def arch(self) -> str:
        return self.cell.arch

    def reset_readout(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's ``nn.Linear`` default: U(-1/sqrt(N), 1/sqrt(N)) for weights and bias."""
        k = 1.0 / math.sqrt(self.cell.n_hidden)
        with torch.no_grad():
            for p in (self.weight, self.bias_out):
                p.copy_(torch.rand(p.shape, generator=generator, dtype=p.dtype).mul_(2 * k).sub_(k))

    def forward_members(self, x: torch.Tensor) -> torch.Tensor:
        """Logits with the member axis always present: ``(M, batch, n_out)``."""
        T_in = x.shape[-2] if isinstance(x, torch.Tensor) and x.dim() >= 2 else None
        L = self._lengths_host
        if L is not None:
            Tm = max(L)
            if T_in is not None and T_in < Tm:
                raise ValueError(f"sequence length T={T_in} is shorter than the longest read-out step "
                                 f"max(lengths)={Tm}")
            x = x[..., :Tm, :]
        if self.lengths is None:
            S, O = self.cell.run(x)
            s_last = S[:, -1]
            o_last = O[:, -1] if O is not None else None
        elif self.cell.untied is not None or len(set(L)) == 1:
            # untied: all members run max(lengths) steps and read out at their own step (slicing
            # the untied weights per staircase segment would make autograd build a zero-filled
            # gradient of the whole weight tensor per segment; the memory split of
            # rnn_mft.train.ensembles keeps the lengths of one untied ensemble close anyway)
            S, O = self.cell.run(x)
            idx = (self.lengths - 1).to(S.device)
            ar = torch.arange(S.shape[0], device=S.device)
            s_last = S[ar, idx]
            o_last = O[ar, idx] if O is not None else None
        else:
            s_last, o_last = self.cell.run_lengths(x, L)
        p = self.cell.output(s_last, o_last)                       # (M, B, N)
        return torch.baddbmm(self.bias_out.unsqueeze(1), p, self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_out)`` (``(members, batch, n_out)`` for an ensemble)."""
        y = self.forward_members(x)
        return y if self.is_ensemble else y[0]

    def member(self, k: int) -> "SequenceClassifier":
        """A single-network copy of member ``k``."""
        if not (isinstance(k, int) and 0 <= k < self.n_members):
            raise ValueError(f"member k={k!r} is not allowed; expected an int in [0, {self.n_members})")
        c = self.cell
        lengths = None if self.lengths is None else [int(self.lengths[k])]
        single = SequenceClassifier(RecurrentCell(c.arch, c.n_in, c.n_hidden, c.untied, c.hard_sigmoid,
                                                  h_detach=c.h_detach[k]),
                                    self.n_out, lengths=lengths).to(self.weight.device, self.weight.dtype)
        with torch.no_grad():
            mine = dict(self.named_parameters())
            for name, p in single.named_parameters():
                p.copy_(mine[name][k:k + 1])
        return single


def stack(models: Sequence[SequenceClassifier], lengths: Sequence[int] | None = None) -> SequenceClassifier:
    """An ensemble whose member ``m`` is a copy of ``models[m]`` (same arch and shapes)."""
    models = list(models)
    if not models or not all(isinstance(m, SequenceClassifier) for m in models):
        raise ValueError("stack() needs a non-empty list of SequenceClassifier models")
    c0 = models[0].cell
    key = (c0.arch, c0.n_in, c0.n_hidden, c0.untied, c0.hard_sigmoid, models[0].n_out)
    for m in models:
        k = (m.cell.arch, m.cell.n_in, m.cell.n_hidden, m.cell.untied, m.cell.hard_sigmoid, m.n_out)
        if k != key:
            raise ValueError(f"cannot stack models with different (arch, n_in, n_hidden, untied, hard_sigmoid, "
                             f"n_out): {k} vs {key}")
    ens = SequenceClassifier(RecurrentCell(c0.arch, c0.n_in, c0.n_hidden, c0.untied, c0.hard_sigmoid,
                                           members=len(models), h_detach=[m.cell.h_detach[0] for m in models]),
                             models[0].n_out, lengths=lengths)
    ens = ens.to(models[0].weight.device, models[0].weight.dtype)
    with torch.no_grad():
        params = [dict(m.named_parameters()) for m in models]
        for name, p in ens.named_parameters():
            p.copy_(torch.cat([pm[name] for pm in params], 0))
    return ens


class StockSequenceClassifier(nn.Module):
    """A stock ``torch.nn.LSTM`` / ``torch.nn.GRU`` (``batch_first=True``) with a linear read-out
    of the top layer's last output, so that the training engine can train stock modules too."""

    def __init__(self, rnn: nn.Module, n_out: int):
        super().__init__()
        if not isinstance(rnn, (nn.LSTM, nn.GRU, nn.RNN)):
            raise ValueError(f"rnn must be a torch.nn.LSTM, GRU or RNN, got {type(rnn).__name__}")
        if not rnn.batch_first:
            raise ValueError("rnn must be built with batch_first=True")
        self.rnn = rnn
        width = (rnn.proj_size or rnn.hidden_size) if isinstance(rnn, nn.LSTM) else rnn.hidden_size
        self.readout = nn.Linear(width * (2 if rnn.bidirectional else 1), _pos_int("n_out", n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.rnn.input_size:
            raise ValueError(f"input size {x.shape[-1]} does not match the module's input_size={self.rnn.input_size}")
        out, _ = self.rnn(x)
        return self.readout(out[:, -1])


def make_classifier(arch: str, n_in: int, n_hidden: int, n_out: int, untied: int | None = None,
                    hard_sigmoid: bool = False, members: int | None = None,
                    lengths: Sequence[int] | None = None, h_detach=0.0) -> SequenceClassifier:
    """A :class:`SequenceClassifier` around ``make(arch, n_in, n_hidden, untied, hard_sigmoid, members, h_detach)``."""
    return SequenceClassifier(make(arch, n_in, n_hidden, untied, hard_sigmoid, members, h_detach), n_out, lengths)
