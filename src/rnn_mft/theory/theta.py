r"""Initialization hyperparameters :math:`\Theta` (Section 4.1 of the paper).

For every gate :math:`k` of an architecture, the weights and biases are drawn as

.. math::
    W_{k,ij} \sim \mathcal{N}(0, \sigma_k^2/N),\quad
    U_{k,ij} \sim \mathcal{N}(0, \nu_k^2/N),\quad
    b_{k,i} \sim \mathcal{N}(\mu_k, \rho_k^2),

and :math:`\Theta = \bigcup_k \{\sigma_k^2, \nu_k^2, \rho_k^2, \mu_k\}`. Fields are stored as
numpy arrays so that one :class:`Theta` can hold a whole grid of hyperparameters; every
function of :mod:`rnn_mft.theory` broadcasts over it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

__all__ = ["ARCHS", "FIELDS", "GateParams", "Theta", "check_arch"]

from .. import arch as _arch
from ..arch import GATES as _REGISTERED_GATES

#: Gates of each architecture, named as in Table 1 and DESIGN.md (``r2`` is the GRU's variable of
#: form (1b): u_r2 = W_r2 D_{sigma(u_r)} s + U_r2 z + b_r2). This is the architecture registry's
#: live ``{name: gates}`` dict (:data:`rnn_mft.arch.GATES`): the Table 1 architectures
#: ``vanilla, minimal, gru, peephole_lstm, lstm`` and any registered with :func:`rnn_mft.arch.register`.
ARCHS: dict[str, tuple[str, ...]] = _REGISTERED_GATES

#: Per-gate fields: recurrent weight variance, input weight variance, bias variance, bias mean.
FIELDS: tuple[str, ...] = ("sigma2", "nu2", "rho2", "mu")
_NONNEG = ("sigma2", "nu2", "rho2")


def check_arch(arch: str) -> str:
    """Return ``arch`` if it is a known architecture, else raise a ValueError naming the choices."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture arch={arch!r}; allowed: {', '.join(ARCHS)}")
    return arch


def _field(gate: str, name: str, value) -> np.ndarray:
    try:
        # bool, text, bytes, complex: not a real number
        arr = None if np.asarray(value).dtype.kind in "bUSc" else np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None:
        raise ValueError(f"Theta[{gate!r}].{name}={value!r} must be a real number (or an array of them)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"Theta[{gate!r}].{name}={value!r} must be finite")
    if name in _NONNEG and np.any(arr < 0):
        raise ValueError(f"Theta[{gate!r}].{name}={value!r} is a variance and must be >= 0")
    return arr


@dataclass(frozen=True)
class GateParams:
    """Hyperparameters of one gate; each field is a float array (any broadcastable shape)."""

    sigma2: np.ndarray
    nu2: np.ndarray
    rho2: np.ndarray
    mu: np.ndarray

    def as_dict(self) -> dict:
        return {f: (getattr(self, f).item() if getattr(self, f).ndim == 0 else getattr(self, f).tolist())
                for f in FIELDS}


class Theta:
    """Hyperparameters of an architecture: one :class:`GateParams` per gate.

    Parameters
    ----------
    arch : str
        One of :data:`ARCHS`.
    gates : mapping
        ``{gate: {"sigma2": ..., "nu2": ..., "rho2": ..., "mu": ...}}``. Every gate of ``arch``
        must be present; a missing field is 0; an unknown gate or field is an error. Values may be
        scalars or arrays (broadcast together, e.g. for a grid).

    Examples
    --------
    >>> th = Theta("gru", {"f": dict(sigma2=1, nu2=1, mu=2), "r": dict(sigma2=1, nu2=1),
    ...                    "r2": dict(sigma2=1, nu2=1)})
    >>> th["f"].mu
    array(2.)
    """

    def __init__(self, arch: str, gates: Mapping[str, Mapping[str, object]]):
        self.arch = check_arch(arch)
        if not isinstance(gates, Mapping):
            raise ValueError(f"gates must be a mapping gate -> fields, got {type(gates).__name__}")
        allowed = ARCHS[arch]
        unknown = [g for g in gates if g not in allowed]
        if unknown:
            raise ValueError(f"unknown gate {unknown[0]!r} for arch={arch!r}; allowed gates: {', '.join(allowed)}")
        missing = [g for g in allowed if g not in gates]
        if missing:
            raise ValueError(f"missing gate {missing[0]!r} for arch={arch!r}; required gates: {', '.join(allowed)}")
        params = {}
        for g in allowed:
            fields = gates[g]
            if isinstance(fields, GateParams):
                fields = {f: getattr(fields, f) for f in FIELDS}
            if not isinstance(fields, Mapping):
                raise ValueError(f"gate {g!r} must map fields ({', '.join(FIELDS)}) to numbers, got "
                                 f"{json.dumps(fields) if isinstance(fields, (int, float, str, list, type(None))) else type(fields).__name__}")
            bad = [f for f in fields if f not in FIELDS]
            if bad:
                raise ValueError(f"unknown field {bad[0]!r} in gate {g!r}; allowed fields: {', '.join(FIELDS)}")
            params[g] = GateParams(**{f: _field(g, f, fields.get(f, 0.0)) for f in FIELDS})
        self.gates: dict[str, GateParams] = params
        # Fails early if the fields do not broadcast together.
        try:
            self.shape = np.broadcast_shapes(*(getattr(p, f).shape for p in params.values() for f in FIELDS))
        except ValueError:
            shapes = ", ".join(f"{g}.{f}: {getattr(p, f).shape}" for g, p in params.items() for f in FIELDS
                               if getattr(p, f).shape != ())
            raise ValueError(f"the fields of Theta({arch!r}) must broadcast to one shape; got {shapes}") from None

    # -- access ---------------------------------------------------------------------------
    def __getitem__(self, gate: str) -> GateParams:
        try:
            return self.gates[gate]
        except KeyError:
            raise ValueError(f"unknown gate {gate!r} for arch={self.arch!r}; allowed gates: "
                             f"{', '.join(ARCHS[self.arch])}") from None

    def __iter__(self):
        return iter(self.gates)

    def __repr__(self) -> str:
        body = ", ".join(f"{g}={p.as_dict()}" for g, p in self.gates.items())
        return f"Theta({self.arch!r}, {body})"

    def __eq__(self, other) -> bool:
        return (isinstance(other, Theta) and other.arch == self.arch and all(
            np.array_equal(getattr(self[g], f), getattr(other[g], f)) for g in self for f in FIELDS))

    # -- building new Thetas --------------------------------------------------------------
    def to_dict(self) -> dict:
        """``{gate: {field: value}}`` with plain Python numbers (or nested lists on a grid)."""
        return {g: p.as_dict() for g, p in self.gates.items()}

    def replace(self, values: Mapping[str, object] | None = None, **kw) -> "Theta":
        """A copy with some fields replaced, addressed as ``"gate.field"``.

        >>> Theta.uniform("gru", sigma2=1.0).replace({"f.mu": 3.0})["f"].mu
        array(3.)
        """
        values = dict(values or {}, **kw)
        d = {g: {f: getattr(p, f) for f in FIELDS} for g, p in self.gates.items()}
        for key, v in values.items():
            gate, _, field = key.partition(".")
            if gate not in d:
                raise ValueError(f"unknown gate {gate!r} in {key!r}; allowed gates: {', '.join(d)}")
            if field not in FIELDS:
                raise ValueError(f"unknown field {field!r} in {key!r}; allowed fields: {', '.join(FIELDS)}")
            d[gate][field] = v
        return Theta(self.arch, d)

    @classmethod
    def uniform(cls, arch: str, sigma2=0.0, nu2=0.0, rho2=0.0, mu=0.0, **per_gate) -> "Theta":
        """Every gate with the same fields; ``per_gate`` (``f={"mu": 1}``) overrides single gates."""
        check_arch(arch)
        gates = {g: dict(sigma2=sigma2, nu2=nu2, rho2=rho2, mu=mu) for g in ARCHS[arch]}
        for g, over in per_gate.items():
            if g not in gates:
                raise ValueError(f"unknown gate {g!r} for arch={arch!r}; allowed gates: {', '.join(gates)}")
            if not isinstance(over, Mapping):
                raise ValueError(f"{g}={over!r} must map fields ({', '.join(FIELDS)}) to numbers")
            gates[g].update(over)
        return cls(arch, gates)

    @classmethod
    def grid(cls, base: "Theta", axes: Mapping[str, Iterable[float]]) -> "Theta":
        """An outer-product grid over ``axes`` (``{"gate.field": values}``), in the given order.

        The result's fields have shape ``(len(v1), len(v2), ...)`` (``indexing="ij"``).
        """
        names = list(axes)
        for k in names:
            if isinstance(axes[k], (str, bytes)) or not isinstance(axes[k], (Iterable, np.ndarray)):
                raise ValueError(f"axes[{k!r}]={axes[k]!r} must be a sequence of values")
        vals = [np.asarray(list(axes[k]) if not isinstance(axes[k], np.ndarray) else axes[k], dtype=float)
                for k in names]
        mesh = np.meshgrid(*vals, indexing="ij") if vals else []
        shape = mesh[0].shape if mesh else ()
        th = base.replace({k: m for k, m in zip(names, mesh)})
        # broadcast the untouched fields too, so that every field has the grid's shape
        d = {g: {f: np.broadcast_to(getattr(p, f), shape).copy() for f in FIELDS} for g, p in th.gates.items()}
        return cls(base.arch, d)

    def index(self, idx) -> "Theta":
        """The Theta at one grid position (or a sub-grid), e.g. ``theta.index((2, 3))``."""
        d = {g: {f: np.broadcast_to(getattr(p, f), self.shape)[idx] for f in FIELDS} for g, p in self.gates.items()}
        return Theta(self.arch, d)

    # -- the paper's initializations (Appendix C.4, C.5) -----------------------------------
    @classmethod
    def standard(cls, arch: str, n_in: int | None = None, n_hidden: int | None = None,
                 mu_f: float | None = None) -> "Theta":
        r"""The standard initialization of Appendix C.5, read in the mean-field convention.

        * Recurrent matrices orthogonal: every row has unit norm, the mean-field variance
          :math:`\sigma_k^2/N` per entry with :math:`\sigma_k^2 = 1` (C.5 notes i.i.d. Gaussian
          with variance 1/N behaves the same).
        * Input kernels Glorot uniform, fused over the gates as in Keras (kernel of shape
          ``(n_in, G N)``, G the number of gates: 4 for the LSTMs, 3 for the GRU, 2 minimal, 1 vanilla): entry
          variance :math:`2/(n_{in} + G N)`, i.e. :math:`\nu_k^2 = 2 n_{in}/(n_{in} + G N)`
          in the convention :math:`U_{k,ij} \sim \mathcal{N}(0, \nu_k^2/n_{in})`. Without sizes,
          ``n_in = n_hidden`` is assumed: :math:`\nu_k^2 = 2/(1 + G)`.
        * Biases zero except the forget gate, :math:`\mu_f = 1`; :math:`\rho_k^2 = 0`. The GRU
          and the minimal RNN get the same :math:`\mu_f = 1` on their keep gate
          (:math:`\sigma(u_f)` multiplies :math:`s^{t-1}`, as the LSTM's forget gate); the
          vanilla RNN has no gate and gets :math:`\mu_f = 0`. In general the bias goes to the
          architecture's ``forget_gate`` (:class:`rnn_mft.arch.Architecture`), default 1, and
          without one to its first pre-activation, default 0.
        """
        check_arch(arch)
        a = _arch.get(arch)
        G = len(a.gates)
        if (n_in is None) != (n_hidden is None):
            raise ValueError("give both n_in and n_hidden, or neither (then n_in = n_hidden)")
        if n_in is None:
            nu2 = 2.0 / (1.0 + G)
        else:
            for name, v in (("n_in", n_in), ("n_hidden", n_hidden)):
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                    raise ValueError(f"{name}={v!r} must be a positive integer")
            nu2 = 2.0 * n_in / (n_in + G * n_hidden)
        if mu_f is None:
            mu_f = 0.0 if a.forget_gate is None else 1.0
        return cls.uniform(arch, sigma2=1.0, nu2=nu2, rho2=0.0, mu=0.0, **{a.forget_gate or a.gates[0]: {"mu": mu_f}})

    @classmethod
    def critical(cls, arch: str, mu_f: float | None = None, sigma2: float = 1e-5) -> "Theta":
        r"""The critical initialization of Appendix C.4, or our documented analogue: the
        architecture's ``critical`` preset (:class:`rnn_mft.arch.Architecture`).

        ``peephole_lstm`` (C.4): :math:`\mu_f = 5`, all :math:`\sigma_k^2 = 10^{-5}`, every other
        field 0 (no input weights).

        ``lstm`` (C.4, unrolled CIFAR-10): :math:`\nu_f^2 = \nu_r^2 = \sigma_o^2 = \mu_f = 1`,
        :math:`\sigma_i^2 = \sigma_f^2 = \sigma_r^2 = 10^{-5}`, every other field 0.

        ``gru`` (our analogue, following Section 4.4: all :math:`\sigma_k^2 \to 0`, large
        :math:`\mu_f`): :math:`\sigma_k^2 = 10^{-5}`, :math:`\mu_f = 5`, and
        :math:`\nu_{r_2}^2 = 1` so that the input reaches the candidate state (with no input at
        all the GRU state decays to 0); other fields 0.

        ``minimal`` (same analogue): :math:`\sigma_k^2 = 10^{-5}`, :math:`\mu_f = 5`,
        :math:`\nu_r^2 = 1`.

        ``vanilla``: the edge of chaos of the tanh RNN (Poole et al. 2016, Schoenholz et al. 2016)
        at vanishing bias and input variance, :math:`\sigma_f^2 = 1`, :math:`\nu_f^2 = 10^{-4}`
        (a small input keeps :math:`Q^* > 0`), other fields 0; ``sigma2`` and ``mu_f`` are ignored.

        ``mu_f`` overrides the forget-gate bias mean; ``sigma2`` the small recurrent variance. An
        architecture registered without a preset raises a ValueError (solve for a time scale
        instead: :func:`rnn_mft.theory.solve_for_timescale`).
        """
        check_arch(arch)
        try:
            s2 = float(sigma2)
        except (TypeError, ValueError):
            raise ValueError(f"sigma2={sigma2!r} must be a finite number >= 0") from None
        a = _arch.get(arch)
        if a.critical is None:
            raise ValueError(f"arch={arch!r} was registered without a critical preset (Architecture.critical); "
                             f"give a Theta, or solve one for a time scale with solve_for_timescale({arch!r}, xi=...)")
        return cls(arch, a.critical(s2, mu_f))

    # -- files ----------------------------------------------------------------------------
    @classmethod
    def from_json(cls, arch: str, path_or_text) -> "Theta":
        """Read ``{gate: {sigma2, nu2, rho2, mu}}`` from a JSON file path or a JSON string."""
        raw = str(path_or_text)
        try:
            text = raw if raw.lstrip().startswith("{") else Path(raw).read_text()
            data = json.loads(text)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            hint = "" if raw.lstrip().startswith("{") else " (text not starting with '{' is read as a file name)"
            raise ValueError(f"cannot read Theta JSON from {str(path_or_text)!r}: {exc}{hint}") from None
        if not isinstance(data, dict):
            raise ValueError(f"Theta JSON must map gate names to objects, got {type(data).__name__}")
        return cls(arch, data)

    def to_json(self, path=None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text
