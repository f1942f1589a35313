r"""Mean-field theory of the closed-form architectures: vanilla, minimal, GRU, peephole LSTM.

All four updates of Table 1 have the form

.. math:: s^t = \alpha(u_f^t)\, s^{t-1} + \beta(u_f^t)\, T^t,\qquad
          T^t = \prod_{k \in \mathcal{T}} \phi_k(u_k^t),

with ``(alpha, beta, T)`` = ``(0, tanh, 1)`` (vanilla), ``(sigma, 1 - sigma, tanh(u_r))``
(minimal), ``(sigma, 1 - sigma, tanh(u_r2))`` (GRU) and ``(sigma, 1, sigma(u_i) tanh(u_r))``
(peephole LSTM, s = c). At large N with untied weights the pre-activations of different gates
are independent Gaussians, independent of :math:`s^{t-1}` (eqs. (3)-(5)), so all moments factor
into one- and two-dimensional Gaussian integrals per gate:

.. math::
    \mu_s' &= \mathbb{E}\alpha\,\mu_s + \mathbb{E}\beta\,\mathbb{E}T,\qquad
    Q_s' = \mathbb{E}\alpha^2\, Q_s + 2\mathbb{E}[\alpha\beta]\mathbb{E}T\,\mu_s
           + \mathbb{E}\beta^2\,\mathbb{E}T^2, \\
    \mathbb{E}[s_a' s_b'] &= \mathbb{E}[\alpha_a\alpha_b](\Sigma_s^2 C_s + \mu_s^2)
      + 2\mathbb{E}[\alpha_a\beta_b]\mathbb{E}T\,\mu_s + \mathbb{E}[\beta_a\beta_b]\mathbb{E}[T_aT_b],

which is the map :math:`\mathcal{M}` of eq. (6) (gate moments from eqs. (4a)-(4b), the GRU's
:math:`u_{r_2}` from eqs. (17a)-(17b)). Its fixed point :math:`(\mu^*, Q^*)` solves a scalar
equation in :math:`Q` (:math:`\mu` is explicit given :math:`Q`); :math:`C^*` solves the 1-D map
eq. (7), which we write as a Mehler series in the gate correlations
(:mod:`rnn_mft.theory.hermite`), so that the map and its derivative :math:`\chi` (eq. (8)) are
polynomials evaluated on the whole grid at once.

The state-to-state Jacobian is :math:`J = D_0 + \sum_k D_k W_k` (eq. (10)) with
:math:`D_0 = \alpha(u_f)`, :math:`D_f = \alpha'(u_f) s + \beta'(u_f) T`,
:math:`D_k = \beta(u_f)\,\partial T/\partial u_k`; for the GRU the (1b) term is
:math:`D_{r_2} W_{r_2} (D_{\sigma(u_r)} + D_{s\sigma'(u_r)} W_r)`. Its moments are eqs. (11)-(12)
(:func:`jacobian_moments`), with the second moment from free probability (see
:func:`jacobian_moments` for the derivation) and the printed eq. (14) kept as ``m2_printed``.

The architectures' specifications ``(alpha, beta, T)`` come from the registry
(:mod:`rnn_mft.arch`; :data:`SPECS` is its live ``{name: Spec}``). The package:

* :mod:`.algebra`: the string-keyed function algebra and forward-mode duals;
* :mod:`.gauss`: the Gauss-Hermite node rule (:func:`nodes_for`) and a caching integrator;
* :mod:`.gates`: the gate moments of eq. (4) (:func:`gate_moment`, the one place it is written)
  and :func:`gate_stats`;
* :mod:`.qmap`: the map of eq. (6) by direct quadrature (:func:`step`, :func:`trajectory`) and
  the Newton solve of :math:`Q^*` (:func:`solve_q`);
* :mod:`.cmap`: the C map of eq. (7) as Mehler series (:class:`CMap`, :func:`solve_c`);
* :mod:`.fixedpoint`: :func:`closed_form_fixed_point` (= ``fixed_point``);
* :mod:`.jacobian`: :func:`closed_form_jacobian_moments` (= ``jacobian_moments``) and
  :func:`state_moments`.
"""
from __future__ import annotations

# The private names below are re-exported on purpose: the single module this package replaced had
# them, and gru.py, lstm.py, the tests and benchmarks/theory.py use them (``mf._q_map``, ``mf._Gauss1``, ...).
from ...arch import DERIV, SPECS, Spec  # noqa: F401
from .algebra import FUNCS, _base, _derived, _Dual, _nodes, _sig
from .gauss import (C_MIN_ORDER, C_NODES_FACTOR, MAX_NODES, Q_ORDER_FACTOR, _Gauss1, _q_nodes, _stein_weights,
                    node_rule, nodes_for)
from .gates import (_flat, _gate_var_max, _max_var, _safe_corr, _take, _var_corr, check_R, check_sigma_z,
                    gate_moment, gate_stats)
from .qmap import Q_DIST_TOL, VAR_RESOLVED, _q_map, q_converged, solve_q, step, trajectory
from .cmap import _AFFINE, CMap, _bases, solve_c
from .fixedpoint import FixedPointResult, closed_form_fixed_point, fixed_point
from .jacobian import (_expect, _prod, closed_form_jacobian_moments, jacobian_moments, jacobian_terms,
                       state_moments)
from ...arch import BUILTIN as _BUILTIN
from ...arch import monomial as _mono

__all__ = ["CLOSED_FORM", "Spec", "SPECS", "check_sigma_z", "check_R", "nodes_for", "node_rule", "gate_moment",
           "gate_stats", "step", "trajectory", "solve_q", "CMap", "solve_c", "fixed_point",
           "closed_form_fixed_point", "jacobian_moments", "closed_form_jacobian_moments", "jacobian_terms",
           "state_moments", "FixedPointResult", "FUNCS", "DERIV", "Q_ORDER_FACTOR", "C_NODES_FACTOR",
           "C_MIN_ORDER", "MAX_NODES", "Q_DIST_TOL", "VAR_RESOLVED", "q_converged"]

#: the Table 1 architectures with a closed-form map (every registered one with a ``spec`` is in :data:`SPECS`)
CLOSED_FORM = tuple(n for n in _BUILTIN if n in SPECS)
