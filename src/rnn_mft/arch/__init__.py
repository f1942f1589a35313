r"""The architecture registry: one module per architecture of Table 1, one place per cell.

Each module (``rnn_mft.arch.vanilla``, ``minimal``, ``gru``, ``peephole_lstm``, ``lstm``) holds, in one
:class:`Architecture` record named ``ARCH``: its gates and state, the reference update of eq. (1)
(the float64 update every fast path is tested against), its mean-field map specification
(:class:`Spec`, eq. (6)) and, derived from it, its Jacobian terms (eq. (10), Appendix A.2). The
theory (``rnn_mft.theory.meanfield``, :func:`rnn_mft.theory.analyze`), the reference update
(:func:`rnn_mft.theory.reference_step`), the finite-width simulator (:mod:`rnn_mft.sim`) and the
gate order of the fused PyTorch cells (:mod:`rnn_mft.nets`) all read them from here.

>>> from rnn_mft import arch
>>> arch.names()
('vanilla', 'minimal', 'gru', 'peephole_lstm', 'lstm')
>>> arch.get("gru").gates
('f', 'r', 'r2')

Adding an architecture is one module with an ``ARCH`` record and one :func:`register` call
(``CONTRIBUTING.md``, "Adding an architecture"; ``tests/test_arch_registry.py`` does it for a
toy cell). Registering
makes the name known to :class:`~rnn_mft.theory.Theta`, :func:`~rnn_mft.theory.analyze` (if it
has a ``spec``), :func:`~rnn_mft.theory.reference_step` and :func:`~rnn_mft.sim.simulate_pair`.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Callable

from ._base import (DERIV, FUNCTION_NAMES, NUMPY, NUMPY_HARD, ArchInfo, Architecture, Ops, Spec, StockLayout,
                    autograd_memory, derive_jacobian_terms, hard_sigmoid, logistic, loop_memory,
                    lstm_loop_memory, monomial, preset)
from . import gru, lstm, minimal, peephole_lstm, vanilla

__all__ = ["Architecture", "ArchInfo", "StockLayout", "preset", "loop_memory", "lstm_loop_memory",
           "autograd_memory", "for_stock", "Live", "Spec", "Ops", "NUMPY", "NUMPY_HARD", "FUNCTION_NAMES", "DERIV",
           "get", "register", "unregister", "names", "GATES", "SPECS", "BUILTIN", "derive_jacobian_terms",
           "logistic", "hard_sigmoid", "monomial"]

_REGISTRY: dict[str, Architecture] = {}
#: ``{name: gates}`` of every registered architecture (live: :data:`rnn_mft.theory.ARCHS` is this dict)
GATES: dict[str, tuple] = {}
#: ``{name: Spec}`` of every registered architecture with a closed-form mean-field map (live:
#: :data:`rnn_mft.theory.meanfield.SPECS` is this dict)
SPECS: dict[str, Spec] = {}
#: the five architectures of Table 1, in the paper's order
BUILTIN = ("vanilla", "minimal", "gru", "peephole_lstm", "lstm")


def register(module_or_arch, *, replace: bool = False) -> Architecture:
    """Register an architecture: a module with an ``ARCH`` attribute, or an :class:`Architecture`.

    Raises a ValueError if the name is taken (unless ``replace``; the built-in Table 1
    architectures can never be replaced). Returns the registered record.
    """
    a = getattr(module_or_arch, "ARCH", None) if isinstance(module_or_arch, ModuleType) else module_or_arch
    if not isinstance(a, Architecture):
        raise ValueError(f"register() needs an Architecture or a module with an ARCH attribute, "
                         f"got {type(module_or_arch).__name__}")
    if a.name in _REGISTRY:
        if a.name in BUILTIN and _REGISTRY[a.name] is not a:
            raise ValueError(f"arch={a.name!r} is a Table 1 architecture and cannot be replaced")
        if not replace and _REGISTRY[a.name] is not a:
            raise ValueError(f"arch={a.name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[a.name] = a
    GATES[a.name] = a.gates
    if a.spec is not None:
        SPECS[a.name] = a.spec
    else:
        SPECS.pop(a.name, None)
    return a


def unregister(name: str) -> None:
    """Remove a registered architecture (not one of :data:`BUILTIN`)."""
    if name in BUILTIN:
        raise ValueError(f"arch={name!r} is a Table 1 architecture and cannot be unregistered")
    if name not in _REGISTRY:
        raise ValueError(f"arch={name!r} is not registered; registered: {', '.join(_REGISTRY)}")
    del _REGISTRY[name]
    GATES.pop(name, None)
    SPECS.pop(name, None)


def get(name: str) -> Architecture:
    """The :class:`Architecture` registered as ``name`` (ValueError naming the choices otherwise)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown architecture arch={name!r}; allowed: {', '.join(_REGISTRY)}") from None


def for_stock(module) -> Architecture:
    """The registered architecture whose :class:`StockLayout` names ``type(module).__name__``
    (``torch.nn.LSTM`` -> the LSTM); a ValueError naming the supported classes otherwise."""
    cls = type(module).__name__
    for a in _REGISTRY.values():
        if a.stock is not None and cls in a.stock.modules:
            if a.stock.check is not None:
                a.stock.check(module)
            return a
    known = [m for a in _REGISTRY.values() if a.stock is not None for m in a.stock.modules]
    raise ValueError(f"module must be a rnn_mft.nets cell/classifier or a torch.nn {', '.join(known)}; "
                     f"got {cls}")


class Live(Mapping):
    """A read-only ``{name: make(name)}`` over the registered architectures, live: registering one
    adds it, unregistering removes it (:data:`rnn_mft.sim.STEPS`, :data:`rnn_mft.theory.TABLE1`).
    ``keep(arch)``: only the architectures it accepts. Values are made once per registered record."""

    def __init__(self, make: Callable, keep: Callable | None = None):
        self._make, self._keep, self._cache = make, keep, {}

    def _kept(self, name) -> bool:
        return name in _REGISTRY and (self._keep is None or self._keep(_REGISTRY[name]))

    def __getitem__(self, name):
        if not isinstance(name, str) or not self._kept(name):
            raise KeyError(name)
        a = _REGISTRY[name]
        hit = self._cache.get(name)
        if hit is None or hit[0] is not a:
            hit = self._cache[name] = (a, self._make(name))
        return hit[1]

    def __iter__(self):
        return iter([n for n in _REGISTRY if self._kept(n)])

    def __len__(self):
        return sum(1 for n in _REGISTRY if self._kept(n))


def names() -> tuple:
    """Names of the registered architectures (Table 1's first, in the paper's order)."""
    return tuple(_REGISTRY)


for _m in (vanilla, minimal, gru, peephole_lstm, lstm):
    register(_m)
del _m
