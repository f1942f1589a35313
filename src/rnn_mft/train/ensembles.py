"""Whole-figure ensembles: how much memory an ensemble of mixed sequence lengths needs, and how
to split the members of a figure into as few ensembles as fit a memory budget.

Members with different sequence lengths ``T`` train as one ensemble when their inputs are
prefixes of one input stream (padded MNIST: the digit, then noise; the stream of length ``T`` is
the first ``T`` steps of the stream of any longer length, see :mod:`rnn_mft.data.tasks`), each
reading out at its own ``T`` (:meth:`rnn_mft.nets.RecurrentCell.run_lengths`). A figure then
costs ``max(T)`` sequential steps instead of ``sum(T)``.

Tied weights cost the same memory at every length. Untied weights hold one set of weights per
time step, and an ensemble stores ``max(T)`` of them for every member, so a whole figure at paper
scale may not fit on one GPU: :func:`split_by_memory` groups the lengths (longest first) into as
few ensembles as fit ``budget`` bytes, and :func:`ensemble_bytes` says what each needs.

The byte counts are computed from tensor shapes (float32), not measured: parameters, their
gradients and the optimizer's state, the activations the hand-written time loops keep for the
backward pass (per member, step and sequence: ``6N`` floats for the LSTMs; ``A``, ``dA``, the
states and a copy of the input for the others), the input batch, and the forward pass of one
evaluation batch (one staircase segment at a time), and one more parameter-sized buffer of
temporaries. Allocator overhead and workspace are not included; keep a margin. Checked on a CPU
against the peak resident memory of two Adam training steps and one evaluation batch of 512
(width 32, n_in 784; the estimate without the inputs): see the README, section "Using a GPU".
"""
from __future__ import annotations

from typing import Sequence

from .. import arch as _arch
from ..theory.theta import ARCHS, check_arch

__all__ = ["ensemble_bytes", "checkpoint_bytes", "checkpoint_bytes_of", "split_by_memory", "format_bytes"]

_OPT_STATE = {"adam": 2, "sgd": 1, "rmsprop": 1}


def _row_floats(arch: str, n_in: int, N: int, training: bool) -> int:
    """float32 values kept per (member, step, sequence) by one forward (and backward) pass: the
    architecture's ``memory_per_step`` (:class:`rnn_mft.arch.Architecture`), or the autograd
    loop's estimate where it has no fused loop."""
    a = _arch.get(arch)
    memory = a.memory_per_step or _arch.autograd_memory
    return int(memory(N, n_in, training, len(a.gates)))


def ensemble_bytes(arch: str, n_in: int, width: int, n_out: int, lengths: Sequence[int], batch_size: int,
                   untied: bool, optimizer: str = "adam", eval_batch_size: int = 1024) -> dict:
    """Estimated bytes of one training ensemble whose member ``k`` reads out at ``lengths[k]``
    (one entry per member). Returns a dict: ``params``, ``grads``, ``optimizer``,
    ``transient`` (one more parameter-sized buffer: the optimizer's temporaries, the GRU's
    concatenated weight gradient), ``activations`` (training step), ``eval`` (forward pass of one
    evaluation batch), ``inputs``, and ``total`` = params + grads + optimizer + transient +
    inputs + max(activations, eval)."""
    arch = check_arch(arch)
    L = [int(v) for v in lengths]
    if not L or min(L) < 1:
        raise ValueError(f"lengths={lengths!r}; allowed: a non-empty list of positive ints")
    for name, v in (("n_in", n_in), ("width", width), ("n_out", n_out), ("batch_size", batch_size),
                    ("eval_batch_size", eval_batch_size)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"{name}={v!r}; allowed: a positive int")
    if optimizer not in _OPT_STATE:
        raise ValueError(f"optimizer={optimizer!r}; allowed: {', '.join(_OPT_STATE)}")
    M, T, N, G = len(L), max(L), width, len(ARCHS[arch])
    f = 4
    per_set = (N + n_in + 1) * G * N
    params = M * (T if untied else 1) * per_set + M * (N + 1) * n_out
    act = sum(L) * batch_size * _row_floats(arch, n_in, N, True)
    # evaluation (no autograd): one staircase segment's buffers at a time
    bounds = sorted(set(L))
    seg = max(sum(1 for v in L if v >= tb) * (tb - t0) for t0, tb in zip([0] + bounds[:-1], bounds))
    ev = seg * eval_batch_size * _row_floats(arch, n_in, N, False)
    inputs = (batch_size + eval_batch_size) * T * n_in
    out = {"members": M, "T_max": T, "params": f * params, "grads": f * params,
           "optimizer": f * params * _OPT_STATE[optimizer], "transient": f * params, "activations": f * act,
           "eval": f * ev, "inputs": f * inputs}
    out["total"] = (out["params"] + out["grads"] + out["optimizer"] + out["transient"] + out["inputs"]
                    + max(out["activations"], out["eval"]))
    return out


def checkpoint_bytes(arch: str, n_in: int, width: int, n_out: int, lengths: Sequence[int], untied: bool,
                     optimizer: str = "adam", steps: int = 1) -> int:
    """Estimated size of one checkpoint of the ensemble (:mod:`rnn_mft.train.checkpoint`): the
    parameters and the optimizer's state (float32), and the per-step curves so far (three float64
    values per member and step, at most ``steps``). The test suite checks it against real files."""
    b = ensemble_bytes(arch, n_in, width, n_out, lengths, 1, untied, optimizer, eval_batch_size=1)
    return int(b["params"] + b["optimizer"] + 3 * 8 * len(lengths) * int(steps))


def checkpoint_bytes_of(e: dict) -> int:
    """:func:`checkpoint_bytes` of an ensemble described as the experiments' ``ensembles(cfg)``
    list them (keys ``arch, n_in, width, n_out, lengths, tied, optimizer, steps``)."""
    return checkpoint_bytes(e["arch"], e["n_in"], e["width"], e["n_out"], e["lengths"], not e["tied"],
                            e["optimizer"], e["steps"])


def split_by_memory(Ts: Sequence[int], members_per_T: int, bytes_of, budget: float) -> list[list[int]]:
    """Group the sequence lengths ``Ts`` (each with ``members_per_T`` members) into as few
    ensembles as fit ``budget`` bytes: lengths sorted longest first, each added to the current
    group while ``bytes_of(lengths_of_all_members)["total"]`` stays within the budget. A length
    whose members alone exceed the budget gets a group of its own (and the caller is told by
    the byte count). Greedy over sorted lengths is optimal here: a group's untied storage is set
    by its longest member, so the longest lengths belong together.
    Returns the groups, each a list of lengths in increasing order."""
    if not budget > 0:
        raise ValueError(f"budget={budget!r}; allowed: a positive number of bytes")
    groups: list[list[int]] = []
    cur: list[int] = []
    for T in sorted({int(t) for t in Ts}, reverse=True):
        trial = cur + [T]
        if cur and bytes_of([t for t in trial for _ in range(members_per_T)])["total"] > budget:
            groups.append(sorted(cur))
            cur = [T]
        else:
            cur = trial
    if cur:
        groups.append(sorted(cur))
    return groups


def format_bytes(n: float) -> str:
    for unit, s in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= s:
            return f"{n / s:.1f} {unit}"
    return f"{int(n)} B"
