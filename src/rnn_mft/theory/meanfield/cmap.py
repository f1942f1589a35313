r"""The correlation map of eq. (7) as Mehler series, its stable fixed point :math:`C^*`, and
:math:`\chi` (eq. (8)).

Every gate function of a :class:`~rnn_mft.arch.Spec` is affine in one base function (sigma or
tanh, :data:`_AFFINE`), so the map needs one Mehler series per gate
(:mod:`rnn_mft.theory.hermite`), evaluated on a whole grid at once (:class:`CMap`);
:func:`solve_c` finds the stable root by safeguarded Newton.
"""
from __future__ import annotations

import numpy as np

from ...arch import DERIV, SPECS, Spec
from .. import hermite as _h
from ..theta import ARCHS, Theta
from .algebra import _base, _derived, _nodes
from .gates import _safe_corr, check_sigma_z, gate_moment
from .gauss import C_MIN_ORDER, C_NODES_FACTOR, MAX_NODES, finite_max, nodes_for

__all__ = ["CMap", "solve_c", "EXTRA_ROUNDINGS"]

#: The float64 error model of 1 - chi (:meth:`CMap.one_minus_chi`). Each term of chi (eq. (8))
#: is a product of a few Horner evaluations of Mehler series of degree M (2M roundings) whose
#: coefficients are nq-point Gauss-Hermite sums; by the standard bound for sums and Horner's rule
#: (Higham, *Accuracy and Stability of Numerical Algorithms*, gamma_n = n eps / (1 - n eps)) its
#: error is at most ``gamma_n * sum |term|`` with ``n = 2 M + nq + EXTRA_ROUNDINGS`` (the products,
#: the division by Var(s) and the final subtraction). Measured errors are far below it (the 1 - chi
#: of chi at C* = 1 against the cancellation-free form, 1440 points: at most 125 eps * sum |term|
#: with M = 266, nq = 400, where the bound is 948 eps).
EXTRA_ROUNDINGS = 16
EPS = float(np.finfo(float).eps)


def _om_values(mean, var, x):
    """sigma(-u), sigma'(u) = sigma(u) sigma(-u) at the nodes ``u = mean + sqrt(var) x``, both to a
    few ulps *relative* for any u (one exp: e = exp(-|u|), sigma(-|u|) = e / (1 + e)). The library's
    sigma(u) = (1 + tanh(u/2))/2 is exact to a few ulps of 1, so 1 - sigma(u) from it loses every
    digit once sigma(u) > 1 - 1e-16 (mu_f > 37)."""
    u = _nodes(mean, var, x)
    e = np.abs(u)
    np.negative(e, out=e)
    np.exp(e, out=e)                                   # e = exp(-|u|) in (0, 1]
    d = 1.0 + e
    om = np.where(u > 0, e / d, 1.0 / d)
    ds = e / (d * d)
    return om, ds

#: every gate function as ``const + coef * base``: the C map then needs one Mehler series per
#: gate, of its base function (e.g. E[sig(u_a)(1 - sig(u_b))] = E sig - E[sig(u_a) sig(u_b)])
_AFFINE = {"zero": (0.0, 0.0, None), "one": (1.0, 0.0, None), "sig": (0.0, 1.0, "sig"),
           "omsig": (1.0, -1.0, "sig"), "tanh": (0.0, 1.0, "tanh")}


def _bases(spec: Spec) -> dict:
    """``{gate: base function}`` of the gates whose pair expectations the C map needs."""
    uses = {"f": [spec.alpha, spec.beta]}
    if spec.gru:
        uses["r"] = ["sig"]                 # g_r = sigma(u_r) enters u_r2 (eqs. (17a)-(17b))
    for g, name in spec.T:
        uses.setdefault(g, []).append(name)
    out = {}
    for g, names in uses.items():
        bs = {_AFFINE[nm][2] for nm in names} - {None}
        if len(bs) > 1:
            raise NotImplementedError(f"gate {g!r}: functions {names} have no common base function")
        if bs:
            out[g] = bs.pop()
    return out


class CMap:
    r"""The correlation map :math:`C_s \mapsto \mathcal{M}_C(\mu^*, Q^*, C_s)` of eq. (7) and its
    derivative (eq. (8)) at a fixed :math:`(\mu^*, Q^*)`, through Mehler series of every gate.

    Each gate k needs :math:`\mathbb{E}[a(u_{k,a}) b(u_{k,b})]` for a few functions a, b that are
    all affine in one base function h (sigma or tanh, :data:`_AFFINE`); with
    :math:`a = c_a + k_a h`: :math:`\mathbb{E}[a_a b_b] = c_ac_b + (c_ak_b + k_ac_b)\mathbb{E}h
    + k_ak_b P_k(C_k)`, where :math:`P_k(C) = \mathbb{E}[h(u_a)h(u_b)]` is one Mehler series per gate
    (:class:`~rnn_mft.theory.hermite.PairSeries`). The series of the gates whose correlation
    follows from eq. (4b) directly are evaluated together (:class:`~rnn_mft.theory.hermite.SeriesStack`);
    the GRU's r2 (eq. (17b)) after them. With ``nq`` unset, the coefficients are integrated with
    :data:`C_NODES_FACTOR` x :func:`nodes_for`'s order (``order``; it also sets M = 2/3 order);
    the gate values at these nodes are kept in ``values`` (reused by :func:`jacobian_moments`).
    """

    def __init__(self, theta: Theta, mu, q, sigma_z, R=1.0, M=None, nq=None):
        self.theta, self.spec = theta, SPECS[theta.arch]
        self.mu, self.q = np.asarray(mu, float), np.asarray(q, float)
        self.var_s = self.q - self.mu**2
        self.sz, self.R = check_sigma_z(sigma_z), R
        spec = self.spec
        means, vars_ = {}, {}
        for k in ARCHS[theta.arch]:
            if k == "r2":
                continue
            p = theta[k]
            means[k], vars_[k] = p.mu, gate_moment(p, self.q, R)
        vmax = finite_max(*vars_.values())           # a diverged point does not set the order
        if nq is None:                  # automatic: C_NODES_FACTOR x the rule's order (see there)
            order = max(nodes_for(vmax), C_MIN_ORDER)
            nq = int(min(np.ceil(C_NODES_FACTOR * order), MAX_NODES))
        else:
            order = nq
        if M is None:
            M = int(min(order * 2 // 3, 320))
        self.order, self.M, self.nq = order, M, nq
        x, w, H = _h.hermite_weights(M, nq)
        self.x, self.w, self.H = x, w, H
        self.bases = _bases(spec)
        self.series, self.Eh, self.Ehh = {}, {}, {}
        self.values = {}                                # {(gate, function): values at the nodes}
        # 1 - chi without cancellation (one_minus_chi): alpha = sigma(u_f), beta = 1 - alpha or 1
        # (minimal, GRU, peephole LSTM): every term of 1 - chi is written through o = sigma(-u_f),
        # whose Mehler series is built from accurate values of o (_om_values); the forget gate's
        # series of sigma is then taken from the same coefficients (sigma = 1 - o: -o_n for n >= 1)
        self.om = None
        self._last = None
        n_round = 2 * self.M + self.nq + EXTRA_ROUNDINGS
        self.gamma = n_round * EPS / (1.0 - n_round * EPS)                      # Higham's gamma_n
        om_path = spec.alpha == "sig" and spec.beta in ("omsig", "one") and self.bases.get("f") == "sig"
        for g, h in self.bases.items():                 # f, (GRU: r before r2), T's gates
            if g == "r2":
                p = theta["r2"]
                g2 = self.Ehh["r"]                      # E sigma(u_r)^2
                means["r2"], vars_["r2"] = p.mu, gate_moment(p, self.q, R, gain=g2)   # eq. (17a)
            if g == "f" and om_path:
                self._add_f_om(means["f"], vars_["f"])
            else:
                self._add(g, h, means[g], vars_[g])
        self.means, self.vars = means, vars_
        self.direct = [g for g in self.bases if g != "r2"]
        self.stack = _h.SeriesStack([self.series[g] for g in self.direct])
        self.ET = np.ones(())
        for g, name in spec.T:
            self.ET = self.ET * self._mean(g, name)

    def _add(self, g, h, m, v):
        """Mehler series of E[h(u_a) h(u_b)] for gate g (pre-activation mean m, variance v)."""
        vals = {}

        def get(nm):                                    # h and h' at the nodes: one tanh
            if nm not in vals:
                vals[nm] = _derived(get, nm, lambda b: _base(b, m, v, self.x))
            return vals[nm]

        fh, dh = get(h), get(DERIV[h])
        self.values.update({(g, nm): a for nm, a in vals.items()})
        coef = fh @ self.H.T                            # f_n = E[h He_n] / sqrt(n!)
        self.Ehh[g] = np.einsum("...j,...j,j->...", fh, fh, self.w)       # P_g(1) = E h^2
        d1 = np.asarray(v) * np.einsum("...j,...j,j->...", dh, dh, self.w)   # P_g'(1), eq. (19)
        self.series[g] = _h.PairSeries(coef, coef, self.Ehh[g], d1)
        self.Eh[g] = coef[..., 0]                       # E h (He_0 = 1)

    def _add_f_om(self, m, v):
        """:meth:`_add` for the forget gate from o = sigma(-u_f): the series of o (``self.om``, for
        :meth:`one_minus_chi`) and of sigma = 1 - o (``self.series["f"]``), from one set of
        coefficients (o_n = E[o He_n] / sqrt(n!); sigma_n = -o_n for n >= 1, sigma_0 = 1 - o_0)."""
        om, ds = _om_values(m, v, self.x)
        sg = 1.0 - om
        self.values.update({("f", "sig"): sg, ("f", "dsig"): ds, ("f", "omsig"): om})
        co = om @ self.H.T
        d1 = np.asarray(v) * np.einsum("...j,...j,j->...", ds, ds, self.w)     # P'(1), eq. (19), both
        self.om = _h.PairSeries(co, co, np.einsum("...j,...j,j->...", om, om, self.w), d1)
        self.E_om = co[..., 0]                                                 # E o
        coef = np.negative(co)
        coef[..., 0] += 1.0
        self.Ehh["f"] = np.einsum("...j,...j,j->...", sg, sg, self.w)          # E sigma^2
        self.series["f"] = _h.PairSeries(coef, coef, self.Ehh["f"], d1)
        self.Eh["f"] = coef[..., 0]                                            # E sigma = 1 - E o

    def _mean(self, g, name):
        c, k, _ = _AFFINE[name]
        return c + k * self.Eh[g] if k else c

    def _pair(self, g, a, b, P, dP):
        """E[a(u_a) b(u_b)] for gate g and its derivative in C_s, from P_g = E[h_a h_b] and dP_g/dC_s."""
        (ca, ka, _), (cb, kb, _) = _AFFINE[a], _AFFINE[b]
        val = ca * cb + ((ca * kb + ka * cb) * self.Eh[g] if (ca * kb + ka * cb) else 0.0)
        if not ka * kb:
            return val, 0.0
        return val + ka * kb * P[g], (ka * kb * dP[g] if dP else 0.0)

    def _corr(self, k, S):
        p = self.theta[k]
        return _safe_corr(gate_moment(p, S, self.R, self.sz), self.vars[k])

    def _dcorr(self, k):
        p = self.theta[k]
        v = self.vars[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, p.sigma2 * self.var_s / np.where(v > 0, v, 1.0), 0.0)

    def __call__(self, C, deriv: bool = False):
        """:math:`\\mathcal{M}_C(C)` (and its derivative :math:`\\chi(C)` of eq. (8))."""
        sp, th = self.spec, self.theta
        C = np.asarray(C, float)
        S = self.var_s * C + self.mu**2                  # E[s_a s_b] = Sigma_s^2 C + mu_s^2
        # gate correlations (eq. (4b)) and the per-gate series P_k(C_k), with dP_k/dC_s
        Ck = np.stack(np.broadcast_arrays(*[self._corr(g, S) for g in self.direct]))
        out = self.stack(Ck, deriv)
        vals, ders = out if deriv else (out, None)
        P = dict(zip(self.direct, vals))
        dP = {g: ders[i] * self._dcorr(g) for i, g in enumerate(self.direct)} if deriv else {}
        if "r2" in self.bases:                           # GRU: u_r2 correlation from eq. (17b)
            p = th["r2"]
            v2 = self.vars["r2"]
            Gv = P["r"]
            cov = gate_moment(p, S, self.R, self.sz, gain=Gv)                # eq. (17b)
            C2 = _safe_corr(cov, v2)
            if deriv:
                with np.errstate(divide="ignore", invalid="ignore"):
                    dC2 = np.where(v2 > 0, p.sigma2 * (dP["r"] * S + Gv * self.var_s)
                                   / np.where(v2 > 0, v2, 1.0), 0.0)
                P["r2"], d2 = self.series["r2"](C2, True)
                dP["r2"] = d2 * dC2
            else:
                P["r2"] = self.series["r2"](C2)
        Paa = self._pair("f", sp.alpha, sp.alpha, P, dP)
        Pab = self._pair("f", sp.alpha, sp.beta, P, dP)
        Pbb = self._pair("f", sp.beta, sp.beta, P, dP)
        # T_ab = prod_k E[phi_k(u_ka) phi_k(u_kb)] and its derivative in C_s
        Ts = [self._pair(g, name, name, P, dP) for g, name in sp.T]
        Tab = np.ones(())
        for v, _ in Ts:
            Tab = Tab * v
        Eab = Paa[0] * S + 2 * Pab[0] * self.ET * self.mu + Pbb[0] * Tab
        with np.errstate(divide="ignore", invalid="ignore"):
            Mc = (Eab - self.mu**2) / self.var_s
        if not deriv:
            return Mc
        dT = np.zeros(())
        for i in range(len(Ts)):
            term = Ts[i][1]
            for j, (v, _) in enumerate(Ts):
                if j != i:
                    term = term * v
            dT = dT + term
        terms = (Paa[1] * S, Paa[0] * self.var_s, 2 * Pab[1] * self.ET * self.mu, Pbb[1] * Tab, Pbb[0] * dT)
        dE = terms[0] + terms[1] + terms[2] + terms[3] + terms[4]
        with np.errstate(divide="ignore", invalid="ignore"):
            chi = dE / self.var_s
        # what one_minus_chi needs of this evaluation (references to arrays made anyway)
        fi = self.direct.index("f") if "f" in self.direct else None
        self._last = dict(S=S, terms=terms, Tab=Tab, dT=dT, chi=chi,
                          Cf=None if fi is None else Ck[fi])
        return Mc, chi

    def one_minus_chi(self, last: dict | None = None):
        r"""``(1 - chi, error)`` at the C of the last ``__call__(C, deriv=True)`` (or of the saved
        ``last``): error is the float64 error bound ``gamma_n * sum |term|`` (:data:`EXTRA_ROUNDINGS`).

        With :math:`\alpha = \sigma(u_f)` and :math:`\beta = 1 - \alpha` (minimal, GRU) or 1
        (peephole LSTM), every term is written through :math:`o = \sigma(-u_f)`:
        :math:`1 - \mathbb{E}[\alpha_a\alpha_b] = 2\mathbb{E}o - P_o(C_f)`,
        :math:`\mathbb{E}[\beta_a\beta_b] = P_o(C_f)` and the derivative terms
        :math:`\pm\,\partial_C P_o`, with :math:`P_o(C) = \mathbb{E}[o(u_{fa})o(u_{fb})]` a Mehler
        series of o evaluated from accurate values of o (:func:`_om_values`). No term is a
        difference of numbers near 1, so the relative error stays at a few eps for any mu_f (at
        mu_f = 50, 1 - chi = 4e-22 to 14 digits, where 1 - chi from chi is rounding noise).
        Otherwise (vanilla, registered architectures): ``1 - chi``, with the error of chi's terms.
        """
        L = self._last if last is None else last
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            vs = self.var_s
            if self.om is None or L["Cf"] is None:
                omc = 1.0 - L["chi"]
                tot = sum(np.abs(t) for t in L["terms"]) / np.abs(vs) + np.abs(omc)
                return omc, self.gamma * tot
            Cf = L["Cf"]
            # at C_f = 1 the series equals its exact end values E o^2, Var(u_f) E sigma'^2 (eq. (19)):
            # take them (no Horner rounding, no evaluation)
            one = Cf == 1.0
            if np.all(one):
                Po, dPo = self.om.v1 + 0.0 * Cf, self.om.d1 + 0.0 * Cf
            else:
                Po, dPo = self.om(Cf, True)
                if np.any(one):
                    Po = np.where(one, self.om.v1, Po)
                    dPo = np.where(one, self.om.d1, dPo)
            dPf = dPo * self._dcorr("f")                                      # dP_f/dC_s = dP_o/dC_s
            A0 = 2.0 * self.E_om - Po                                         # 1 - E[alpha_a alpha_b]
            S, Tab, dT = L["S"], L["Tab"], L["dT"]
            if self.spec.beta == "omsig":
                R = (dPf * S, -2.0 * dPf * self.ET * self.mu, dPf * Tab, Po * dT)
            else:                                                             # beta = 1
                R = (dPf * S, dT + 0.0 * dPf)
            Rs = (R[0] + R[1] + R[2] + R[3]) if len(R) == 4 else (R[0] + R[1])
            omc = A0 - Rs / vs
            err = self.gamma * (np.abs(A0) + sum(np.abs(r) for r in R) / np.abs(vs))
        return omc, err


def solve_c(cmap: CMap, tol: float = 1e-13, max_iter: int = 200, info: dict | None = None):
    """The stable fixed point C* of eq. (7): safeguarded Newton in the bracket [-1, 1].

    The map is convex on [0, 1] (Appendix B, Lemma 3), so Newton from the left (where
    M_C(C) > C) increases monotonically to the smallest root, the stable one; bisection keeps
    the bracket if an iterate misbehaves. At Sigma_z = 1, C = 1 is a fixed point; where
    chi(1) <= 1 it is the stable one and is returned directly. Every map evaluation carries chi,
    so the first one (at C = 0) is also the first Newton step, and chi at C* is that of the
    last, converged evaluation.
    Returns ``(c, chi, residual, iterations)``; with an ``info`` dict, also puts
    ``one_minus_chi`` and its float64 error bound ``one_minus_chi_err`` there
    (:meth:`CMap.one_minus_chi`, from the same evaluations as chi).
    """
    shape = np.broadcast_shapes(cmap.var_s.shape, cmap.sz.shape, cmap.theta.shape)
    one = np.ones(shape)
    szb = np.broadcast_to(cmap.sz, shape)
    at_one = np.zeros(shape, dtype=bool)
    last1 = None
    if np.any(szb == 1.0):
        m1, chi1 = cmap(one, deriv=True)
        last1 = cmap._last
        at_one = (szb == 1.0) & (chi1 <= 1.0 + 1e-12)
    lo, hi = -one.copy(), one.copy()
    c = np.zeros(shape)
    m, d = cmap(c, deriv=True)
    neg = (m - c) < 0
    if np.any(neg):                       # start from the left end where M_C(0) < 0
        hi = np.where(neg, 0.0, hi)
        c = np.where(neg, -1.0, c)
        m, d = cmap(c, deriv=True)
    it = 0
    converged = False
    for it in range(max_iter):
        if it > 0:
            m, d = cmap(c, deriv=True)
        r = m - c
        done = (np.abs(r) < tol) | at_one
        if np.all(done):
            converged = True
            break
        lo = np.where(r > 0, c, lo)
        hi = np.where(r < 0, c, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            cn = c - r / (d - 1.0)
        bad = ~np.isfinite(cn) | (cn <= lo) | (cn >= hi) | (d - 1.0 >= 0)
        cn = np.where(bad, 0.5 * (lo + hi), cn)
        c = np.where(done, c, cn)
    if not converged:                      # c moved after the last evaluation
        m, d = cmap(c, deriv=True)
    if info is not None:
        omc, err = cmap.one_minus_chi() if not np.all(at_one) else (None, None)
        if np.any(at_one):
            omc1, err1 = cmap.one_minus_chi(last1)
            omc = omc1 if omc is None else np.where(at_one, omc1, omc)
            err = err1 if err is None else np.where(at_one, err1, err)
        info["one_minus_chi"], info["one_minus_chi_err"] = (np.broadcast_to(omc, shape).copy(),
                                                            np.broadcast_to(err, shape).copy())
    if np.any(at_one):
        c = np.where(at_one, 1.0, c)
        m, d = np.where(at_one, m1, m), np.where(at_one, chi1, d)
    res = np.where(at_one, 0.0, np.abs(m - c))
    return c, d, res, it

