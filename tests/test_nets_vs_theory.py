"""Our PyTorch cells against the numpy reference equations of Table 1
(:func:`rnn_mft.theory.architectures.reference_step`): same weights, same inputs, same states.

Weights are drawn from a Theta with O(1) variances in every field so that every term of every
update matters; the comparison is in float64 at 1e-10 (the two differ only by summation order:
T = 7 steps of N + N_IN = 9-term products of O(1) values, <= ~100 u64 ~ 1e-14 with u64 = 2**-53,
even through a recurrence that amplified it 1e4-fold; measured 1e-15).
"""
import zlib

import numpy as np
import pytest
import torch

from rnn_mft import nets
from rnn_mft.theory import ARCHS, Theta

architectures = pytest.importorskip("rnn_mft.theory.architectures",
                                    reason="rnn_mft.theory.architectures (reference_step) not available yet")
reference_step = architectures.reference_step

torch.set_num_threads(1)
N, N_IN, B, T = 6, 3, 4, 7


def _theta(arch):
    return Theta.uniform(arch, sigma2=1.5, nu2=1.2, rho2=0.3, mu=0.2, f=dict(sigma2=1.5, nu2=1.2, rho2=0.3, mu=1.0))


def _run_reference(cell, x, member=0):
    """Roll reference_step over the sequence for one member; returns outputs p^t (T, B, N)."""
    arch = cell.arch
    state = (np.zeros((B, N)), np.zeros((B, N))) if arch == "lstm" else np.zeros((B, N))
    outs = []
    for t in range(x.shape[1]):
        params = cell.reference_params(member=member, t=t if cell.untied else 0)
        state, p = reference_step(arch, state, x[:, t].numpy(), params, hard_sigmoid=cell.hard_sigmoid,
                                  return_output=True)
        outs.append(p)
    return np.stack(outs, 1)


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("untied", [None, T])
@pytest.mark.parametrize("hard", [False, True])
def test_cell_matches_reference_step(arch, untied, hard):
    # a seed that is the same in every run (hash() of strings changes with PYTHONHASHSEED)
    g = torch.Generator().manual_seed(zlib.crc32(repr((arch, untied, hard)).encode()))
    cell = nets.make(arch, N_IN, N, untied=untied, hard_sigmoid=hard).double()
    nets.init_(cell, _theta(arch), generator=g)
    x = torch.randn(B, T, N_IN, generator=g, dtype=torch.float64)
    P, last = cell(x)
    ref = _run_reference(cell, x)
    np.testing.assert_allclose(P.detach().numpy(), ref, rtol=0, atol=1e-10)
    # the outputs are not trivially small: every gate mattered
    assert np.abs(ref).max() > 0.1


@pytest.mark.parametrize("arch", list(ARCHS))
def test_ensemble_member_matches_reference_step(arch):
    g = torch.Generator().manual_seed(7)
    cell = nets.make(arch, N_IN, N, untied=T, members=3).double()
    thetas = [_theta(arch).replace({"f.mu": m}) for m in (-1.0, 0.0, 2.0)]
    nets.init_(cell, thetas, generator=g)
    x = torch.randn(B, T, N_IN, generator=g, dtype=torch.float64)
    P, _ = cell(x)
    for m in range(3):
        np.testing.assert_allclose(P[m].detach().numpy(), _run_reference(cell, x, member=m), rtol=0, atol=1e-10)


@pytest.mark.parametrize("arch", ["peephole_lstm", "lstm", "gru"])
def test_classifier_reads_out_table1_output(arch):
    """The read-out sees p^T of Table 1 (for the peephole LSTM sigma(u_o) * tanh(c))."""
    g = torch.Generator().manual_seed(3)
    model = nets.make_classifier(arch, N_IN, N, 5).double()
    nets.init_(model, _theta(arch), generator=g)
    x = torch.randn(B, T, N_IN, generator=g, dtype=torch.float64)
    p_last = _run_reference(model.cell, x)[:, -1]
    expected = p_last @ model.weight[0].detach().numpy() + model.bias_out[0].detach().numpy()
    np.testing.assert_allclose(model(x).detach().numpy(), expected, rtol=0, atol=1e-10)
