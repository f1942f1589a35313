"""Initializers: empirical weight statistics against Theta, standard/critical/chrono recipes,
and stock torch.nn.LSTM/GRU modules (gate order, two bias vectors).

Tolerances: for n i.i.d. N(0, v) samples the mean of squares has relative standard deviation
sqrt(2/n) and the sample mean has standard deviation sqrt(v/n); every check allows 5 of them,
so each fails with probability < 1e-6 for any seed.
"""
import math

import numpy as np
import pytest
import torch

from rnn_mft import nets
from rnn_mft.theory import ARCHS, FIELDS, Theta

torch.set_num_threads(1)


def _check_var(a: torch.Tensor, v: float, what: str):
    a = a.double().reshape(-1)
    n = a.numel()
    if v == 0:
        assert torch.all(a == 0), what
        return
    ratio = a.pow(2).mean().item() / v
    assert abs(ratio - 1) < 5 * math.sqrt(2 / n), f"{what}: mean square / variance = {ratio:.4f} (n={n})"
    assert abs(a.mean().item()) < 5 * math.sqrt(v / n), f"{what}: mean {a.mean().item():.4g} (n={n})"


def _check_bias(b: torch.Tensor, mu: float, rho2: float, what: str):
    b = b.double().reshape(-1)
    n = b.numel()
    if rho2 == 0:
        assert torch.allclose(b, torch.full_like(b, mu)), what
        return
    assert abs(b.mean().item() - mu) < 5 * math.sqrt(rho2 / n), what
    assert abs(b.var().item() / rho2 - 1) < 5 * math.sqrt(2 / (n - 1)), what


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("untied", [None, 8])
def test_init_draws_as_theta_says(arch, untied):
    N, n_in = 64, 16
    rng = np.random.default_rng(0)
    th = Theta(arch, {k: dict(sigma2=rng.uniform(0.2, 2), nu2=rng.uniform(0.2, 2), rho2=rng.uniform(0.1, 1),
                              mu=rng.uniform(-1, 3)) for k in ARCHS[arch]})
    cell = nets.make(arch, n_in, N, untied=untied)
    nets.init_(cell, th, generator=torch.Generator().manual_seed(1))
    for k in ARCHS[arch]:
        W, U, b = cell.gate(k)
        p = th[k]
        _check_var(W, float(p.sigma2) / N, f"{arch}.{k}.W")
        _check_var(U, float(p.nu2) / n_in, f"{arch}.{k}.U")
        _check_bias(b, float(p.mu), float(p.rho2), f"{arch}.{k}.b")
    if untied:  # steps are independent draws
        W = cell.gate("f").W
        corr = (W[0] * W[1]).sum() / (W[0].norm() * W[1].norm())
        assert abs(corr.item()) < 5 / N        # N^2 independent products: the correlation's sd is 1/N


def test_init_ensemble_one_theta_per_member():
    base = Theta.uniform("gru", sigma2=1.0, nu2=1.0)
    grid = Theta.grid(base, {"f.mu": [-2.0, 0.0, 4.0], "r2.sigma2": [0.5, 1.0, 3.0]}).index(
        (np.arange(3), np.arange(3)))
    assert grid.shape == (3,)
    cell = nets.make("gru", 8, 128, members=3)
    nets.init_(cell, grid, generator=torch.Generator().manual_seed(0))
    for m, (mu, s2) in enumerate([(-2.0, 0.5), (0.0, 1.0), (4.0, 3.0)]):
        assert torch.all(cell.gate("f", member=m).b == mu)
        _check_var(cell.gate("r2", member=m).W, s2 / 128, f"member {m}")
    emp = nets.theta_of_module(cell, empirical=True)   # member 0
    assert abs(float(emp["f"].mu) + 2.0) < 1e-12        # 128 copies of -2.0 (exact in float32): exact mean


def test_init_same_generator_same_weights():
    a = nets.init_(nets.make("lstm", 3, 8), nets.critical_theta("lstm"), torch.Generator().manual_seed(5))
    b = nets.init_(nets.make("lstm", 3, 8), nets.critical_theta("lstm"), torch.Generator().manual_seed(5))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_init_bad_theta():
    cell = nets.make("gru", 3, 4)
    with pytest.raises(ValueError, match="arch='lstm'.*arch='gru'"):
        nets.init_(cell, Theta.uniform("lstm", sigma2=1))
    with pytest.raises(ValueError, match="must be a rnn_mft.theory.Theta"):
        nets.init_(cell, {"f": {}})
    with pytest.raises(ValueError, match="variance and must be >= 0"):
        nets.init_(cell, Theta.uniform("gru", sigma2=-1.0))
    with pytest.raises(ValueError, match=r"grid shape \(2,\)"):
        nets.init_(cell, Theta.uniform("gru", sigma2=[1.0, 2.0]))
    with pytest.raises(ValueError, match="got 2 Thetas.*members=3"):
        nets.init_(nets.make("gru", 3, 4, members=3), [Theta.uniform("gru")] * 2)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_standard_init(arch):
    N, n_in = 32, 5
    cell = nets.make(arch, n_in, N, untied=3)
    nets.standard_init_(cell, generator=torch.Generator().manual_seed(0))
    a = math.sqrt(6 / (n_in + len(ARCHS[arch]) * N))     # Keras: fused over the gates
    for k in ARCHS[arch]:
        W, U, b = cell.gate(k)
        eye = torch.eye(N).expand(3, N, N)
        # orthogonal: float32 Householder QR (LAPACK; its kernels vary by CPU) keeps Q^T Q within
        # ~2 N u32 of I entrywise, the N-term products W W^T add N u32: 3 N u32 = 5.7e-6 (measured 2.4e-7)
        torch.testing.assert_close(W @ W.transpose(-1, -2), eye, atol=3 * N * 2.0 ** -24, rtol=0)
        # Glorot uniform: the max of 3 N n_in = 480 draws of U(-a, a) is below 0.9 a with P = 0.9^480 ~ 1e-22
        assert U.abs().max() <= a and U.abs().max() > 0.9 * a
        expected = 1.0 if (k == "f" and arch != "vanilla") else 0.0
        assert torch.all(b == expected)


def test_critical_theta_appendix_c4():
    th = nets.critical_theta("peephole_lstm")
    for k in "ifro":
        assert float(th[k].sigma2) == 1e-5 and float(th[k].nu2) == 0 and float(th[k].rho2) == 0
        assert float(th[k].mu) == (5.0 if k == "f" else 0.0)
    th = nets.critical_theta("lstm")
    assert [float(th[k].sigma2) for k in "ifro"] == [1e-5, 1e-5, 1e-5, 1.0]
    assert [float(th[k].nu2) for k in "ifro"] == [0, 1, 1, 0]
    assert [float(th[k].mu) for k in "ifro"] == [0, 1, 0, 0]
    assert all(float(th[k].rho2) == 0 for k in "ifro")
    th = nets.critical_theta("gru", mu_f=3.0)
    assert float(th["f"].mu) == 3.0 and float(th["r2"].nu2) == 1.0 and float(th["r"].sigma2) == 1e-5
    assert nets.critical_theta("gru") == Theta.critical("gru")


def test_chrono_init():
    T_max = 100
    cell = nets.make("lstm", 3, 400)
    nets.chrono_init_(cell, T_max, generator=torch.Generator().manual_seed(0))
    bf, bi = cell.gate("f").b, cell.gate("i").b
    assert bf.min() >= 0 and bf.max() <= math.log(T_max - 1)
    torch.testing.assert_close(bi, -bf)
    # exp(b_f) ~ U(1, T_max - 1): mean (T_max)/2 within 5 standard errors
    e = bf.double().exp()
    assert abs(e.mean().item() - T_max / 2) < 5 * (T_max - 2) / math.sqrt(12 * e.numel())
    assert torch.all(cell.gate("r").b == 0) and torch.all(cell.gate("o").b == 0)
    gru = nets.make("gru", 3, 50)
    nets.chrono_init_(gru, T_max)
    assert gru.gate("f").b.min() >= 0
    lstm = torch.nn.LSTM(3, 50)
    nets.chrono_init_(lstm, T_max)
    b = lstm.bias_ih_l0 + lstm.bias_hh_l0
    torch.testing.assert_close(b[:50], -b[50:100])
    with pytest.raises(ValueError, match="t_max"):
        nets.chrono_init_(cell, 1)


# --------------------------------------------------------------------------- stock modules
def _stock_theta(arch):
    return Theta(arch, {k: dict(sigma2=0.5 + j, nu2=0.25 * (j + 1), rho2=0.5, mu=j - 1.0)
                        for j, k in enumerate(ARCHS[arch])})


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "LSTMCell", "GRUCell"])
def test_critical_init_stock_modules(kind):
    H, n_in = 256, 24
    mod = getattr(torch.nn, kind)(n_in, H) if "Cell" in kind else getattr(torch.nn, kind)(n_in, H, num_layers=2)
    arch = "lstm" if "LSTM" in kind else "gru"
    th = _stock_theta(arch)
    nets.critical_init_(mod, theta=th, generator=torch.Generator().manual_seed(0))
    sfx = "" if "Cell" in kind else "_l0"
    w_ih, w_hh = getattr(mod, "weight_ih" + sfx), getattr(mod, "weight_hh" + sfx)
    b_ih, b_hh = getattr(mod, "bias_ih" + sfx), getattr(mod, "bias_hh" + sfx)
    for k, j in nets.STOCK_GATE_ORDER[arch].items():
        sl = slice(j * H, (j + 1) * H)
        p = th[k]
        _check_var(w_hh[sl].detach(), float(p.sigma2) / H, f"{kind}.{k}.W")
        _check_var(w_ih[sl].detach(), float(p.nu2) / n_in, f"{kind}.{k}.U")
        _check_bias((b_ih[sl] + b_hh[sl]).detach(), float(p.mu), float(p.rho2), f"{kind}.{k}.b")
        if arch == "gru" and k == "r2":
            assert torch.all(b_hh[sl] == 0)                   # b_hn is gated by r: kept at zero
        else:
            # the mean sits in bias_ih, the variance is split evenly
            assert abs(b_hh[sl].mean().item()) < 5 * math.sqrt(float(p.rho2) / 2 / H)
            _check_bias(b_hh[sl].detach(), 0.0, float(p.rho2) / 2, f"{kind}.{k}.b_hh")
    emp = nets.theta_of_module(mod, empirical=True)
    for k in ARCHS[arch]:
        assert abs(float(emp[k].mu) - float(th[k].mu)) < 5 * math.sqrt(0.5 / H)
    if "Cell" not in kind:   # layer 1 too, with n_in = H
        _check_var(mod.weight_ih_l1.detach()[:H], float(th[ARCHS[arch][0]].nu2 if arch == "lstm" else th["r"].nu2) / H,
                   "layer 1")


def test_stock_lstm_critical_init_matches_our_lstm():
    """A stock LSTM and our lstm cell with the same (mapped) weights compute the same thing."""
    H, n_in = 8, 3
    stock = torch.nn.LSTM(n_in, H, batch_first=True).double()
    nets.critical_init_(stock, theta=_stock_theta("lstm"), generator=torch.Generator().manual_seed(0))
    ours = nets.make("lstm", n_in, H).double()
    with torch.no_grad():
        for k, j in nets.STOCK_GATE_ORDER["lstm"].items():
            sl = slice(j * H, (j + 1) * H)
            W, U, b = ours.gate(k)
            W.copy_(stock.weight_hh_l0[sl]); U.copy_(stock.weight_ih_l0[sl])
            b.copy_(stock.bias_ih_l0[sl] + stock.bias_hh_l0[sl])
    x = torch.randn(2, 9, n_in, dtype=torch.float64)
    # float64, the same sums regrouped: T = 9 steps of H + n_in = 11-term products of O(1): ~100 u64 ~ 1e-14
    torch.testing.assert_close(ours(x)[0], stock(x)[0], rtol=0, atol=1e-12)


def test_default_theta_of_stock_modules():
    """PyTorch's default U(-1/sqrt(H), 1/sqrt(H)): sigma2 = 1/3, nu2 = n_in/(3H), rho2 = 2/(3H);
    the empirical estimate of a freshly built module agrees."""
    H, n_in = 512, 32
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(n_in, H)
    nominal = nets.theta_of_module(lstm)
    emp = nets.theta_of_module(lstm, empirical=True)
    for k in "ifro":
        # the nominal values are one float64 division each: approx's default rel 1e-6 >> u64
        assert float(nominal[k].sigma2) == pytest.approx(1 / 3)
        assert float(nominal[k].nu2) == pytest.approx(n_in / (3 * H))
        assert float(nominal[k].rho2) == pytest.approx(2 / (3 * H))
        assert float(nominal[k].mu) == 0
        # uniform entries: var of the mean of squares is (1/5 - 1/9) k^4 per entry -> rel. sd sqrt(0.8/n)
        assert float(emp[k].sigma2) == pytest.approx(1 / 3, rel=5 * math.sqrt(0.8 / H**2))
        assert float(emp[k].nu2) == pytest.approx(n_in / (3 * H), rel=5 * math.sqrt(0.8 / (H * n_in)))
        # the variance of H sums of two U(-k, k) (triangular: kurtosis 2.4): relative sd sqrt(1.4/H)
        assert float(emp[k].rho2) == pytest.approx(2 / (3 * H), rel=5 * math.sqrt(1.4 / H))
    gru = nets.theta_of_module(torch.nn.GRUCell(n_in, H))
    assert gru.arch == "gru" and float(gru["r2"].sigma2) == pytest.approx(1 / 3)


def test_critical_init_defaults_and_errors():
    lstm = torch.nn.LSTM(4, 16)
    nets.critical_init_(lstm)                                   # Appendix C.4 LSTM
    assert torch.all((lstm.bias_ih_l0 + lstm.bias_hh_l0)[16:32] == 1.0)
    with pytest.raises(ValueError, match="arch='peephole_lstm'.*needs arch='lstm'"):
        nets.critical_init_(lstm, theta=nets.critical_theta("peephole_lstm"))
    with pytest.raises(ValueError, match="at most one"):
        nets.critical_init_(lstm, theta=nets.critical_theta("lstm"), xi=100)
    with pytest.raises(ValueError, match="proj_size=2"):
        nets.critical_init_(torch.nn.LSTM(4, 16, proj_size=2))
    with pytest.raises(ValueError, match="got Linear"):
        nets.critical_init_(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="bias=False"):
        nets.critical_init_(torch.nn.GRU(4, 8, bias=False), theta=nets.critical_theta("gru"))
    ours = nets.make_classifier("peephole_lstm", 2, 8, 3)
    nets.critical_init_(ours)
    assert torch.all(ours.cell.gate("f").b == 5.0)


@pytest.mark.slow
def test_critical_init_from_timescale():
    """critical_init_(xi=...) draws from rnn_mft.theory.solve_for_timescale's Theta (about 6 s: the
    LSTM solver samples the cell-state distribution)."""
    theory = pytest.importorskip("rnn_mft.theory")
    if not hasattr(theory, "solve_for_timescale"):
        pytest.skip("rnn_mft.theory.solve_for_timescale is not available yet (theory library); "
                    "critical_init_(xi=...) imports it lazily")
    lstm = torch.nn.LSTM(4, 64)
    nets.critical_init_(lstm, xi=200.0)
    th = theory.solve_for_timescale("lstm", xi=200.0).theta
    emp = nets.theta_of_module(lstm, empirical=True)
    assert abs(float(emp["f"].mu) - float(th["f"].mu)) < 5 * math.sqrt(float(th["f"].rho2) / 64 + 1e-12) + 1e-9




def test_stock_rnn_is_the_vanilla_architecture():
    """torch.nn.RNN (tanh) is Table 1's vanilla RNN: critical_init_ draws its Theta, and the
    weights' empirical Theta agrees within sampling error (variance estimates from H^2 = 4096
    entries: relative s.e. sqrt(2/4096) ~ 2 %; 6 s.e. allowed)."""
    torch.manual_seed(0)
    rnn = torch.nn.RNN(8, 64, num_layers=2)
    th = Theta.critical("vanilla")
    nets.critical_init_(rnn, generator=torch.Generator().manual_seed(1))
    for layer in (0, 1):
        emp = nets.theta_of_module(rnn, empirical=True, layer=layer)
        assert emp.arch == "vanilla"
        assert abs(float(emp["f"].sigma2) / float(th["f"].sigma2) - 1) < 6 * math.sqrt(2 / 64**2)
    cell = torch.nn.RNNCell(3, 16)
    nets.critical_init_(cell, xi=20.0, generator=torch.Generator().manual_seed(2))
    assert nets.theta_of_module(cell).arch == "vanilla"
    with pytest.raises(ValueError, match="nonlinearity='relu'.*allowed: 'tanh'"):
        nets.critical_init_(torch.nn.RNN(4, 8, nonlinearity="relu"))
    with pytest.raises(ValueError, match="needs a forget gate"):
        nets.chrono_init_(torch.nn.RNN(4, 8), t_max=10.0)
    with pytest.raises(ValueError, match="torch.nn LSTM, LSTMCell, GRU, GRUCell|got Linear"):
        nets.critical_init_(torch.nn.Linear(4, 8))
