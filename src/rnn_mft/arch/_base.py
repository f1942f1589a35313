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

__all__ = ["Architecture", "ArchInfo", "Spec", "Ops", "NUMPY", "NUMPY_HARD", "FUNCTION_NAMES", "DERIV",
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


@dataclass(frozen=True)
class Architecture:
    """One architecture of eq. (1): gates, reference update, mean-field spec (see the module docstring)."""

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
