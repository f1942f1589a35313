r"""Moments of the state-to-state Jacobian, eqs. (10)-(12) and (14), for the closed-form architectures.

The Jacobian's diagonal factors come from the architecture registry
(:meth:`rnn_mft.arch.Architecture.jacobian_terms`, Appendix A.2) as sums of monomials
``(coef, ((gate, function), ...), power of s)``; :func:`_expect` integrates them over one unit
(gates independent of each other and of the state), with the state's moments from
:func:`state_moments`. :func:`closed_form_jacobian_moments` (historical name
``jacobian_moments``) returns m1, m2 (free probability) and the printed eq. (14); the LSTM's
counterpart, from Algorithm 1's samples, is :func:`rnn_mft.theory.lstm.jacobian_moments`.
"""
from __future__ import annotations

from math import comb

import numpy as np

from ...arch import SPECS, Spec, get as _get_arch
from ...arch import monomial as _mono
from ..theta import ARCHS, Theta
from .gates import gate_moment
from .gauss import _Gauss1, finite_max, nodes_for

__all__ = ["jacobian_terms", "state_moments", "closed_form_jacobian_moments", "jacobian_moments"]


def _prod(*Ds):
    out = [(1.0, (), 0)]
    for D in Ds:
        out = [(c1 * c2, f1 + f2, p1 + p2) for (c1, f1, p1) in out for (c2, f2, p2) in D]
    return out


def _expect(G: _Gauss1, D, smom):
    """E over one unit of a sum of monomials: gates independent, s independent of the gates."""
    tot = 0.0
    for c, factors, p in D:
        by = {}
        for g, nm in factors:
            by.setdefault(g, []).append(nm)
        v = c * smom[p]
        for g, names in by.items():
            if "zero" in names:
                v = 0.0 * v
                break
            v = v * G.E(g, names)
        tot = tot + v
    return tot


def jacobian_terms(arch: str):
    """``(D0, [(gate, D_k, K)])`` of eq. (10) for ``arch``: :meth:`rnn_mft.arch.Architecture.jacobian_terms`."""
    return _get_arch(arch).jacobian_terms()


def state_moments(G: _Gauss1, spec: Spec, mu, q, pmax: int = 4):
    """Moments E[s^p], p <= pmax, of the stationary state: the perpetuity s = A s + B
    (A = alpha(u_f), B = beta(u_f) T) gives m_p (1 - E A^p) = sum_{j<p} C(p,j) E[A^j B^(p-j)] m_j."""
    m = {0: np.ones_like(np.asarray(q, float)), 1: np.asarray(mu, float), 2: np.asarray(q, float)}
    for p in range(3, pmax + 1):
        acc = 0.0
        for j in range(p):
            fac = [("f", spec.alpha)] * j + [("f", spec.beta)] * (p - j)
            for g, nm in spec.T:
                fac += [(g, nm)] * (p - j)
            acc = acc + comb(p, j) * _expect(G, _mono(1.0, fac), m) * (m[j] if j > 0 else 1.0)
        EAp = _expect(G, _mono(1.0, [("f", spec.alpha)] * p), m) if spec.alpha != "zero" else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            m[p] = acc / (1.0 - EAp)
    return m


def closed_form_jacobian_moments(theta: Theta, mu, q, R=1.0, n: int | None = None, values: dict | None = None):
    r"""m1 (eqs. (11)-(12)), m2 from free probability, and m2 as printed in eq. (14).

    With :math:`J = D_0 + \sum_k D_k W_k K_k` (:math:`K_k = I` for (1a) variables,
    :math:`K = D_{\sigma(u_r)} + D_{s\sigma'(u_r)} W_r` for the GRU's (1b) variable), independent
    Ginibre :math:`W_k` (entries of variance :math:`\sigma_k^2/N`) and diagonal :math:`D`'s whose
    entries are functions of one unit, only non-crossing Wick pairings survive at large N:

    .. math::
        m_1 &= \mathbb{E}[D_0^2] + \sum_k \sigma_k^2 t_k\,\mathbb{E}[D_k^2],
        \qquad t_k = \tau(K_kK_k^\top), \\
        m_2 &= \mathbb{E}\Big[\big(D_0^2 + \textstyle\sum_k \tilde a_k\big)^2\Big]
              + 2\,\mathbb{E}[D_0^2]\,\mathbb{E}\textstyle\sum_k \tilde a_k
              + \big(\mathbb{E}\textstyle\sum_k \tilde a_k\big)^2
              + \sum_k \sigma_k^4\, \mathbb{E}[D_k^2]^2\,(v_k - t_k^2),

    with :math:`\tilde a_k = \sigma_k^2 t_k D_k^2` and :math:`v_k = \tau((K_kK_k^\top)^2)`
    (:math:`t = v = 1` for (1a); for the GRU :math:`t = \mathbb{E}g^2 + \sigma_r^2\mathbb{E}H^2`,
    :math:`v = \mathbb{E}g^4 + 2\sigma_r^2(\mathbb{E}[g^2H^2] + \mathbb{E}g^2\mathbb{E}H^2)
    + \sigma_r^4(\mathbb{E}H^4 + (\mathbb{E}H^2)^2)`, :math:`g = \sigma(u_r)`,
    :math:`H = s\sigma'(u_r)`). The printed eq. (14), :math:`\mathbb{E}\sum_{k,l}2a_ka_l - a_0^2`
    with the per-unit :math:`a_k` of eq. (12), replaces :math:`(\mathbb{E}\sum\tilde a)^2 +
    2\mathbb{E}D_0^2\,\mathbb{E}\sum\tilde a` by the same-unit :math:`\mathbb{E}[(\sum a)^2]
    - \mathbb{E}[a_0^2]`-type terms and so over-counts by roughly :math:`\mathrm{Var}(\sum_k a_k)
    - \mathrm{Var}(a_0)`; the two agree when the :math:`a_k` do not fluctuate across units.

    ``values`` (``{(gate, function): values at the nodes}``, e.g. :attr:`CMap.values` of the C map
    at the same (mu, Q) with ``n = cmap.nq``) are reused instead of recomputed.

    Returns ``(m1, m2, m2_printed)``, arrays over the grid.
    """
    arch = theta.arch
    spec = SPECS[arch]
    mu, q = np.asarray(mu, float), np.asarray(q, float)
    means, vars_ = {}, {}
    for k in ARCHS[arch]:
        if k == "r2":
            continue
        p = theta[k]
        means[k], vars_[k] = p.mu, gate_moment(p, q, R)
    nn = nodes_for(finite_max(*vars_.values()), n)         # a diverged point does not set the order
    G = _Gauss1(means, vars_, nn)
    if values:
        G.vals.update(values)
    if spec.gru:
        p = theta["r2"]
        G.add("r2", p.mu, gate_moment(p, q, R, gain=G.E("r", ("sig", "sig"))))   # eq. (17a)
    sm = state_moments(G, spec, mu, q, 4)
    E = lambda *Ds: _expect(G, _prod(*Ds), sm)  # noqa: E731
    D0, terms = jacobian_terms(arch)
    zero = np.zeros(np.broadcast_shapes(q.shape, theta.shape))
    ED0_2 = E(D0, D0) if D0 else zero
    ED0_4 = E(D0, D0, D0, D0) if D0 else zero
    s2, t, v, ED2 = {}, {}, {}, {}
    for k, Dk, K in terms:
        s2[k] = theta[k].sigma2
        ED2[k] = E(Dk, Dk)
        if K is None:
            t[k], v[k] = 1.0, 1.0
        else:
            g, H, kr = K
            sr = theta[kr].sigma2
            Eg2, EH2 = E(g, g), E(H, H)
            t[k] = Eg2 + sr * EH2
            v[k] = E(g, g, g, g) + 2 * sr * (E(g, g, H, H) + Eg2 * EH2) + sr**2 * (E(H, H, H, H) + EH2**2)
    m1 = ED0_2 + sum(s2[k] * t[k] * ED2[k] for k, _, _ in terms)
    # E[(D0^2 + sum a~)^2]
    sq = ED0_4 + zero
    for k, Dk, _ in terms:
        if D0:
            sq = sq + 2 * s2[k] * t[k] * E(D0, D0, Dk, Dk)
        for l, Dl, _ in terms:
            sq = sq + s2[k] * s2[l] * t[k] * t[l] * E(Dk, Dk, Dl, Dl)
    Ea = sum(s2[k] * t[k] * ED2[k] for k, _, _ in terms)
    m2 = sq + 2 * ED0_2 * Ea + Ea**2 + sum(s2[k]**2 * ED2[k]**2 * (v[k] - t[k]**2) for k, _, _ in terms)
    # the printed eq. (14) with the per-unit a_k of eq. (12): a = sum_j w_j X_j^2
    A = [[(1.0, D0)]] if D0 else []
    for k, Dk, K in terms:
        if K is None:
            A.append([(s2[k], Dk)])
        else:
            g, H, kr = K
            A.append([(s2[k], _prod(Dk, g)), (s2[k] * theta[kr].sigma2, _prod(Dk, H))])

    def Eaa(a, b):
        return sum(wa * wb * E(Xa, Xa, Xb, Xb) for wa, Xa in a for wb, Xb in b)

    tot = zero
    for a in A:
        for b in A:
            tot = tot + 2 * Eaa(a, b)
    m2p = tot - (ED0_4 if D0 else 0.0)
    return m1 + zero, m2 + zero, m2p + zero


#: the historical name of :func:`closed_form_jacobian_moments`
jacobian_moments = closed_form_jacobian_moments
