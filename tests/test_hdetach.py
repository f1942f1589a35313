"""h-detach (Arpit et al. 2018) in the LSTM cells: the hand-written backward with a detach mask
against autograd on the same cell written with ``h.detach()`` on the same steps; p = 0 is the
plain cell; p = 1 blocks every gradient path through h_{t-1}; draws and bad input.

Tolerances: the comparisons run in float64, where the hand-written backward and autograd differ
only by rounding in a different order of the same sums (observed ~1e-15); rtol=1e-9, atol=1e-11
leaves four orders of magnitude of margin and still catches any dropped or extra term (those are
O(1e-2) here).
"""
import pytest
import torch

from rnn_mft import nets
from rnn_mft.theory import Theta

torch.set_num_threads(1)
LSTMS = ["lstm", "peephole_lstm"]


def _cell(arch, untied=None, members=2, h_detach=0.0, N=5, n_in=3, seed=0):
    c = nets.make(arch, n_in, N, untied=untied, members=members, h_detach=h_detach).double()
    nets.init_(c, Theta.uniform(arch, sigma2=1.5, nu2=1.0, rho2=0.2, mu=0.3), generator=torch.Generator().manual_seed(seed))
    return c


def _reference(cell, x, s0, c0, detach):
    """Autograd LSTM / peephole LSTM in the storage order (i, f, o, r) of the cells, with
    ``h.detach()`` (peephole: ``c.detach()`` in the gates) where ``detach[m, t]``."""
    M, B, T, _ = x.shape
    N = cell.n_hidden
    outs, second = [], []
    s, c = s0, c0
    for t in range(T):
        W = cell.weight_hh if cell.untied is None else cell.weight_hh[:, t]
        U = cell.weight_ih if cell.untied is None else cell.weight_ih[:, t]
        b = cell.bias if cell.untied is None else cell.bias[:, t]
        keep = (~detach[:, t]).to(x.dtype).view(M, 1, 1)
        rec_in = s if cell.arch == "lstm" else c
        rec_in = keep * rec_in + (1 - keep) * rec_in.detach()        # per-member h.detach()
        u = torch.bmm(rec_in, W) + torch.bmm(x[:, :, t], U) + b.unsqueeze(1)
        i, f, o = (torch.sigmoid(u[..., k * N:(k + 1) * N]) for k in range(3))
        g = torch.tanh(u[..., 3 * N:])
        c = f * c + i * g
        if cell.arch == "lstm":
            s = o * torch.tanh(c)
            outs.append(s)
            second.append(c)
        else:
            outs.append(c)
            second.append(o)
    return torch.stack(outs, 1), torch.stack(second, 1)


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors, allow_unused=True)


@pytest.mark.parametrize("arch", LSTMS)
@pytest.mark.parametrize("untied", [None, 6])
def test_hdetach_backward_matches_autograd_with_detached_h(arch, untied):
    """Tied and untied ensembles of two members, each with its own detach pattern (including the
    first step, whose gradient goes to the initial state)."""
    torch.manual_seed(1)
    cell = _cell(arch, untied)
    M, B, T = 2, 3, 6
    x = torch.randn(M, B, T, 3, dtype=torch.float64, requires_grad=True)
    s0 = torch.randn(M, B, 5, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(M, B, 5, dtype=torch.float64, requires_grad=True)
    detach = torch.tensor([[True, False, True, True, False, False], [False, True, False, True, True, True]])
    w1 = torch.randn(M, T, B, 5, dtype=torch.float64)
    w2 = torch.randn(M, T, B, 5, dtype=torch.float64)
    state0 = (s0, c0) if arch == "lstm" else c0
    S, O = cell.run(x, state0, detach=detach)
    loss = (S * w1).sum() + (O * w2).sum()
    params = [cell.weight_hh, cell.weight_ih, cell.bias]
    ins = [x, s0, c0] if arch == "lstm" else [x, c0]
    ours = _grads(loss, params + ins)
    Sr, Or = _reference(cell, x, s0 if arch == "lstm" else None, c0, detach)
    torch.testing.assert_close(S, Sr, rtol=1e-12, atol=1e-12)          # forward values unchanged
    ref = _grads((Sr * w1).sum() + (Or * w2).sum(), params + ins)
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("arch", LSTMS)
def test_hdetach_p0_equals_plain_cell(arch):
    """p = 0 draws no mask and gives the plain cell's gradients bit for bit; an explicit
    all-False mask takes the masked code path (product, then add: another rounding order) and
    agrees to float64 rounding."""
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    grads = []
    for p, mask in ((None, None), (0.0, None), (0.0, torch.zeros(2, 7, dtype=torch.bool))):
        cell = _cell(arch, h_detach=0.0) if p is not None else _cell(arch)
        assert cell.draw_detach(7) is None
        S, O = cell.run(x, detach=mask)
        (S.sum() + O.sum()).backward()
        grads.append([q.grad.clone() for q in cell.parameters()])
    for a, b in zip(grads[1], grads[0]):
        assert torch.equal(a, b)
    for a, b in zip(grads[2], grads[0]):
        # another rounding order of the same float64 sums (T = 7 steps of N + n_in = 8 terms, batch 4):
        # <= ~100 u64 ~ 1e-14 of O(1) gradients
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("arch", LSTMS)
def test_hdetach_p1_blocks_every_path_through_h(arch):
    """p = 1: every step detached. The initial state that feeds the gates (h0 of the LSTM, c0 of
    the peephole through W) gets no gradient through the gates; the LSTM's c0 keeps its
    cell-state path; and the result equals autograd with every h detached."""
    torch.manual_seed(2)
    cell = _cell(arch, h_detach=1.0)
    cell.train()
    B, T = 3, 5
    x = torch.randn(2, B, T, 3, dtype=torch.float64)
    mask = cell.draw_detach(T)
    assert mask.all()
    s0 = torch.randn(2, B, 5, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, B, 5, dtype=torch.float64, requires_grad=True)
    S, O = cell.run(x, (s0, c0) if arch == "lstm" else c0)
    loss = S[:, -1].sum()
    if arch == "lstm":
        dh0, dc0 = torch.autograd.grad(loss, (s0, c0))
        assert torch.count_nonzero(dh0) == 0                  # h0 enters only through W h0: blocked
        assert torch.count_nonzero(dc0) > 0                   # c0 -> c_T along f: kept
        Sr, _ = _reference(cell, x, s0, c0, mask)
        dh0r, dc0r = torch.autograd.grad(Sr[:, -1].sum(), (s0, c0))
        torch.testing.assert_close(dc0, dc0r, rtol=1e-9, atol=1e-11)
    else:
        (dc0,) = torch.autograd.grad(loss, (c0,))
        Sr, _ = _reference(cell, x, None, c0, mask)
        (dc0r,) = torch.autograd.grad(Sr[:, -1].sum(), (c0,))
        torch.testing.assert_close(dc0, dc0r, rtol=1e-9, atol=1e-11)
        # only the product of the forget gates carries c0 to c_T: d sum(c_T) / d c0 = prod_t f_t
        Y = cell.run(x, c0.detach())[1]                         # output gates; the forget gates:
        N = 5
        fs = []
        c = c0.detach()
        for t in range(T):
            u = torch.bmm(c, cell.weight_hh.detach()) + torch.bmm(x[:, :, t], cell.weight_ih.detach()) \
                + cell.bias.detach().unsqueeze(1)
            fs.append(torch.sigmoid(u[..., N:2 * N]))
            c = fs[-1] * c + torch.sigmoid(u[..., :N]) * torch.tanh(u[..., 3 * N:])
        torch.testing.assert_close(dc0, torch.stack(fs).prod(0), rtol=1e-9, atol=1e-12)
        assert Y.shape == (2, T, B, N)


def test_hdetach_draws_and_modes():
    cell = _cell("lstm", h_detach=[0.25, 0.0], members=2)
    torch.manual_seed(0)
    mask = cell.draw_detach(4000)
    assert mask.shape == (2, 4000)
    assert abs(mask[0].double().mean().item() - 0.25) < 0.03   # 4000 draws: sd 0.007
    assert not mask[1].any()
    cell.eval()
    assert cell.draw_detach(10) is None                        # evaluation: nothing detached
    cell.train()
    with torch.no_grad():
        assert cell.draw_detach(10) is None
    # forward values do not depend on the mask
    x = torch.randn(2, 3, 9, 3, dtype=torch.float64)
    torch.testing.assert_close(cell.run(x, detach=torch.ones(2, 9, dtype=torch.bool))[0],
                               cell.run(x, detach=torch.zeros(2, 9, dtype=torch.bool))[0], rtol=0, atol=0)


def test_hdetach_bad_input():
    with pytest.raises(ValueError, match=r"h_detach=1.5.*\[0, 1\]"):
        nets.make("lstm", 3, 4, h_detach=1.5)
    with pytest.raises(ValueError, match="defined for 'peephole_lstm' and 'lstm' only"):
        nets.make("gru", 3, 4, h_detach=0.25)
    with pytest.raises(ValueError, match="one per member"):
        nets.make("lstm", 3, 4, members=3, h_detach=[0.1, 0.2])
    cell = nets.make("lstm", 3, 4, members=2)
    with pytest.raises(ValueError, match="expected"):
        cell.run(torch.randn(2, 5, 3), detach=torch.zeros(2, 4, dtype=torch.bool))


def test_hdetach_carried_by_stack_and_member():
    singles = [nets.make_classifier("lstm", 3, 4, 2, h_detach=p) for p in (0.25, 0.0)]
    ens = nets.stack(singles)
    assert ens.cell.h_detach == (0.25, 0.0)
    assert ens.member(0).cell.h_detach == (0.25,)


def test_hdetach_training_resumes_exactly_from_a_checkpoint(tmp_path):
    """The draws come from torch's global generator, which the engine seeds and checkpoints: an
    interrupted h-detach run resumes to the same curves bit for bit (CPU)."""
    import numpy as np

    from rnn_mft import train
    task = train.CopyMemoryTask(T=10, n_symbols=4, n_eval=32)

    def model():
        m = nets.make_classifier("lstm", task.n_in, 6, task.n_out, members=2, h_detach=[0.5, 0.0])
        nets.init_(m, Theta.uniform("lstm", sigma2=1.0, nu2=1.0, mu=0.5), generator=torch.Generator().manual_seed(0))
        m.reset_readout(torch.Generator().manual_seed(1))
        return m

    cfg = train.TrainConfig(steps=8, batch_size=8, optimizer="adam", lr=1e-2, checkpoint_every=3, progress=False,
                            device="cpu")
    full = train.fit(model(), task, cfg)

    class Stop(Exception):
        pass

    def hook(step, info):
        if step == 4:
            raise Stop

    ck = tmp_path / "ck.pt"
    with pytest.raises(Stop):
        train.fit(model(), task, cfg, checkpoint=ck, hook=hook)
    resumed = train.fit(model(), task, cfg, checkpoint=ck)
    assert resumed.meta["resumed_from"] == 3
    np.testing.assert_array_equal(full.curves["train_loss"], resumed.curves["train_loss"])
    plain = train.fit(nets.stack([model().member(1)]), task, cfg)      # the p = 0 member alone
    # float32 (u32 = 2**-24), Adam: the losses only (tests/test_train.py); each of T steps reduces over
    # N + n_in terms, so a regrouped run is off by <= T (N + n_in) u32 relative (6e-6; measured: bitwise)
    rtol = task.T * (6 + task.n_in) * 2.0 ** -24
    np.testing.assert_allclose(full.curves["train_loss"][:, 1], plain.curves["train_loss"][:, 0], rtol=rtol)
