r"""What an architecture of Table 1 is made of, in one record (:class:`Architecture`).

An architecture is the update of eq. (1): pre-activations of the form (1a),
:math:`u_k^t = W_k s^{t-1} + U_k z^t + b_k` (the GRU also one of the form (1b)), and an
element-wise state update :math:`s^t = f(s^{t-1}, \{u_k^t\})` (1c). One :class:`Architecture`
holds, for one cell:

* ``gates`` and ``state``: the gate subscripts K (the order of :class:`~rnn_mft.theory.Theta`)
  and the names of the state's parts (``("h", "c")`` for the LSTM's tuple state);
* ``update(pre, state, ops)``: the reference update of eq. (1c), written once for every array
  library. ``pre(k, x)`` returns :math:`W_k x + U_k z^t + b_k` (eq. (1a); with ``x = g_k \circ s``
  for a variable of form (1b)), ``ops`` supplies the element-wise functions (:class:`Ops`). Run
  with :data:`NUMPY` in float64 it is *the* reference every fast path is tested against
  (:func:`rnn_mft.theory.reference_step`); run with torch operators it is the finite-width
  simulator's step (:mod:`rnn_mft.sim.networks`). Pre-activations are requested in a fixed
  order (the simulator's lazily drawn weights consume random numbers in that order);
* ``output(pre, state, new_state, ops)``: the output :math:`p^t` (Table 1, row p);
* ``spec``: the mean-field map specification (:class:`Spec`), from which
  :mod:`rnn_mft.theory.meanfield` builds the map :math:`\mathcal{M}` of eq. (6), the C map of
  eq. (7) and the Jacobian moments (eqs. (11)-(12)); ``None`` for an architecture without a
  closed-form map (the LSTM);
* ``jacobian_terms()``: the diagonal factors of the state-to-state Jacobian
  :math:`J = D_0 + \sum_k D_k W_k K_k` (eq. (10), Appendix A.2), derived from ``spec``;
* ``info``: the Table 1 column (LaTeX strings), ``storage_order`` (the gate order of the fused
  PyTorch cells of :mod:`rnn_mft.nets`) and ``bounded`` (``|s| <= 1``, so ``Q* <= 1``).

The function vocabulary of a :class:`Spec` (``"sig"``, ``"omsig"``, ``"tanh"``, ...) is
:data:`FUNCTION_NAMES`; :data:`DERIV` gives each one's derivative by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Architecture", "ArchInfo", "StockLayout", "preset", "loop_memory", "lstm_loop_memory", "autograd_memory", "Spec", "Ops", "NUMPY", "NUMPY_HARD", "FUNCTION_NAMES", "DERIV",
           "logistic", "hard_sigmoid", "derive_jacobian_terms", "monomial"]

#: Element-wise functions a :class:`Spec` may name: the logistic sigmoid and its derivative,
#: ``1 - sigma`` and ``-sigma'``, tanh and its derivative, the constants one and zero.
FUNCTION_NAMES = ("sig", "dsig", "omsig", "ndsig", "tanh", "dtanh", "one", "zero")
#: d/du of each function, by name
DERIV = {"sig": "dsig", "omsig": "ndsig", "tanh": "dtanh", "one": "zero", "zero": "zero"}


def logistic(x):
    """Logistic sigmoid :math:`1/(1+e^{-x})`, stable for large ``|x|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def hard_sigmoid(x):
    """Keras hard sigmoid :math:`\\max(0, \\min(1, 0.2x + 0.5))`."""
    return np.clip(0.2 * np.asarray(x, dtype=float) + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class Ops:
    """The element-wise functions an :attr:`Architecture.update` uses (numpy or torch)."""

    sig: Callable
    tanh: Callable
    zeros_like: Callable


#: float64 numpy reference operators (logistic sigmoid)
NUMPY = Ops(logistic, np.tanh, np.zeros_like)
#: the same with the Keras hard sigmoid for the gates (tanh is never replaced)
NUMPY_HARD = Ops(hard_sigmoid, np.tanh, np.zeros_like)


@dataclass(frozen=True)
class Spec:
    r"""Mean-field specification of an update of the form
    :math:`s' = \alpha(u_f)\,s + \beta(u_f)\prod_{k \in \mathcal{T}} \phi_k(u_k)`.

    ``alpha``, ``beta`` and the ``phi_k`` are names from :data:`FUNCTION_NAMES`; ``T`` is
    ``((gate, name), ...)``. ``gru=True``: the gate ``r2`` of ``T`` is of form (1b) with
    :math:`g_r = \sigma(u_r)` (its moments are eqs. (17a)-(17b)).
    """

    alpha: str          # function name for alpha (or "zero")
    beta: str           # function name for beta
    T: tuple            # ((gate, fname), ...): the factors of T
    gru: bool = False   # T's gate r2 is of form (1b) with g_r = sigma(u_r)

    def __post_init__(self):
        for nm in (self.alpha, self.beta, *(n for _, n in self.T)):
            if nm not in DERIV:
                raise ValueError(f"function {nm!r} is not one of {', '.join(DERIV)}")


@dataclass(frozen=True)
class ArchInfo:
    """Table 1 metadata of one architecture (LaTeX strings, as the Table 1 chapter renders them)."""

    name: str          #: column title of Table 1
    citation: str
    state: str         #: s^t
    K: str             #: set of gate subscripts
    p: str             #: output p(s^t, {u_k^t})
    g: str             #: g_k of eq. (1b) ("." when none)
    f: str             #: state update f of eq. (1c)
    update: str        #: the update written out step by step (display math)
    gates: tuple       #: gates stored in Theta (ARCHS[arch])


def monomial(coef, factors, p=0):
    """One term of a Jacobian "D" (a list of monomials ``(coef, ((gate, fname), ...), power of s)``):
    ``coef * prod_k fname_k(u_gate_k) * s**p``, as a one-element list."""
    return [(coef, tuple(factors), p)]



def derive_jacobian_terms(spec: Spec):
    r"""``(D0, [(gate, D_k, K)])`` of eq. (10) (Appendix A.2) for the update of ``spec``.

    :math:`D_0 = \alpha(u_f)`, :math:`D_f = \alpha'(u_f)\,s + \beta'(u_f)\,T`,
    :math:`D_k = \beta(u_f)\,\phi_k'(u_k)\prod_{l \ne k}\phi_l(u_l)`; ``K`` is None for a variable of
    form (1a) and ``(G, H, "r")`` for the GRU's (1b) variable, whose Jacobian term is
    :math:`D_{r_2} W_{r_2}(D_G + D_H W_r)` with :math:`G = \sigma(u_r)`, :math:`H = s\sigma'(u_r)`.
    Each D is a list of monomials ``(coef, ((gate, function), ...), power of s)``.
    """
    Tf = list(spec.T)
    D0 = [] if spec.alpha == "zero" else monomial(1.0, [("f", spec.alpha)])
    Df = []
    if spec.alpha != "zero":
        Df += monomial(1.0, [("f", DERIV[spec.alpha])], 1)
    Df += monomial(1.0, [("f", DERIV[spec.beta])] + Tf)
    terms = [("f", Df, None)]
    for i, (g, nm) in enumerate(Tf):
        others = [t for j, t in enumerate(Tf) if j != i]
        Dk = monomial(1.0, [("f", spec.beta), (g, DERIV[nm])] + others)
        if spec.gru and g == "r2":
            K = (monomial(1.0, [("r", "sig")]), monomial(1.0, [("r", "dsig")], 1), "r")
            terms.append((g, Dk, K))
        else:
            terms.append((g, Dk, None))
    return D0, terms


def _same(state, ops=None):
    return state


def _state_output(pre, state, new_state, ops):
    """p^t = s^t (the output of every architecture whose state is its output)."""
    return new_state


def preset(gates, sigma2=0.0, **fields) -> dict:
    """``{gate: {field: value}}``: every field 0 and every ``sigma2`` equal to ``sigma2``, then
    ``fields`` (``f__mu=5.0``: gate ``f``, field ``mu``) set; for an architecture's ``critical``."""
    out = {g: dict(sigma2=sigma2, nu2=0.0, rho2=0.0, mu=0.0) for g in gates}
    for key, v in fields.items():
        g, _, f = key.partition("__")
        if g not in out or f not in out[g]:
            raise ValueError(f"preset field {key!r}: gate {g!r} or field {f!r} unknown; gates {tuple(gates)!r}")
        out[g][f] = v
    return out


def loop_memory(kept: int):
    """``memory_per_step`` of a hand-fused loop that keeps ``kept * N`` values per step (states and
    gate values) besides the pre-activations ``A`` (``G N``), their gradient (training) and a copy
    of the input (``n_in``)."""
    def memory(N: int, n_in: int, training: bool, G: int) -> int:
        return kept * N + (2 if training else 1) * G * N + n_in
    return memory


def lstm_loop_memory(N: int, n_in: int, training: bool, G: int) -> int:
    """``memory_per_step`` of the fused LSTM loops: the gate buffer (4N), cell states (N) and
    outputs (N); the shared input is a view and the pre-activations are formed chunk by chunk
    inside the loop, so training and inference keep the same."""
    return 6 * N


def autograd_memory(N: int, n_in: int, training: bool, G: int) -> int:
    """Estimate for the autograd loop (no fused loop): the pre-activations and their gradient, and
    about one intermediate of ``update`` per gate, for every step (``3 G N + N + n_in``)."""
    return (3 if training else 1) * G * N + N + n_in


@dataclass(frozen=True)
class StockLayout:
    """How a stock PyTorch module stores this architecture (``torch.nn.LSTM``, ``GRU``, ``RNN``).

    ``modules``: the ``torch.nn`` class names (``("LSTM", "LSTMCell")``); ``gate_order``: Theta
    gate -> index of the gate's block in the stacked weights; ``input_bias_only``: gates whose
    ``b_hh`` is multiplied by a gate inside the update (the GRU's ``b_hn``, gated by ``r``), so
    that the whole bias is kept in ``b_ih``; ``check``: ``module -> None``, raising a ValueError
    for a module of this class that the architecture does not describe (``nn.RNN`` with ReLU).
    """

    modules: tuple
    gate_order: dict
    input_bias_only: tuple = ()
    check: Callable | None = None


@dataclass(frozen=True)
class Architecture:
    """One architecture of eq. (1): gates, reference update, mean-field spec (see the module docstring).

    Besides the update and its theory, the record holds every fact the rest of the package needs
    about the architecture, so that nothing outside :mod:`rnn_mft.arch` branches on its name:

    * ``forget_gate`` / ``input_gate``: the gate whose sigmoid multiplies the old state (the
      standard and chrono initializations set its bias) and the LSTMs' input gate (chrono sets
      :math:`b_i = -b_f`); ``None`` where there is none (the vanilla RNN's ``f`` is its only
      pre-activation, not a gate);
    * ``critical``: ``critical(sigma2, mu_f) -> {gate: {field: value}}``, the critical preset of
      Appendix C.4 (or our documented analogue) read by :meth:`rnn_mft.theory.Theta.critical`;
      ``None``: the architecture has none (``Theta.critical`` says so; solve for a time scale);
    * ``solve_bounds``: the default search box of :func:`rnn_mft.theory.solve_for_timescale`;
    * ``theory``: ``"closed_form"`` (the map built from ``spec``; the default where there is one),
      the name of a theory without closed form in :mod:`rnn_mft.theory` (``"lstm_two_state"``), or
      ``None`` (no mean-field theory: the cells and the simulator still run it); ``methods``: the values
      ``analyze(..., method=)`` accepts (the first is the default; empty: no choice);
    * ``fused``: the name of a hand-fused PyTorch loop of :mod:`rnn_mft.nets` (with its own
      backward pass, ``rnn_mft.nets._loops.FUSED_LOOPS``) written for ``storage_order``; ``None``: the
      cells run ``update`` step by step under autograd (correct, slower);
    * ``memory_per_step``: ``memory_per_step(N, n_in, training, G) -> int``, the float32 values one
      forward (and backward) pass keeps per member, step and sequence, for
      ``rnn_mft.train.ensembles.ensemble_bytes`` (:func:`loop_memory` builds the usual form); ``None``:
      the autograd loop's estimate, :func:`autograd_memory`;
    * ``stock``: how stock ``torch.nn`` modules store it (:class:`StockLayout`), or ``None``.
    """

    name: str
    gates: tuple
    update: Callable                      #: update(pre, state, ops) -> new state (eq. (1c))
    spec: Spec | None = None              #: mean-field map (None: no closed form)
    output: Callable = _state_output      #: output(pre, state, new_state, ops) -> p^t
    info: ArchInfo | None = None          #: the Table 1 column
    storage_order: tuple | None = None    #: gate order of the fused torch cells (default: gates)
    bounded: bool = True                  #: ``abs(s) <= 1``, hence Q* <= 1 bounds every gate variance
    state: tuple = ("s",)                 #: names of the state's parts (("h", "c"): a tuple state)
    observe: Callable = _same             #: state -> the array whose moments (2a)-(2c) the theory gives
    init_state: Callable = _same          #: (s0, ops) -> initial state (e.g. (h, c) for the LSTM)
    forget_gate: str | None = "f"         #: the gate whose sigmoid multiplies the old state
    input_gate: str | None = None         #: the LSTMs' input gate (chrono: b_i = -b_f)
    critical: Callable | None = None      #: (sigma2, mu_f) -> {gate: {field: value}} (Appendix C.4)
    solve_bounds: dict | None = None      #: default bounds of solve_for_timescale ({"gate.field": (lo, hi)})
    theory: str | None = None             #: "closed_form" (the default with a spec), a named theory, or None
    methods: tuple = ()                   #: analyze(method=...) choices, the default first
    fused: str | None = None              #: name of a hand-fused loop in rnn_mft.nets (None: autograd)
    memory_per_step: Callable | None = None  #: (N, n_in, training, G) -> float32 values kept per step
    stock: StockLayout | None = None      #: the layout of stock torch.nn modules of this architecture
    doc: str = field(default="", compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"architecture name={self.name!r} must be a Python identifier")
        gates = tuple(self.gates)
        if not gates or len(set(gates)) != len(gates) or not all(isinstance(g, str) for g in gates):
            raise ValueError(f"gates={self.gates!r} must be a non-empty tuple of distinct names")
        object.__setattr__(self, "gates", gates)
        if self.storage_order is None:
            object.__setattr__(self, "storage_order", gates)
        elif sorted(self.storage_order) != sorted(gates):
            raise ValueError(f"storage_order={self.storage_order!r} must be a permutation of gates={gates!r}")
        for name in ("forget_gate", "input_gate"):
            g = getattr(self, name)
            if g is not None and g not in gates:
                raise ValueError(f"{name}={g!r} of {self.name!r} is not one of its gates {gates!r}")
        if self.theory is None and self.spec is not None:
            object.__setattr__(self, "theory", "closed_form")
        if self.theory == "closed_form" and self.spec is None:
            raise ValueError(f"arch {self.name!r}: theory='closed_form' needs a spec; give spec=Spec(...) or "
                             f"the name of a theory without closed form (theory='lstm_two_state')")
        if self.critical is not None and not callable(self.critical):
            raise ValueError(f"critical={self.critical!r} of {self.name!r} must be a function (sigma2, mu_f) -> "
                             f"{{gate: {{field: value}}}}")
        if self.memory_per_step is not None and not callable(self.memory_per_step):
            raise ValueError(f"memory_per_step={self.memory_per_step!r} of {self.name!r} must be a function "
                             f"(N, n_in, training, G) -> int")
        if self.solve_bounds is None:
            fg = self.forget_gate
            object.__setattr__(self, "solve_bounds", {f"{fg}.mu": (-5.0, 15.0)} if fg else {})
        if self.stock is not None:
            if sorted(self.stock.gate_order) != sorted(gates):
                raise ValueError(f"stock.gate_order={self.stock.gate_order!r} of {self.name!r} must name every "
                                 f"gate of {gates!r} once")
            bad = [g for g in self.stock.input_bias_only if g not in gates]
            if bad:
                raise ValueError(f"stock.input_bias_only names {bad} of {self.name!r}, not gates of {gates!r}")
        if self.spec is not None:
            used = {"f"} | {g for g, _ in self.spec.T} | ({"r"} if self.spec.gru else set())
            missing = sorted(used - set(gates))
            if missing:
                raise ValueError(f"spec of {self.name!r} uses gates {missing} that are not in gates={gates!r}")

    def jacobian_terms(self):
        """Eq. (10)'s ``(D0, [(gate, D_k, K)])`` (:func:`derive_jacobian_terms` of :attr:`spec`)."""
        if self.spec is None:
            raise ValueError(f"arch={self.name!r} has no closed-form mean-field spec")
        return derive_jacobian_terms(self.spec)
