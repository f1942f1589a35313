r"""The LSTM's correlation time scale for :math:`0 \le \Sigma_z < 1`: the joint law of :math:`(c_a, c_b)`.

Two copies ``a``, ``b`` of one untied LSTM (the same weights at every step, inputs of
correlation :math:`\Sigma_z`) are, at large N, a population of independent units, each carrying
the pair :math:`(c_a, c_b)`. At every step the gate pre-activation pairs
:math:`(u_k^a, u_k^b)` are fresh jointly Gaussian (the paper's eqs. (3)-(4)): mean
:math:`\mu_k`, variance :math:`v_k = \sigma_k^2 Q_h + \nu_k^2 R + \rho_k^2`, covariance

.. math:: c_k = \sigma_k^2 S + \nu_k^2 R\,\Sigma_z + \rho_k^2,\qquad S = \mathbb{E}[h_a h_b]

(the raw cross moment; ``Q_h``, :math:`\mu_h` from the one-copy theory
:mod:`rnn_mft.theory.lstm_cellstate`). Each unit's pair is the Markov chain
:math:`c^x{}' = F^x c^x + G^x` (:math:`x = a, b`), :math:`F = \sigma(u_f)`,
:math:`G = \sigma(u_i)\tanh(u_r)`, with :math:`(F^a, F^b)` and :math:`(G^a, G^b)` correlated.

**Discretisation.** The transition operator :math:`(P\varphi)(x, y) = \mathbb{E}\,\varphi(F^a x +
G^a, F^b y + G^b)` is discretised on the tensor product of the one-copy sinh grid with its
local Lagrange interpolation (``JointSettings.order``: 10-point stencils), :math:`P = A_F A_G`.
For each exchangeable pair :math:`(X^a, X^b)` (:math:`X = F`, or :math:`G`) the marginal law is compressed to an ``m``-point Gauss rule
:math:`(x_p, w_p)` and the joint law to the weights
:math:`W_{pq} = w_p w_q \sum_{k,l<m} p_k(x_p)\,\mathbb{E}[p_k(X^a)p_l(X^b)]\,p_l(x_q)`
(:math:`p_k` the orthonormal polynomials of the marginal): exact for every
:math:`\mathbb{E}[f(X^a)g(X^b)]` with polynomials of degree < m, exact marginals, a product
measure when the pair is independent. :math:`A = \sum_{p,q} W_{pq}\,S_p\otimes S_q` (:math:`S_p`
the 1-D interpolation matrix of :math:`c \mapsto x_p c` or :math:`c + x_p`), written through the
eigen-decomposition of :math:`W` as a sum of ``m`` Kronecker squares. The pair law of
:math:`G = XY` is built from the compressed pair laws of :math:`X = \sigma(u_i)` and
:math:`Y = \tanh(u_r)` (independent gates). Everything is exchangeable, so the operators are
restricted to symmetric functions (:math:`n(n+1)/2` unknowns instead of :math:`n^2`).

**Fixed point.** :math:`\pi_2(S)` is the stationary law of :math:`P(S)` (a linear solve) and

.. math:: S = \mathbb{E}[\sigma(u_o^a)\sigma(u_o^b)]\,\langle \pi_2(S), \tanh x\tanh y\rangle

is solved by a secant iteration; :math:`C^* = (S^* - \mu_h^2)/(Q_h - \mu_h^2)` (the library's
convention for ``c_s``).

**Time scale.** Linearising :math:`S_t = S^* + \delta S_t`: the law moves by
:math:`\delta\pi_{t+1} = \delta\pi_t P + \delta S_t\,v`, :math:`v = \pi_2\,\partial P/\partial S`
(a signed measure with zero marginals: the one-copy chain does not see :math:`S`), and
:math:`\delta S_{t+1} = E_o\langle\delta\pi_{t+1}, T\rangle + \alpha\,\delta S_t` with
:math:`T = \tanh\otimes\tanh`, :math:`E_o = \mathbb{E}[\sigma(u_o^a)\sigma(u_o^b)]` and
:math:`\alpha = \sigma_o^2\,\mathbb{E}[\sigma'(u_o^a)\sigma'(u_o^b)]\langle\pi_2, T\rangle`
(Price's theorem). A mode :math:`\delta S_t\propto\chi^t` solves

.. math:: 1 = \frac{\alpha}{\chi} + E_o\,\langle v, (\chi - P)^{-1} T\rangle ,

which has poles at the eigenvalues of :math:`P` on zero-marginal measures (the free decay of
the cross-copy dependence, led by about :math:`\mathbb{E}[F^aF^b]`). :math:`\chi_{C^*}` is the
largest real root (the perturbation of ``correlation_decay`` in :mod:`rnn_mft.sim.lstm_tangent`
excites every mode; the slowest one dominates the response); :math:`v\,\partial P/\partial S`
is taken by a central difference in :math:`S`, the resolvent through one eigen-decomposition of
the reduced :math:`P`. At :math:`\Sigma_z = 0` with :math:`C^* = 0` this reproduces the renewal
equation of :mod:`rnn_mft.theory.lstm_tangent` (tested), and as :math:`\Sigma_z \to 1` it rises
continuously to the :math:`\Sigma_z = 1` chi (tested; the tensor grid cannot follow the law onto the
diagonal at :math:`\Sigma_z = 1` itself).

**Accuracy and cost** (measured on the Figure 2 Theta, mu_f = 3.8, 2-core machine, 2026-11-28).
At Sigma_z = 0.6, with 10-point stencils (n_q = 24), chi = 0.9384734605, 0.9384771213,
0.9384772963, 0.9384773712, 0.9384774057, 0.9384774365 at n = 25, 31, 33, 35, 37, 45 points
per axis (C* = 0.428994 from n = 31 on): about 7e-8 from the limit at n = 35. The cubic
stencils used before gave 0.9384681036 at n = 41 (an error of 9e-6) and 0.9384753736 at n = 61
(2e-6, 18 s), their error falling roughly as n^-4. The pair rules' n_q matters at
Sigma_z = 0, where the renewal equation gives chi = 0.9346425285 (n = 201, 10-point stencils,
fine rules): the joint theory at n = 35 gives 0.9346408775, 0.9346422331, 0.9346424136,
0.9346424496 with n_q = 24, 32, 40, 56 (errors 1.6e-6, 2.9e-7, 1.1e-7, 8e-8), while at
Sigma_z = 0.6 they move chi by < 1e-8. The default (n = 35, order 10, n_q = 40) takes 1.6 s at
Sigma_z = 0 and 3.3 s at Sigma_z = 0.6 (the cubic n = 41 default before: 5.7 s); most of it is
building the reduced operator (n(n+1)/2 unknowns, dense) at each step of the S iteration.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sl

from .gauss_rules import gauss_rules_shared_weights
from .lstm_cellstate import DEFAULT as CELLSTATE_DEFAULT, CellStateModel, Settings as CellStateSettings, solve_q
from .lstm_grid import Grid, stationary_vector
from .meanfield import gate_moment
from .quadrature import gauss_hermite, sigmoid

__all__ = ["JointSettings", "JOINT_DEFAULT", "JointPoint", "solve_joint"]

_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class JointSettings:
    """Discretisation of the joint theory: ``n`` grid points per axis, ``width`` (grid half-width
    in standard deviations of the stationary cell state), ``m`` nodes of the compressed marginal
    rules, ``n_q`` Gauss-Hermite nodes per dimension for the gate pairs (24 before 2026-11-28),
    ``order`` points of the local Lagrange stencils of the one-copy grid (4: cubic, as before
    2026-11-28; the default 10 on 35 points is more accurate than cubic stencils on 61, at a
    fifth of the cost: see the module docstring)."""

    n: int = 35
    width: float = 9.0
    m: int = 16
    n_q: int = 40
    n_z: int = 16
    order: int = 10

    def __post_init__(self):
        for name in ("n", "m", "n_q", "n_z"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 8:
                raise ValueError(f"{name}={v!r} must be an integer >= 8")
        if not (np.isfinite(self.width) and self.width >= 4):
            raise ValueError(f"width={self.width!r} must be a number >= 4")
        CellStateSettings(n=self.n, order=self.order)   # the one-copy grid's check of the order
        if self.order > self.n:
            raise ValueError(f"order={self.order!r} must not exceed n={self.n!r}")


JOINT_DEFAULT = JointSettings()


def _bivariate(mu, var, cov, n_q):
    """Nodes (ua, ub) and weights of an n_q^2-point rule for the exchangeable Gaussian pair."""
    x, w = gauss_hermite(n_q)
    s = np.sqrt(max(var, 0.0))
    r = float(np.clip(cov / var, -1.0, 1.0)) if var > 0 else 1.0
    x1, x2 = np.meshgrid(x, x, indexing="ij")
    ua = mu + s * x1
    ub = mu + s * (r * x1 + np.sqrt(max(1.0 - r * r, 0.0)) * x2)
    return ua.ravel(), ub.ravel(), np.outer(w, w).ravel()


class _Joint:
    """Gate pair laws and reduced operators at one (Theta point, Q_h, S)."""

    def __init__(self, th, q, mu_h, R, sz, st: JointSettings):
        self.th, self.q, self.mu_h, self.R, self.sz, self.st = th, q, mu_h, R, sz, st
        self.var = {k: gate_moment(th[k], q, R) for k in "ifro"}                 # eq. (4a)
        # one-copy grid (the 1-D theory's construction, with this module's width)
        mod = CellStateModel(th, q, R, CellStateSettings(n=st.n, width=st.width, order=st.order))
        self.grid: Grid = mod.grid
        self.pi1 = mod.stationary()
        n = st.n
        self.I, self.J = np.triu_indices(n)        # symmetric functions: values at (i <= j)
        self.K, self.L = self.I, self.J            # the same pairs, as column (measure) indices
        c = self.grid.c
        self.T = np.tanh(c[self.I]) * np.tanh(c[self.J])

    def cov(self, k, S):
        th = self.th[k]
        return gate_moment(th, S, self.R, self.sz)                               # eq. (4b)

    def _interp(self, y):
        """(m, n, n) interpolation matrices: row j evaluates phi at y[p, j]."""
        idx, w = self.grid.weights(y)
        m, n = y.shape
        flat = (np.arange(m)[:, None, None] * n + np.arange(n)[None, :, None]) * n + idx
        return np.bincount(flat.ravel(), weights=w.ravel(), minlength=m * n * n).reshape(m, n, n)

    def _reduced(self, K, wt, perm):
        """R (sum_t wt_t K_t (x) K_perm(t)) E on symmetric functions, (npairs, npairs); K: (T, n, n),
        wt >= 0, perm an involution with wt[perm] = wt (identity: positively correlated gates,
        flipped common factors: negatively correlated). The sum is compressed to its numerical rank:
        with vec(K)^T = U s Vt (SVD), it is U H U^T, H = s Vt W Vt^T s, W = diag(wt) permuted."""
        n = self.st.n
        Mw = K.reshape(K.shape[0], n * n).T * np.sqrt(wt)[None, :]    # (n^2, T)
        s2, V = np.linalg.eigh(Mw.T @ Mw)                            # SVD through the T x T Gram
        keep = s2 > 1e-13 * s2.max()
        s, V = np.sqrt(s2[keep]), V[:, keep]
        U = (Mw @ V) / s[None, :]
        Vw = V.T / np.sqrt(wt)[None, :]                             # rows: coefficients on vec(K_t)
        H = (s[:, None] * Vw) @ (wt[:, None] * Vw[:, perm].T) * s[None, :]
        lam, Qm = np.linalg.eigh(0.5 * (H + H.T))
        keep = np.abs(lam) > 1e-15 * np.abs(lam).max()
        lam, B = lam[keep], (U @ Qm[:, keep]).T.reshape(-1, n, n)
        I, J, K_, L = self.I, self.J, self.K, self.L
        out = np.empty((I.size, K_.size))
        step = max(1, int(2e7 // (n * n * max(1, lam.size))))
        for s0 in range(0, I.size, step):
            sl_ = slice(s0, s0 + step)
            Mx = np.einsum("r,rpk,rpl->pkl", lam, B[:, I[sl_], :], B[:, J[sl_], :])
            out[sl_] = Mx[:, K_, L] + Mx[:, L, K_] * (K_ != L)
        return out

    def _split(self, k, S):
        """Common-factor form of the gate pair: u^a = mu + a z + b e^a, u^b = mu +- a z + b e^b
        (z, e^a, e^b i.i.d. N(0,1); the sign is that of the covariance)."""
        var, cov = self.var[k], self.cov(k, S)
        cov = float(np.clip(cov, -var, var))
        return self.th[k]["mu"], np.sqrt(abs(cov)), np.sqrt(max(var - abs(cov), 0.0)), cov < 0

    def operator(self, S):
        """Reduced transition P(S) = A_F A_G on symmetric functions. Given the common factors
        the two copies' gates are independent: A_F = sum_z w_z K_z (x) K_z with K_z the 1-D
        operator of c -> F c under the conditional law of u_f; likewise A_G, with the
        conditional law of G = sigma(u_i) tanh(u_r) given (z_i, z_r) compressed to an m-point
        Gauss rule."""
        st, c = self.st, self.grid.c
        x, w = gauss_hermite(st.n_q)                               # idiosyncratic parts e
        xz, wz = gauss_hermite(st.n_z)                             # common factors z
        flip = np.arange(xz.size)[::-1]
        ident = np.arange(xz.size)
        mu, a, b, neg = self._split("f", S)
        F = sigmoid(mu + a * xz[:, None] + b * x[None, :])            # (z, e)
        y = F[:, :, None] * c[None, None, :]                         # (z, e, n)
        K = np.einsum("e,zejk->zjk", w, self._interp(y.reshape(-1, c.size)).reshape(xz.size, x.size, c.size, c.size))
        AF = self._reduced(K, wz, flip if neg else ident)
        mi, ai, bi, negi = self._split("i", S)
        mr, ar, br, negr = self._split("r", S)
        X = sigmoid(mi + ai * xz[:, None] + bi * x[None, :])             # (zi, ei)
        Y = np.tanh(mr + ar * xz[:, None] + br * x[None, :])          # (zr, er)
        nz, n = xz.size, c.size
        g = (X[:, None, :, None] * Y[None, :, None, :]).reshape(nz * nz, -1)     # (zi zr, ei er)
        gn, gw = gauss_rules_shared_weights(g, np.outer(w, w).ravel(), st.m)                    # (zi zr, m)
        S_ = self._interp((c[None, :] + gn.reshape(-1)[:, None])).reshape(nz * nz, st.m, n, n)
        Ks = np.einsum("tp,tpjk->tjk", gw, S_)
        ws = np.outer(wz, wz).ravel()
        zi_p = flip if negi else ident
        zr_p = flip if negr else ident
        perm = (zi_p[:, None] * xz.size + zr_p[None, :]).ravel()
        AG = self._reduced(Ks, ws, perm)
        return AF @ AG

    def eo(self, S):
        """E[sigma(u_o^a) sigma(u_o^b)] and E[sigma'(u_o^a) sigma'(u_o^b)]."""
        th = self.th["o"]
        ua, ub, wj = _bivariate(th["mu"], self.var["o"], self.cov("o", S), self.st.n_q)
        sa, sb = sigmoid(ua), sigmoid(ub)
        return float(wj @ (sa * sb)), float(wj @ (sa * (1 - sa) * sb * (1 - sb)))

    stationary = staticmethod(stationary_vector)

    def s_map(self, S):
        P = self.operator(S)
        pi = self.stationary(P)
        return self.eo(S)[0] * float(pi @ self.T), P, pi


@dataclass(frozen=True)
class JointPoint:
    """Result of :func:`solve_joint`."""

    s_star: float        #: S* = E[h_a h_b]
    c_star: float        #: (S* - mu_h^2) / (Q_h - mu_h^2)
    chi: float           #: chi_{C*}
    q_s: float
    mu_s: float
    free_rate: float     #: largest real eigenvalue of P on zero-marginal measures excited by v
    residual: float
    converged: bool
    boundary_mass: float
    #: C* lies in [-1, 1] up to its float64 rounding and the S iteration's tolerance (then it is
    #: clipped there); False: a correlation outside [-1, 1], which the discretisation produced
    #: (the tensor grid cannot follow the law onto the diagonal as Sigma_z -> 1), and
    #: ``converged`` is False
    c_in_range: bool = True

    @property
    def stable(self) -> bool:
        """C* is a stable fixed point (0 <= chi_{C*} < 1): the point has a time scale."""
        return bool(np.isfinite(self.chi) and self.chi < 1.0)

    @property
    def method(self) -> str:
        """How :func:`rnn_mft.theory.analyze` names this point in ``info["methods"]``."""
        if not self.c_in_range:
            return (f"not covered (joint C* = {self.c_star:.6g} outside [-1, 1]: the tensor grid does not "
                    f"resolve the law of (c_a, c_b) this close to the diagonal)")
        return "two-state joint (c_a, c_b)" if self.stable else "not covered (joint C* unstable)"


def solve_joint(th, sigma_z, R=1.0, *, settings: JointSettings = JOINT_DEFAULT, tol=1e-11, max_iter=40,
                q=None, mu_h=None, s0=None) -> JointPoint:
    """C* and chi_{C*} of the joint (c_a, c_b) theory at one Theta point (``{gate: {field: v}}``)."""
    sz = float(sigma_z)
    if not (0.0 <= sz < 1.0):
        raise ValueError(f"sigma_z={sigma_z!r} must be in [0, 1) (sigma_z = 1: lstm_twostate)")
    if q is None or mu_h is None:
        q, mod, pi, _, _ = solve_q(th, R, CELLSTATE_DEFAULT, 1e-13, 60)
        mu_h = mod.Eo["s"] * float(pi @ np.tanh(mod.grid.c))
    jt = _Joint(th, q, mu_h, R, sz, settings)
    S = mu_h**2 + sz * (q - mu_h**2) if s0 is None else float(s0)
    g, P, pi = jt.s_map(S)
    best = (abs(g - S), S, P, pi)
    S_prev, r_prev, S = S, g - S, g
    conv = False
    for _ in range(max_iter):
        g, P, pi = jt.s_map(S)
        r = g - S
        if abs(r) < best[0]:
            best = (abs(r), S, P, pi)
        if abs(r) <= tol * q:
            conv = True
            break
        d = (r - r_prev) / (S - S_prev) if S != S_prev else 0.0
        Sn = S - r / d if d < 0 else g
        if not np.isfinite(Sn):
            Sn = g
        S_prev, r_prev, S = S, r, Sn
    res, S, P, pi = best
    eps = 1e-5 * q
    v = pi @ (jt.operator(S + eps) - jt.operator(S - eps)) / (2 * eps)
    Eo, Ed = jt.eo(S)
    alpha = jt.th["o"]["sigma2"] * Ed * float(pi @ jt.T)
    chi, free = _chi(P, v, jt.T, Eo, alpha, jt.I, jt.J)
    bmass = float(np.abs(pi[(jt.I < 2) | (jt.J >= settings.n - 2) | (jt.J < 2) | (jt.I >= settings.n - 2)]).sum())
    c_star = (S - mu_h**2) / (q - mu_h**2)
    # C* is a correlation: outside [-1, 1] by more than the error of S and Q_h (the S iteration's
    # tolerance tol * q, and float64 rounding gamma_N of the sums behind S, Q_h, mu_h^2 with N
    # the reduced operator's size, n(n+1)/2) it is not a solution, and not called converged
    N = settings.n * (settings.n + 1) // 2 + settings.n_q
    gam = N * _EPS / (1.0 - N * _EPS)
    c_tol = (tol * q + gam * (abs(S) + abs(q) + 2.0 * mu_h**2)) / abs(q - mu_h**2)
    in_range = bool(abs(c_star) <= 1.0 + c_tol)
    if in_range:
        c_star = float(np.clip(c_star, -1.0, 1.0))
    return JointPoint(float(S), float(c_star), float(chi), float(q), float(mu_h), float(free), float(res),
                      conv and in_range, bmass, in_range)


def _chi(P, v, T, Eo, alpha, I, J, k=6):
    """Largest real root of 1 = alpha/chi + Eo <v, (chi - P)^-1 T> (module docstring), and the
    free rate: the largest real eigenvalue of P on symmetric measures with zero marginals (v
    lies there; the subspace is invariant). Above the free rate the function is evaluated by LU
    solves; if it has no root there, the free mode is the slowest and chi is the free rate."""
    from scipy.optimize import brentq
    from scipy.sparse.linalg import LinearOperator, eigs
    n = P.shape[0]
    ng = int(J.max()) + 1
    Mg = np.zeros((ng, n))                 # marginal of a folded symmetric measure
    Mg[I, np.arange(n)] += np.where(I == J, 1.0, 0.5)
    Mg[J, np.arange(n)] += np.where(I == J, 0.0, 0.5)
    # orthogonal projector on the zero-marginal measures (an invariant subspace of P^T)
    Mp = sl.cho_factor(Mg @ Mg.T)
    proj = lambda a: a - Mg.T @ sl.cho_solve(Mp, Mg @ a)                     # noqa: E731
    op = LinearOperator((n, n), matvec=lambda a: proj(P.T @ proj(a)), dtype=float)
    lam = eigs(op, k=min(k, n - 2), which="LR", return_eigenvectors=False, tol=1e-12,
               v0=proj(np.linspace(-1.0, 1.0, n) ** 3 + 0.1))
    real = lam.real[np.abs(lam.imag) < 1e-8 * np.maximum(1.0, np.abs(lam))]
    free = float(real.max()) if real.size else float(np.max(np.abs(lam)))
    v = proj(v)                            # exactly zero marginals: no weight on the marginal modes (1, ...)
    eye = np.eye(n)

    def f(chi):
        y = sl.lu_solve(sl.lu_factor(chi * eye - P), T)
        return alpha / chi + Eo * float(v @ y) - 1.0

    lo = max(free, 1e-6)
    d = max(1e-9, 1e-7 * lo)
    xs = [max(2.0, 1.5 * lo), 1.0 + 1e-3] + list(lo + (1.0 - lo) * np.array([0.999, 0.5, 0.25, 0.1, 0.03, 0.01,
                                                                  1e-3, 1e-4]))
    xs.append(lo + d)
    fp, xp = f(xs[0]), xs[0]
    for x in xs[1:]:
        fx = f(x)
        if fx > 0 >= fp:
            return brentq(f, x, xp, xtol=1e-15, rtol=1e-14), free
        fp, xp = fx, x
    return free, free
