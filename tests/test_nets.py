"""Cells: gradients (finite differences), tied/untied semantics, ensembles, bad input.

Tolerances (float64, u64 = 2**-53): gradcheck's central differences with eps = 1e-6 are off by
O(eps^2) ~ 1e-12 (truncation) plus u64 |f| / eps ~ 1e-10 (rounding), far inside atol = 1e-6,
rtol = 1e-5, while a wrong backward term is O(1e-2) or more. Two groupings of the same float64
forward/backward (chunks, tied vs untied, members vs singles) differ by reordered sums: T <= 7
steps of N + n_in <= 7 terms of O(1), batch <= 4, so <= ~200 u64 ~ 2e-14; atol = 1e-12.
"""
import numpy as np
import pytest
import torch

from rnn_mft import nets
from rnn_mft.theory import ARCHS, Theta

torch.set_num_threads(1)
ALL = list(ARCHS)


def _model(arch, untied=None, hard=False, members=None, seed=0, n_in=3, N=4, n_out=2):
    g = torch.Generator().manual_seed(seed)
    m = nets.make_classifier(arch, n_in, N, n_out, untied=untied, hard_sigmoid=hard, members=members).double()
    nets.init_(m, Theta.uniform(arch, sigma2=1.5, nu2=1.0, rho2=0.2, mu=0.1), generator=g)
    return m


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("untied,members", [(None, None), (5, None), (None, 2)])
def test_gradients_match_finite_differences(arch, untied, members):
    """The hand-written backward of every architecture against torch.autograd.gradcheck
    (central differences, eps=1e-6, float64) for the input and every parameter."""
    m = _model(arch, untied, members=members)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    params = list(m.parameters())
    names = [n for n, _ in m.named_parameters()]

    def f(x, *ps):
        torch.func.functional_call  # noqa: B018 (exists)
        return torch.func.functional_call(m, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *[p.detach().clone().requires_grad_() for p in params]),
                                    eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_hard_sigmoid_gradients(arch):
    m = _model(arch, hard=True)
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: m(x), (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("arch", ["lstm", "peephole_lstm"])
@pytest.mark.parametrize("untied,members,hard", [(None, None, False), (5, None, False), (None, 2, False),
                                                 (None, None, True)])
def test_lstm_gradients_across_time_chunks(arch, untied, members, hard, monkeypatch):
    """The LSTMs run time in chunks (input projection, backward precomputation and weight
    gradients per chunk): gradcheck with chunks of 2 steps (T=5: a partial last chunk), for the
    read-out of the last step, for all outputs and final states, and for per-member inputs."""
    from rnn_mft.nets import _recurrence
    monkeypatch.setattr(_recurrence, "_CHUNK", 2)
    m = _model(arch, untied, hard=hard, members=members)
    names = [n for n, _ in m.named_parameters()]
    cell = m.cell
    cell_names = [n for n, _ in cell.named_parameters()]

    def readout(x, *ps):
        return torch.func.functional_call(m, dict(zip(names, ps)), (x,))

    def everything(x, *ps):
        P, last = torch.func.functional_call(cell, dict(zip(cell_names, ps)), (x,))
        last = last if isinstance(last, tuple) else (last,)
        return (P * P).sum() + sum((v ** 3).sum() for v in last)

    inputs = [torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)]
    if members:
        inputs.append(torch.randn(members, 2, 5, 3, dtype=torch.float64, requires_grad=True))
    for x in inputs:
        for f, model in ((readout, m), (everything, cell)):
            ps = [p.detach().clone().requires_grad_() for p in model.parameters()]
            assert torch.autograd.gradcheck(f, (x, *ps), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", ["lstm", "peephole_lstm"])
def test_lstm_chunking_does_not_change_results(arch, monkeypatch):
    from rnn_mft.nets import _recurrence
    m = _model(arch, members=2)
    x = torch.randn(3, 7, 3, dtype=torch.float64)
    ref = m(x)
    ref.sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    for K in (1, 3):
        monkeypatch.setattr(_recurrence, "_CHUNK", K)
        m.zero_grad()
        out = m(x)
        out.sum().backward()
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        for p, g in zip(m.parameters(), grads):
            torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-12)


def test_hard_sigmoid_is_keras():
    u = torch.tensor([-10.0, -2.5, 0.0, 1.0, 2.5, 10.0])
    # float32: 0.2 * 1.0 + 0.5 rounds twice, <= 2 u32 0.7 ~ 8e-8 off the float64 0.7
    np.testing.assert_allclose(nets.hard_sigmoid(u).numpy(), [0, 0, 0.5, 0.7, 1, 1], atol=1e-7)


@pytest.mark.parametrize("arch", ALL)
def test_untied_with_equal_steps_equals_tied(arch):
    tied = _model(arch)
    untied = nets.make_classifier(arch, 3, 4, 2, untied=6).double()
    with torch.no_grad():
        untied.cell.weight_hh.copy_(tied.cell.weight_hh.unsqueeze(1).expand_as(untied.cell.weight_hh))
        untied.cell.weight_ih.copy_(tied.cell.weight_ih.unsqueeze(1).expand_as(untied.cell.weight_ih))
        untied.cell.bias.copy_(tied.cell.bias.unsqueeze(1).expand_as(untied.cell.bias))
        untied.weight.copy_(tied.weight)
        untied.bias_out.copy_(tied.bias_out)
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    torch.testing.assert_close(untied(x), tied(x), rtol=0, atol=1e-12)
    # shorter sequences use the first steps' weights
    torch.testing.assert_close(untied(x[:, :4]), tied(x[:, :4]), rtol=0, atol=1e-12)


def test_untied_steps_are_independent():
    m = nets.make("gru", 3, 4, untied=5)
    W = m.gate("f").W
    assert W.shape == (5, 4, 4)
    assert not torch.allclose(W[0], W[1])


@pytest.mark.parametrize("arch", ALL)
def test_stack_and_member_roundtrip(arch):
    singles = [_model(arch, seed=s) for s in range(3)]
    ens = nets.stack(singles)
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    out = ens(x)
    assert out.shape == (3, 4, 2)
    for k, s in enumerate(singles):
        torch.testing.assert_close(out[k], s(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(ens.member(k)(x), s(x), rtol=0, atol=0)
    # per-member inputs
    xs = torch.randn(3, 4, 5, 3, dtype=torch.float64)
    out = ens(xs)
    for k, s in enumerate(singles):
        torch.testing.assert_close(out[k], s(xs[k]), rtol=0, atol=1e-12)


def test_members_with_different_lengths_read_out_at_their_own_step():
    singles = [_model("lstm", seed=s) for s in range(3)]
    ens = nets.stack(singles, lengths=[2, 5, 3])
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    out = ens(x)
    for k, T in enumerate([2, 5, 3]):
        torch.testing.assert_close(out[k], singles[k](x[:, :T]), rtol=0, atol=1e-12)
        torch.testing.assert_close(ens.member(k)(x), singles[k](x[:, :T]), rtol=0, atol=1e-12)


def test_forward_shapes_and_state():
    cell = nets.make("lstm", 3, 4)
    P, (h, c) = cell(torch.randn(2, 5, 3))
    assert P.shape == (2, 5, 4) and h.shape == c.shape == (2, 4)
    torch.testing.assert_close(P[:, -1], h)
    cell = nets.make("peephole_lstm", 3, 4, members=2)
    P, c = cell(torch.randn(2, 5, 3))
    assert P.shape == (2, 2, 5, 4) and c.shape == (2, 2, 4)


def test_gate_views_write_through():
    cell = nets.make("gru", 3, 4)
    W, U, b = cell.gate("r2")
    assert W.shape == (4, 4) and U.shape == (4, 3) and b.shape == (4,)
    b.fill_(7.0)
    assert torch.all(cell.bias.data[0, 8:12] == 7.0)
    ens = nets.make("gru", 3, 4, members=5, untied=2)
    assert ens.gate("f").W.shape == (5, 2, 4, 4)
    assert ens.gate("f", member=1).U.shape == (2, 4, 3)


# ---------------------------------------------------------------------- bad input
def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture arch='rnn'.*allowed: vanilla, minimal, gru"):
        nets.make("rnn", 3, 4)


def test_sequence_longer_than_untied():
    m = nets.make_classifier("gru", 3, 4, 2, untied=5)
    with pytest.raises(ValueError, match="T=6 exceeds.*untied=5"):
        m(torch.randn(2, 6, 3))
    with pytest.raises(ValueError, match="exceed.*untied=5"):
        nets.make_classifier("gru", 3, 4, 2, untied=5, members=2, lengths=[3, 7])


def test_mismatched_input_size():
    m = nets.make_classifier("lstm", 3, 4, 2)
    with pytest.raises(ValueError, match="input size 5.*n_in=3"):
        m(torch.randn(2, 6, 5))
    with pytest.raises(ValueError, match="shape"):
        m(torch.randn(6, 3))
    with pytest.raises(ValueError, match="members=2"):
        nets.make("lstm", 3, 4, members=2)(torch.randn(3, 2, 6, 3))


def test_lstm_state0_is_an_h_c_pair_of_the_right_shape():
    """A plain tensor (B, N) as the LSTM's state0 was unpacked along its first axis as (h, c);
    now every state0 that is not an (h, c) pair of (batch, N) tensors is refused, naming it."""
    cell = nets.make("lstm", 3, 5)
    x = torch.randn(2, 4, 3)
    h, c = torch.randn(2, 5), torch.randn(2, 5)
    P, _ = cell(x, (h, c))
    torch.testing.assert_close(cell(x, [h, c])[0], P)                      # a list is a pair too
    assert not torch.allclose(P, cell(x)[0])                               # the state is used
    pair = (r"allowed for arch='lstm': an \(h, c\) pair \(tuple or list\) of two tensors of shape "
            r"\(batch, N\) = \(2, 5\)")
    t25 = r"a tensor of shape \(2, 5\)"
    for bad, given in [(torch.zeros(2, 5), t25),
                       ((h,), rf"a tuple of 1 \({t25}\)"),
                       ((h, c, c), rf"a tuple of 3 \({t25}, {t25}, {t25}\)"),
                       ((h, torch.zeros(5)), rf"a tuple of 2 \({t25}, a tensor of shape \(5,\)\)"),
                       ([h, torch.zeros(3, 5)], rf"a list of 2 \({t25}, a tensor of shape \(3, 5\)\)"),
                       ((h, 0.0), rf"a tuple of 2 \({t25}, a float\)")]:
        with pytest.raises(ValueError, match=f"^state0 is {given}; {pair}$"):
            cell(x, bad)
    ens = nets.make("lstm", 3, 5, members=2)
    with pytest.raises(ValueError, match=r"state0 is a tuple of 2 .*shape \(members, batch, N\) = \(2, 2, 5\)"):
        ens(x, (h, c))
    assert ens(x, (torch.zeros(2, 2, 5), torch.zeros(2, 2, 5)))[0].shape == (2, 2, 4, 5)
    with pytest.raises(ValueError, match=r"state0 is a tuple of 2 .*allowed for arch='gru': a tensor of shape"):
        nets.make("gru", 3, 5)(x, (h, c))


@pytest.mark.parametrize("kw", [dict(n_hidden=0), dict(n_in=-1), dict(untied=0), dict(members=1.5)])
def test_bad_sizes(kw):
    args = dict(arch="gru", n_in=3, n_hidden=4)
    args.update(kw)
    with pytest.raises(ValueError, match=f"{next(iter(kw))}="):
        nets.make(**args)


def test_unknown_gate():
    with pytest.raises(ValueError, match="unknown gate 'o'.*allowed gates: f, r, r2"):
        nets.make("gru", 3, 4).gate("o")


@pytest.mark.parametrize("arch", ["lstm", "peephole_lstm", "gru"])
@pytest.mark.parametrize("untied", [None, 7])
def test_mixed_length_forward_and_backward_never_read_device_data_on_the_host(arch, untied):
    """On the 'meta' device tensors hold no data, so any read-back (``.item()``, ``.tolist()``,
    ``int(t)``) raises: a pass that runs there has no host synchronisation, which a CUDA graph
    capture of the training step (``fit(cuda_graphs=True)``) needs."""
    m = nets.make_classifier(arch, 5, 8, 3, members=4, lengths=[3, 7, 5, 7], untied=untied).to("meta")
    y = m.forward_members(torch.randn(2, 7, 5, device="meta"))
    assert y.shape == (4, 2, 3) and y.is_meta
    y.sum().backward()
    assert all(p.grad is not None and p.grad.is_meta for p in m.parameters())
