"""The fused Triton steps of the LSTM loops (rnn_mft.nets._triton, opt-in with RNN_MFT_TRITON=1
on CUDA), run here on the CPU in Triton's interpreter (RNN_MFT_TRITON=interpret,
TRITON_INTERPRET=1) against the torch loops they replace. Skipped where Triton is not installed
(`make setup` installs it, extra `gpu`).

Tolerances: both paths compute in float32 (u32 = 2**-24) with the same matrix products and differ
only in the element-wise steps, whose error is derived below from the kernel's formulas
(TANH_RTOL, SIG_RTOL; the interpreter evaluates them with numpy's float32 exp). One step's
values are off by STEP_RTOL relative; over T <= 9 steps of a contracting recurrence the errors
add: forward values to T STEP_RTOL of their scale (3e-5; measured 2.3e-7 on every kernel
choice), gradients, whose backward step uses the gates and their derivatives (twice the
relative error) on top of the forward's, to 3 T STEP_RTOL of each tensor's largest entry (1e-4;
measured 3e-7). A wrong gate order, block, stride or carried gradient shows as O(1) differences."""
import importlib.util
import math
import sys

import pytest
import torch

from rnn_mft import nets
from rnn_mft.nets import _recurrence, _triton

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs Triton (extra `gpu`)")

U32 = 2.0 ** -24                              # float32 unit roundoff
#: the kernel's tanh for |x| >= 1/16 is (1 - e)/(1 + e), e = exp(-2|x|): 1 - e is exact (Sterbenz)
#: but carries exp's error (<= 2 u32) magnified by e/(1 - e) <= 7.5 (at |x| = 1/16), +3 u32 for
#: the rest of the formula, +1 u32 for torch's own tanh: 19 u32 = 1.1e-6 (measured worst over
#: |x| <= 8: 17.9 u32 against torch, at x = 0.0654; below 1/16 its series is good to ~2 u32)
TANH_RTOL = (2 * math.exp(-1 / 8) / (1 - math.exp(-1 / 8)) + 3 + 1) * U32
#: the sigmoid 1/(1 + exp(-x)): exp's 2 u32 damped by e/(1 + e) < 1, +2 u32, + torch's 2 u32
#: (measured 4.6 u32)
SIG_RTOL = 6 * U32
#: one LSTM step: three sigmoids, two tanh, c = f c' + i g and h = o tanh(c) (4 roundings)
STEP_RTOL = 2 * TANH_RTOL + 3 * SIG_RTOL + 4 * U32
T_MAX = 9                                      # the longest sequence below


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("RNN_MFT_TRITON", "interpret")
    monkeypatch.setattr(_triton, "_kernels", None)           # build the kernels under the interpreter
    sys.modules.pop("rnn_mft.nets._triton_kernels", None)
    yield
    _triton._kernels = None
    sys.modules.pop("rnn_mft.nets._triton_kernels", None)


def _grads(model, x, mode, monkeypatch, both_outputs=False, detach=None):
    monkeypatch.setenv("RNN_MFT_TRITON", mode)
    model.zero_grad()
    if both_outputs:                                         # gradients into S and O of every step
        S, O = model.cell.run(x, detach=detach)
        w = torch.linspace(-1, 1, S.numel()).view_as(S)
        out = (S * w).sum() + (O ** 2).sum()
        y = torch.cat([S.flatten(), O.flatten()]).detach()
    else:
        y = model.forward_members(x)
        out = (y ** 2).sum()
        y = y.detach()
    out.backward()
    params = model.cell.parameters() if both_outputs else model.parameters()
    return y, [p.grad.clone() for p in params]


def _close(a, b):
    ya, ga = a
    yb, gb = b
    assert (ya - yb).abs().max() <= T_MAX * STEP_RTOL * max(1.0, ya.abs().max())
    for p, q in zip(ga, gb):
        assert (p - q).abs().max() <= 3 * T_MAX * STEP_RTOL * p.abs().max() + 1e-30, (p - q).abs().max() / p.abs().max()


@pytest.mark.parametrize("arch", ["lstm", "peephole_lstm"])
@pytest.mark.parametrize("hard", [False, True])
def test_fused_steps_match_the_torch_loops(interpret, monkeypatch, arch, hard):
    torch.manual_seed(0)
    m = nets.make_classifier(arch, 5, 12, 3, members=3, lengths=[4, 9, 6], hard_sigmoid=hard)
    x = torch.randn(7, 9, 5)
    _close(_grads(m, x, "", monkeypatch), _grads(m, x, "interpret", monkeypatch))


@pytest.mark.parametrize("arch", ["lstm", "peephole_lstm"])
def test_fused_steps_untied_chunked_both_outputs_and_h_detach(interpret, monkeypatch, arch):
    """Untied weights, chunks of 3 steps (the backward's per-chunk precomputation), gradients
    arriving at every step through both outputs (the carried dC/dO path), and an h-detach mask."""
    monkeypatch.setattr(_recurrence, "_CHUNK", 3)
    torch.manual_seed(1)
    m = nets.make_classifier(arch, 4, 10, 3, members=2, untied=8)
    x = torch.randn(2, 5, 8, 4)
    _close(_grads(m, x, "", monkeypatch, both_outputs=True),
           _grads(m, x, "interpret", monkeypatch, both_outputs=True))
    det = torch.zeros(2, 8, dtype=torch.bool)
    det[0, 2], det[1, 5] = True, True
    _close(_grads(m, x, "", monkeypatch, both_outputs=True, detach=det),
           _grads(m, x, "interpret", monkeypatch, both_outputs=True, detach=det))


def test_fused_forward_step_gates_and_tanh(interpret):
    """One forward step on crafted pre-activations: gates, cell and hidden state, and the
    kernel's tanh against torch.tanh over tiny, moderate and saturating arguments."""
    N = 200
    u = torch.cat([torch.linspace(-3, 3, N), torch.linspace(-4, 4, N), torch.linspace(-2, 2, N),
                   torch.logspace(-7, 1.3, N) * torch.where(torch.arange(N) % 2 == 0, 1.0, -1.0)]).view(1, 1, 4 * N)
    Y = u.clone()
    c_prev = torch.linspace(-1, 1, N).view(1, 1, N)
    c, h = torch.empty(1, 1, N), torch.empty(1, 1, N)
    _triton.lstm_forward_step(Y, c_prev, c, h, hard=False)
    i, f, o = (torch.sigmoid(u[..., k * N:(k + 1) * N]) for k in range(3))
    g = torch.tanh(u[..., 3 * N:])
    # relative, down to |x| = 1e-7 (the former 1e-6 = 16.8 u32 is below the kernel's worst case)
    assert ((Y[..., 3 * N:] - g).abs() / g.abs()).max() <= TANH_RTOL
    torch.testing.assert_close(Y[..., :3 * N], torch.cat([i, f, o], -1), rtol=SIG_RTOL, atol=0)
    # c = f c' + i g: the factors' errors and two roundings, relative to the terms (c may cancel)
    terms = (f * c_prev).abs() + (i * g).abs()
    c_err = (2 * SIG_RTOL + TANH_RTOL + 2 * U32) * terms
    assert torch.all((c - (f * c_prev + i * g)).abs() <= c_err)
    # h = o tanh(c): o's and the kernel's tanh's errors, |tanh'| <= 1 carries c's, one rounding
    ref = o * torch.tanh(f * c_prev + i * g)
    assert torch.all((h - ref).abs() <= (SIG_RTOL + TANH_RTOL + U32) * ref.abs() + o * c_err)


def test_fused_steps_are_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv("RNN_MFT_TRITON", raising=False)
    assert not _triton.enabled(torch.zeros(1))
    monkeypatch.setenv("RNN_MFT_TRITON", "1")                # CUDA tensors only
    assert not _triton.enabled(torch.zeros(1))
    monkeypatch.setenv("RNN_MFT_TRITON", "interpret")
    assert not _triton.enabled(torch.zeros(1, dtype=torch.float64))    # float32 only
