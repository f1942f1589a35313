r"""Initializers: Theta-sampling (Section 4.1), standard (Appendix C.5), critical (Appendix C.4),
chrono (Tallec & Ollivier 2018), and critical initialization of stock PyTorch modules.

All of them accept a :class:`~rnn_mft.nets.RecurrentCell` or a
:class:`~rnn_mft.nets.SequenceClassifier` (tied or untied, single network or ensemble);
:func:`critical_init_`, :func:`chrono_init_` and :func:`theta_of_module` also accept stock
``torch.nn.LSTM``, ``torch.nn.GRU``, ``torch.nn.RNN`` (tanh) and their ``Cell`` versions: each
registered architecture names the stock classes it describes (``Architecture.stock``). Random
numbers come from ``generator`` (a CPU :class:`torch.Generator`) when given, else from torch's
global generator, and are drawn on the CPU, so a seed gives the same weights on every device.

**Stock modules.** PyTorch's LSTM is the ``lstm`` of Table 1 with gate order ``i, f, g, o``
(``g`` is our ``r``). Its GRU computes

.. math::
    r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}),\quad
    z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}),\\
    n = \tanh(W_{in} x + b_{in} + r \circ (W_{hn} h + b_{hn})),\quad h' = (1 - z) \circ n + z \circ h,

which we map to Table 1's GRU as ``z`` ↔ ``f`` (the gate that keeps the state), ``r`` ↔ ``r``,
``n`` ↔ ``r2``. Two differences remain and are documented rather than hidden: PyTorch applies
the reset gate *after* the recurrent product (:math:`r \circ (W_{hn} h)` instead of
:math:`W_{r_2}(r \circ h)`; the two have the same variance to leading order when ``r`` and ``h``
decorrelate but are not the same network), and :math:`b_{hn}` sits inside the reset product.
:func:`critical_init_` therefore puts the whole ``r2`` bias into :math:`b_{in}` and sets
:math:`b_{hn} = 0`. For the other gates the two bias vectors add up, so the mean goes into
``bias_ih`` and the variance is split evenly: ``bias_ih ~ N(mu, rho2/2)``, ``bias_hh ~ N(0,
rho2/2)``, whose sum is ``N(mu, rho2)``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .. import arch as _arch
from ..theory import solve_for_timescale
from ..theory.theta import FIELDS, Theta, check_arch
from ._draw import randn as _randn, standard_cell_init_, uniform as _uniform
from .cells import RecurrentCell
from .classifier import SequenceClassifier

__all__ = ["init_", "standard_init_", "critical_theta", "critical_init_", "chrono_init_",
           "theta_of_module", "STOCK_GATE_ORDER"]

#: Theta gate -> index of the gate block in PyTorch's stacked weights, by architecture (from the
#: registry's ``Architecture.stock``; live for the architectures registered at import)
STOCK_GATE_ORDER = {n: dict(_arch.get(n).stock.gate_order) for n in _arch.names() if _arch.get(n).stock}


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def _cell_of(model) -> RecurrentCell:
    if isinstance(model, SequenceClassifier):
        return model.cell
    if isinstance(model, RecurrentCell):
        return model
    raise ValueError(f"model must be a rnn_mft.nets RecurrentCell or SequenceClassifier, got {type(model).__name__}")


def _member_thetas(theta, cell: RecurrentCell) -> list[Theta]:
    """One scalar Theta per member from a Theta (scalar, or shape (M,)) or a list of Thetas."""
    M = cell.n_members
    if isinstance(theta, (list, tuple)):
        if len(theta) != M:
            raise ValueError(f"got {len(theta)} Thetas for an ensemble of members={M}; allowed: one Theta or {M}")
        out = list(theta)
    elif isinstance(theta, Theta):
        if theta.shape == ():
            out = [theta] * M
        elif theta.shape == (M,):
            out = [theta.index(m) for m in range(M)]
        else:
            raise ValueError(f"theta has grid shape {theta.shape}; allowed: () or ({M},) for members={M}")
    else:
        raise ValueError(f"theta must be a rnn_mft.theory.Theta (or a list of them), got {type(theta).__name__}")
    for th in out:
        if not isinstance(th, Theta):
            raise ValueError(f"theta must be a rnn_mft.theory.Theta, got {type(th).__name__}")
        if th.arch != cell.arch:
            raise ValueError(f"theta is for arch={th.arch!r} but the model is arch={cell.arch!r}")
        if th.shape != ():
            raise ValueError(f"each member's theta must be scalar, got grid shape {th.shape}")
    return out


def _fields(th: Theta, k: str) -> dict:
    return {f: float(getattr(th[k], f)) for f in FIELDS}


# ------------------------------------------------------------------------------------------
# our cells
# ------------------------------------------------------------------------------------------
@torch.no_grad()
def init_(model, theta, generator: torch.Generator | None = None):
    r"""Draw every weight and bias of ``model`` exactly as ``theta`` says (Section 4.1):

    .. math::
        W_{k,ij} \sim \mathcal{N}(0, \sigma_k^2/N),\quad U_{k,ij} \sim \mathcal{N}(0, \nu_k^2/N_{in}),
        \quad b_{k,i} \sim \mathcal{N}(\mu_k, \rho_k^2).

    (The paper writes :math:`\nu_k^2/N` for inputs of width ``N``; for inputs of width
    ``N_in`` the variance is :math:`\nu_k^2/N_{in}` so that :math:`U_k z` has variance
    :math:`\nu_k^2 R`.) Untied models draw independently for every time step; an ensemble takes
    one Theta for all members, a Theta of grid shape ``(M,)`` or a list of ``M`` Thetas. The
    read-out of a classifier is left as it is. Returns ``model``.
    """
    cell = _cell_of(model)
    thetas = _member_thetas(theta, cell)
    N, n_in = cell.n_hidden, cell.n_in
    for m, th in enumerate(thetas):
        for k in cell.gates:
            p = _fields(th, k)
            W, U, b = cell.gate(k, member=m)
            W.copy_(_randn(W.shape, generator, 0.0, math.sqrt(p["sigma2"] / N)))
            U.copy_(_randn(U.shape, generator, 0.0, math.sqrt(p["nu2"] / n_in)))
            b.copy_(_randn(b.shape, generator, p["mu"], math.sqrt(p["rho2"])))
    return model


@torch.no_grad()
def standard_init_(model, generator: torch.Generator | None = None, forget_bias: float = 1.0):
    r"""The standard initialization of Appendix C.5 (Keras' LSTM defaults, which the paper used).

    Input kernels Glorot-uniform over the kernel fused across the ``G`` gates (Keras' kernel of
    shape ``(N_in, G N)``): :math:`U(-a, a)`, :math:`a = \sqrt{6/(N_{in} + G N)}`, entry variance
    :math:`2/(N_{in} + GN)`, i.e. :math:`\nu_k^2 = 2N_{in}/(N_{in}+GN)` as in
    :meth:`rnn_mft.theory.Theta.standard`. Recurrent matrices :math:`W_k` Haar-orthogonal, one
    per gate (:math:`\sigma_k^2 = 1` in the sense of second moments). Biases zero except the
    forget bias :math:`\mu_f` = ``forget_bias`` (1), for every architecture with a gate ``f``
    that multiplies the old state (minimal, GRU, peephole LSTM, LSTM; the vanilla RNN's single
    pre-activation gets bias 0). The paper states C.5 for the LSTM and peephole LSTM; the same
    recipe is used for the other cells. Every member and every untied step gets its own draw.
    Returns ``model``.
    """
    standard_cell_init_(_cell_of(model), generator, forget_bias)
    return model


def critical_theta(arch: str, mu_f: float | None = None, sigma2: float = 1e-5) -> Theta:
    r"""The critical initializations of Appendix C.4 (and the library's analogues for the GRU,
    minimal and vanilla RNN): :meth:`rnn_mft.theory.Theta.critical`, the single source of truth.

    ``peephole_lstm``: :math:`\mu_f = 5`, :math:`\sigma_k^2 = 10^{-5}`, every other field 0.
    ``lstm`` (unrolled CIFAR-10): :math:`\nu_f^2 = \nu_r^2 = \sigma_o^2 = \mu_f = 1`,
    :math:`\sigma_{i,f,r}^2 = 10^{-5}`, every other field 0. ``gru`` (analogue):
    :math:`\sigma_k^2 = 10^{-5}`, :math:`\mu_f = 5` (the state is kept for about
    :math:`1/(1-\sigma(\mu_f))` steps), :math:`\nu_{r_2}^2 = 1` so that the input reaches the
    candidate; ``minimal``: the same with ``r``. See that method for the vanilla RNN.
    """
    check_arch(arch)
    return Theta.critical(arch, mu_f=mu_f, sigma2=sigma2)


def _solve_theta(arch: str, xi, **kw) -> Theta:
    return solve_for_timescale(arch, xi=xi, **kw).theta


@torch.no_grad()
def critical_init_(module, theta: Theta | None = None, xi: float | None = None,
                   generator: torch.Generator | None = None, layers: Sequence[int] | None = None, **solve_kw):
    r"""Critically initialize ``module`` from a Theta or a target time scale ``xi``.

    ``module`` is one of our cells/classifiers, or a stock ``torch.nn.LSTM``, ``torch.nn.GRU``,
    ``torch.nn.RNN`` (tanh), or one of their ``Cell`` versions. Give at most one of ``theta`` and ``xi``:

    * ``theta``: weights drawn as :func:`init_` (stock modules: see the module docstring for the
      gate order and the two bias vectors);
    * ``xi``: ``theta = rnn_mft.theory.solve_for_timescale(arch, xi=xi, **solve_kw)``
      (``arch`` is the registered architecture of the stock class, :func:`rnn_mft.arch.for_stock`:
      the LSTM for ``torch.nn.LSTM``, the GRU for ``torch.nn.GRU``, the vanilla RNN for a tanh
      ``torch.nn.RNN``);
    * neither: :func:`critical_theta` of the architecture (Appendix C.4).

    Stock multi-layer modules get the same Theta in every layer (or only in ``layers``); the
    inputs of layer ``l > 0`` are the outputs of layer ``l-1``, so there :math:`N_{in}` is the
    hidden size (times two if bidirectional). Returns ``module``.
    """
    if theta is not None and xi is not None:
        raise ValueError("give at most one of theta and xi")
    if isinstance(module, (RecurrentCell, SequenceClassifier)):
        arch = _cell_of(module).arch
        if xi is not None:
            theta = _solve_theta(arch, xi, **solve_kw)
        return init_(module, theta if theta is not None else critical_theta(arch), generator)
    arch, blocks = _stock_blocks(module, layers)
    if xi is not None:
        theta = _solve_theta(arch, xi, **solve_kw)
    if theta is None:
        theta = critical_theta(arch)
    if not isinstance(theta, Theta):
        raise ValueError(f"theta must be a rnn_mft.theory.Theta, got {type(theta).__name__}")
    if theta.arch != arch:
        raise ValueError(f"theta is for arch={theta.arch!r}; a stock {type(module).__name__} needs arch={arch!r}")
    if theta.shape != ():
        raise ValueError(f"theta must be scalar for a stock module, got grid shape {theta.shape}")
    H = _hidden(module)
    stock = _arch.get(arch).stock
    for blk in blocks:
        n_in = blk["w_ih"].shape[1]
        for k, j in stock.gate_order.items():
            p = _fields(theta, k)
            sl = slice(j * H, (j + 1) * H)
            blk["w_hh"][sl].copy_(_randn((H, H), generator, 0.0, math.sqrt(p["sigma2"] / H)))
            blk["w_ih"][sl].copy_(_randn((H, n_in), generator, 0.0, math.sqrt(p["nu2"] / n_in)))
            if blk["b_ih"] is None:
                if p["mu"] != 0 or p["rho2"] != 0:
                    raise ValueError(f"the module has bias=False but theta[{k!r}] has mu={p['mu']}, "
                                     f"rho2={p['rho2']}; allowed: 0 and 0")
                continue
            if k in stock.input_bias_only:      # b_hh is gated inside the update: the whole bias in b_ih
                blk["b_ih"][sl].copy_(_randn((H,), generator, p["mu"], math.sqrt(p["rho2"])))
                blk["b_hh"][sl].zero_()
            else:
                half = math.sqrt(p["rho2"] / 2.0)
                blk["b_ih"][sl].copy_(_randn((H,), generator, p["mu"], half))
                blk["b_hh"][sl].copy_(_randn((H,), generator, 0.0, half))
    return module


@torch.no_grad()
def chrono_init_(module, t_max: float, generator: torch.Generator | None = None):
    r"""Chrono initialization (Tallec & Ollivier 2018) as a baseline.

    :math:`b_f = \log U(1, T_{max} - 1)` and, where there is an input gate, :math:`b_i = -b_f`;
    all other parameters as :func:`standard_init_` (our cells) or as they are (stock modules,
    whose other biases are set to zero). For the GRU and minimal RNN only ``b_f`` is set: the
    weight of the new input is :math:`1 - \sigma(u_f)` already. Stock GRUs: ``b_z`` is ``b_f``.
    """
    import numbers
    if isinstance(t_max, bool) or not isinstance(t_max, numbers.Real) or not math.isfinite(float(t_max)) \
            or not float(t_max) > 2:
        raise ValueError(f"t_max={t_max!r} must be a finite number > 2 (b_f = log U(1, t_max - 1))")
    t_max = float(t_max)
    if isinstance(module, (RecurrentCell, SequenceClassifier)):
        cell = standard_init_(_cell_of(module), generator)
        a = _arch.get(cell.arch)
        if a.forget_gate is None:
            raise ValueError(f"chrono initialization needs a forget gate; arch={cell.arch!r} has none (allowed: "
                             f"{', '.join(n for n in _arch.names() if _arch.get(n).forget_gate)})")
        bf = cell.gate(a.forget_gate).b
        bf.copy_(_uniform(bf.shape, generator, 1.0, t_max - 1.0).log_())
        if a.input_gate is not None:
            cell.gate(a.input_gate).b.copy_(-bf)
        return module
    arch, blocks = _stock_blocks(module, None)
    a = _arch.get(arch)
    if a.forget_gate is None:
        raise ValueError(f"chrono initialization needs a forget gate; a stock {type(module).__name__} "
                         f"(arch={arch!r}) has none")
    H = _hidden(module)
    order = a.stock.gate_order
    for blk in blocks:
        if blk["b_ih"] is None:
            raise ValueError("chrono initialization needs biases; the module has bias=False")
        blk["b_ih"].zero_()
        blk["b_hh"].zero_()
        f = slice(order[a.forget_gate] * H, (order[a.forget_gate] + 1) * H)
        blk["b_ih"][f].copy_(_uniform((H,), generator, 1.0, t_max - 1.0).log_())
        if a.input_gate is not None:
            blk["b_ih"][order[a.input_gate] * H:(order[a.input_gate] + 1) * H].copy_(-blk["b_ih"][f])
    return module


# ------------------------------------------------------------------------------------------
# stock modules
# ------------------------------------------------------------------------------------------
_CELLS = (nn.LSTMCell, nn.GRUCell, nn.RNNCell)          # one layer: weight_ih, not weight_ih_l0


def _hidden(module) -> int:
    return module.hidden_size


def _stock_blocks(module, layers):
    """(arch, [{w_ih, w_hh, b_ih, b_hh} per layer/direction]) of a stock module."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a rnn_mft.nets cell/classifier or a stock torch.nn module, got "
                         f"{type(module).__name__}")
    arch = _arch.for_stock(module).name
    if isinstance(module, _CELLS):
        if layers not in (None, [0], (0,)):
            raise ValueError(f"layers={layers!r} is not allowed for a single cell; allowed: None")
        return arch, [dict(w_ih=module.weight_ih.data, w_hh=module.weight_hh.data,
                           b_ih=module.bias_ih.data if module.bias else None,
                           b_hh=module.bias_hh.data if module.bias else None)]
    if isinstance(module, nn.LSTM) and module.proj_size:
        raise ValueError(f"proj_size={module.proj_size} is not supported (recurrent weights are then not square); "
                         f"allowed: 0")
    L = module.num_layers
    if layers is None:
        layers = range(L)
    bad = [l for l in layers if not (isinstance(l, int) and 0 <= l < L)]
    if bad:
        raise ValueError(f"layers={list(layers)!r}: layer {bad[0]!r} is not allowed; allowed: 0..{L - 1}")
    blocks = []
    for l in layers:
        for sfx in ([""] + (["_reverse"] if module.bidirectional else [])):
            g = lambda n: getattr(module, f"{n}_l{l}{sfx}").data  # noqa: E731
            blocks.append(dict(w_ih=g("weight_ih"), w_hh=g("weight_hh"),
                               b_ih=g("bias_ih") if module.bias else None,
                               b_hh=g("bias_hh") if module.bias else None))
    return arch, blocks


def theta_of_module(module, empirical: bool = False, layer: int = 0) -> Theta:
    r"""The effective Theta of a module.

    ``empirical=False`` (stock modules only): the Theta of PyTorch's *default* initialization,
    where every weight and both biases are :math:`U(-k, k)`, :math:`k = 1/\sqrt{H}`, of variance
    :math:`k^2/3 = 1/(3H)`. Hence, for every gate,

    .. math::
        \sigma_k^2 = H \cdot \tfrac{1}{3H} = \tfrac13,\quad
        \nu_k^2 = N_{in} \cdot \tfrac{1}{3H} = \tfrac{N_{in}}{3H},\quad
        \mu_k = 0,\quad \rho_k^2 = \tfrac{2}{3H}\ (\text{two bias vectors}).

    (The entries are uniform, not Gaussian; the mean-field theory only sees their variance.
    For the GRU's ``r2``, :math:`b_{hn}` is multiplied by the reset gate; the value above counts
    it fully, i.e. it is exact when :math:`r = 1` and an upper bound otherwise.)

    ``empirical=True``: estimated from the current weights of layer ``layer`` (stock modules,
    first direction) or of the cell (our models, member 0): :math:`\hat\sigma_k^2 = N\,
    \overline{W_k^2}`, :math:`\hat\nu_k^2 = N_{in}\,\overline{U_k^2}` (zero mean is part of the
    model), and :math:`\hat\mu_k, \hat\rho_k^2` the mean and variance of the total bias
    (``bias_ih + bias_hh``; for the GRU's ``r2`` ``b_in + b_hn``).
    """
    if isinstance(module, (RecurrentCell, SequenceClassifier)):
        if not empirical:
            raise ValueError("theta_of_module(empirical=False) describes PyTorch's default init of stock modules; "
                             "for our cells use empirical=True")
        cell = _cell_of(module)
        gates = {}
        for k in cell.gates:
            W, U, b = (a.detach().double() for a in cell.gate(k, member=0))
            gates[k] = dict(sigma2=cell.n_hidden * W.pow(2).mean().item(),
                            nu2=cell.n_in * U.pow(2).mean().item(),
                            mu=b.mean().item(), rho2=b.var(unbiased=False).item())
        return Theta(cell.arch, gates)
    arch, blocks = _stock_blocks(module, None if isinstance(module, _CELLS) else [layer])
    H = _hidden(module)
    blk = blocks[0]
    n_in = blk["w_ih"].shape[1]
    if not empirical:
        rho2 = 2.0 / (3 * H) if module.bias else 0.0
        return Theta.uniform(arch, sigma2=1.0 / 3.0, nu2=n_in / (3.0 * H), rho2=rho2, mu=0.0)
    gates = {}
    for k, j in _arch.get(arch).stock.gate_order.items():
        sl = slice(j * H, (j + 1) * H)
        W, U = blk["w_hh"][sl].double(), blk["w_ih"][sl].double()
        if blk["b_ih"] is None:
            b = torch.zeros(H, dtype=torch.float64)
        else:
            b = blk["b_ih"][sl].double() + blk["b_hh"][sl].double()
        gates[k] = dict(sigma2=H * W.pow(2).mean().item(), nu2=n_in * U.pow(2).mean().item(),
                        mu=b.mean().item(), rho2=b.var(unbiased=False).item())
    return Theta(arch, gates)
