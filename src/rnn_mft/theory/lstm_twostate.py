r"""The LSTM as a two-state network: a deterministic mean-field theory of :math:`(h, c)`.

The paper (Appendix A.2.3) treats the LSTM as a one-state network in :math:`h`, through the
*hidden-state approximation* :math:`c = \tanh^{-1}(h/\sigma(u_o))` with
:math:`\sigma(u_o^t)/\sigma(u_o^{t-1}) \approx 1`. The network carries two states, and a
perturbation of the cell state :math:`\delta c` is remembered by each unit through the forget
gate, while :math:`\delta h` only reaches the next step through the random weights. This module
is the large-N theory of that pair, without the approximation (the book's chapter *The LSTM has
two states* derives it; ``rnn_mft.theory.lstm`` keeps the paper's method, :func:`rnn_mft.theory.sample_cell_state`, for
comparison).

**Stationary cell-state law.** With untied weights the pre-activations :math:`u_k` are fresh
Gaussians at every step (eqs. (3)-(4) with :math:`s = h`), so each unit's cell state is the
Markov chain (16), :math:`c' = F c + G` with :math:`F = \sigma(u_f)` independent of
:math:`G = \sigma(u_i)\tanh(u_r)`. Its transition operator on functions,
:math:`(P\varphi)(c) = \mathbb{E}\,\varphi(Fc + G)`, is discretised on a grid
:math:`c_j = a\sinh(t_j)` (uniform :math:`t_j`, dense where :math:`\tanh` bends, sparse in the
tails) with local cubic Lagrange interpolation in :math:`t` and Gauss-Hermite rules for
:math:`u_f` and :math:`(u_i, u_r)`: :math:`P = A_F A_G`. The stationary law is the left Perron
vector :math:`\pi P = \pi` (a linear solve, no sampling), and

.. math:: \mu_h = \mathbb{E}\sigma(u_o)\,\langle\pi, \tanh c\rangle,\qquad
          Q_h = \mathbb{E}\sigma(u_o)^2\,\langle\pi, \tanh^2 c\rangle

is solved for :math:`Q_h` (eq. (6)) by a secant iteration.

**The time scale at** :math:`\Sigma_z = 1`. Two copies with identical inputs whose states differ
by a small :math:`(\delta h, \delta c)` evolve (exactly, to first order) by

.. math::
    \delta c' = F\,\delta c + \textstyle\sum_{k\in\{i,f,r\}} \beta_k\,\delta u_k,\qquad
    \delta h' = \sigma'(u_o)\tanh(c')\,\delta u_o + \gamma\,\delta c',

with :math:`\delta u_k = W_k\delta h` (Gaussian, variance :math:`\sigma_k^2 q`,
:math:`q = \langle\delta h^2\rangle`), :math:`\beta_f = \sigma'(u_f)c`,
:math:`\beta_i = \sigma'(u_i)\tanh u_r`, :math:`\beta_r = \sigma(u_i)\tanh'(u_r)` and
:math:`\gamma = \sigma(u_o)\tanh'(c')`. The unit-level second moment
:math:`m(c) = \mathbb{E}[\delta c^2 \mid c]\,p(c)` and the population :math:`q` obey a closed
*linear* system,

.. math::
    m' = m P_2 + q\,a_p,\qquad q' = \alpha q + \beta\,\langle m', w\rangle,

with :math:`P_2` the transition weighted by :math:`F^2`, :math:`a_p` the law of :math:`c'`
weighted by :math:`A = \sum_k \sigma_k^2\beta_k^2`, :math:`w = \tanh'(c)^2`,
:math:`\alpha = \sigma_o^2\mathbb{E}\sigma'(u_o)^2\langle\pi,\tanh^2\rangle` and
:math:`\beta = \mathbb{E}\sigma(u_o)^2`. :math:`1 - C` of the two copies, and the squared norm
of the tangent, decay by its Perron root :math:`\chi`, the root above
:math:`\rho(P_2) = \mathbb{E}F^2` of

.. math:: 1 = \frac{\alpha}{\chi} + \beta\,\langle a_p, (\chi - P_2)^{-1} w\rangle .

**The time scale at** :math:`\Sigma_z = 0`. When the two copies are independent at the fixed
point (:math:`C^* = 0`: :math:`\Sigma_z = 0`, every :math:`\rho_k^2 = 0` and :math:`\mu_h^* = 0`),
the first-order cross moment :math:`S = \mathbb{E}[h_a h_b]` obeys a renewal equation (Mehler's
first term at every step): :math:`\chi` solves
:math:`\chi = (\mathbb{E}\sigma(u_o))^2 \sum_k \sigma_k^2 \sum_{\tau\ge0} \chi^{-\tau} d_k(\tau)^2`,
:math:`d_k(\tau) = \mathbb{E}[\tanh'(c^{t+\tau}) F^{t+1}\cdots F^{t+\tau}\beta_k^t]`.
Other :math:`\Sigma_z < 1` (where :math:`0 < C^* < 1`) need the joint law of :math:`(c_a, c_b)`:
:mod:`rnn_mft.theory.lstm_joint`; :func:`rnn_mft.theory.analyze` says which method each point used.

**Jacobian moments.** The state-to-state Jacobian of :math:`(h, c)` is a 2N x 2N matrix; at
large N (normalised trace over 2N)

.. math::
    m_1 = \tfrac12\,\mathbb{E}[(1+\gamma^2)S + O],\qquad
    m_2 = \tfrac12\,\mathbb{E}[(1+\gamma^2)^2S^2 + 2\gamma^2 S O + O^2]
          + \tfrac12\,(\mathbb{E}[(1+\gamma^2)A + O])^2,

with :math:`S = F^2 + A` and :math:`O = \sigma_o^2\sigma'(u_o)^2\tanh^2(c')`. Lemma 1 does not
hold for two states: :math:`m_1 \ne \chi` in general.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .quadrature import gauss_hermite, sigmoid as _sig
from .meanfield import check_R, check_sigma_z, gate_moment, nodes_for
from .theta import Theta
from .lstm_twostate_chi import _chi_one, _chi_zero, _moments  # noqa: F401  (importable from here)

__all__ = ["Settings", "DEFAULT", "FAST", "TwoStatePoint", "solve_point", "fixed_point", "stationary_law"]


@dataclass(frozen=True)
class Settings:
    """Discretisation of the two-state theory (the defaults give chi to 1e-7 or better, tested).

    n : number of cell-state grid points; n_f : Gauss-Hermite nodes for u_f; n_g : nodes per
    dimension for (u_i, u_r) (None: chosen from the gate variances, as everywhere in the library); n_c : nodes of the Gauss rule to which the law of
    G = sigma(u_i) tanh(u_r) is compressed; n_o : nodes for u_o; width : half-width of the grid in standard
    deviations of the stationary cell state (plus its mean and 2); order : points of the local
    Lagrange stencil in t (4: cubic; :data:`FAST`'s 8 reaches the same accuracy on a 5x coarser
    grid, see ``rnn_mft.theory.lstm_twostate_batch``).
    """

    n: int = 201
    n_f: int | None = None
    n_g: int | None = None
    n_o: int | None = None
    n_c: int = 20
    width: float = 14.0
    order: int = 4

    def __post_init__(self):
        if isinstance(self.order, bool) or not isinstance(self.order, (int, np.integer)) \
                or self.order not in (4, 6, 8, 10):
            raise ValueError(f"order={self.order!r} must be one of 4, 6, 8, 10 (points of the Lagrange stencil)")
        if not (np.isfinite(self.width) and self.width >= 4):
            raise ValueError(f"width={self.width!r} must be a number >= 4")
        for name in ("n", "n_f", "n_g", "n_o", "n_c"):
            v = getattr(self, name)
            if v is None and name in ("n_f", "n_g", "n_o"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 8:
                raise ValueError(f"{name}={v!r} must be an integer >= 8" + (" or None" if name in ("n_f", "n_g", "n_o") else ""))

    def nodes(self, name, var):
        """Gauss-Hermite order for a gate of variance ``var``: the fixed setting, or the
        library's rule for tanh/sigmoid expectations (:func:`meanfield.nodes_for`, at least 48)."""
        v = getattr(self, name)
        return int(v) if v is not None else max(48, nodes_for(var))


DEFAULT = Settings()
#: the discretisation of the batched grid path (:func:`fixed_point`, ``analyze("lstm", ...)``): a
#: 35-point grid with 10-point Lagrange stencils and 8-node G rules; the Gauss-Hermite orders
#: per point from its variance bound (``rnn_mft.theory.lstm_twostate_batch.point_orders``).
#: Measured against ``Settings(n=801, n_f=300, n_g=400, n_o=400, n_c=40, width=18)`` on the
#: test sets of ``tests/test_theory_lstm_twostate.py`` and of the benchmark grid, at R = 1 and 2:
#: max |chi error| below 5e-7 (target 1e-6).
FAST = Settings(n=35, n_c=8, order=10)


def _dsig(u):
    s = _sig(u)
    return s * (1.0 - s)


def _gauss_rule(x, w, m):
    """An ``m``-point Gauss rule for the discrete measure ``sum_b w_b delta(x_b)`` (w >= 0):
    nodes and weights that integrate polynomials of degree < 2m exactly (Lanczos with full
    reorthogonalisation on diag(x), i.e. the Stieltjes procedure). Fewer nodes where the
    measure has fewer points of support."""
    w = np.asarray(w, float)
    tot = w.sum()
    if not tot > 0:
        return np.zeros(0), np.zeros(0)
    x = np.asarray(x, float)
    shift = float(w @ x) / tot
    xs = x - shift
    v = np.sqrt(w / tot)
    V = np.zeros((m, x.size))
    a, b = np.zeros(m), np.zeros(m)
    V[0] = v
    k_used = m
    for k in range(m):
        y = xs * V[k]
        a[k] = V[k] @ y
        y -= V[: k + 1].T @ (V[: k + 1] @ y)
        y -= V[: k + 1].T @ (V[: k + 1] @ y)
        if k + 1 < m:
            nb = float(np.linalg.norm(y))
            if nb <= 1e-13 * (1.0 + np.abs(xs).max()):
                k_used = k + 1
                break
            b[k] = nb
            V[k + 1] = y / nb
    J = np.diag(a[:k_used]) + np.diag(b[: k_used - 1], 1) + np.diag(b[: k_used - 1], -1)
    lam, U = np.linalg.eigh(J)
    return lam + shift, tot * U[0] ** 2


def lagrange_weights(s, n, p):
    """Stencil indices (..., p) and weights (..., p) of p-point Lagrange interpolation at the
    fractional node positions ``s`` (0 <= s <= n - 1), the stencil centred on s."""
    i0 = np.clip(np.floor(s).astype(np.int64) - (p // 2 - 1), 0, n - p)
    u = s - i0
    # w_k(u) = prod_{j != k} (u - j) / (k - j): prefix and suffix products of (u - j)
    d = u[..., None] - np.arange(p, dtype=float)
    left = np.ones_like(d)
    right = np.ones_like(d)
    for k in range(1, p):
        left[..., k] = left[..., k - 1] * d[..., k - 1]
        right[..., p - 1 - k] = right[..., p - k] * d[..., p - k]
    den = np.array([np.prod([k - j for j in range(p) if j != k]) for k in range(p)], float)
    return i0[..., None] + np.arange(p), left * right / den


class _Grid:
    """Cell-state nodes c_j = a sinh(t_j) and local Lagrange interpolation in t (``order``
    points: 4 is cubic)."""

    def __init__(self, L, a, n, order=4):
        self.a, self.n, self.order = a, n, order
        self.T = np.arcsinh(L / a)
        self.t = np.linspace(-self.T, self.T, n)
        self.dt = self.t[1] - self.t[0]
        self.c = a * np.sinh(self.t)
        self.L = L

    def weights(self, y):
        """Indices (..., p) and Lagrange weights (..., p) of the values at ``y`` (clamped to the
        grid), p = ``order``."""
        s = (np.arcsinh(np.clip(y, -self.L, self.L) / self.a) + self.T) / self.dt
        if self.order != 4:
            return lagrange_weights(s, self.n, self.order)
        i0 = np.clip(np.floor(s).astype(np.int64) - 1, 0, self.n - 4)
        u = s - i0
        u1, u2, u3 = u - 1.0, u - 2.0, u - 3.0
        w = np.stack([-u1 * u2 * u3 / 6.0, u * u2 * u3 / 2.0, -u * u1 * u3 / 2.0, u * u1 * u2 / 6.0], axis=-1)
        idx = i0[..., None] + np.arange(4)
        return idx, w

    def operator(self, y, wq):
        """Dense matrix M with (M phi)_j = sum_b wq[j, b] phi(y[j, b]) (phi interpolated)."""
        idx, w = self.weights(y)
        n = self.n
        rows = np.broadcast_to(np.arange(n)[:, None, None], idx.shape)
        vals = w * np.broadcast_to(wq, y.shape)[..., None]
        return np.bincount((rows * n + idx).ravel(), weights=vals.ravel(), minlength=n * n).reshape(n, n)


def stationary_vector(P):
    """The left Perron vector of a stochastic matrix ``P``: ``pi P = pi``, ``sum(pi) = 1``
    (one linear solve, the last equation replaced by the normalisation); a stack of matrices
    (..., n, n) gives the stack of vectors (..., n)."""
    n = P.shape[-1]
    M = np.swapaxes(P, -1, -2) - np.eye(n)
    M[..., -1, :] = 1.0
    rhs = np.zeros(P.shape[:-1] + (1,))
    rhs[..., -1, 0] = 1.0
    return np.linalg.solve(M, rhs)[..., 0]


class _Model:
    """Gate laws and the discretised transition at one Theta point and one Q_h."""

    def __init__(self, th, q, R, st: Settings):
        self.th, self.q, self.R, self.st = th, q, R, st
        var = {k: gate_moment(th[k], q, R) for k in "ifro"}                      # eq. (4a)
        self.var = var
        xf, wf = gauss_hermite(st.nodes("n_f", var["f"]))
        uf = th["f"]["mu"] + np.sqrt(var["f"]) * xf
        self.F, self.dF, self.wf = _sig(uf), _dsig(uf), np.asarray(wf)
        xg, wg = gauss_hermite(st.nodes("n_g", max(var["i"], var["r"])))
        ui = th["i"]["mu"] + np.sqrt(var["i"]) * xg
        ur = th["r"]["mu"] + np.sqrt(var["r"]) * xg
        si, dsi = _sig(ui)[:, None], _dsig(ui)[:, None]
        tr = np.tanh(ur)[None, :]
        dtr = 1.0 - tr**2
        self.G = (si * tr).ravel()
        self.wg = np.outer(wg, wg).ravel()
        # G = X Y with X = sigma(u_i) and Y = tanh(u_r) independent: the (weighted) laws of G are
        # sums of products of one-dimensional laws, compressed factor by factor (see _grule_key)
        self._X = (si.ravel(), dsi.ravel(), np.asarray(wg))
        self._Y = (tr.ravel(), dtr.ravel(), np.asarray(wg))
        # the (u_i, u_r) rule has n_g^2 points; the operators only need the law of G (and its
        # B-weighted versions) as measures on the line: compress each to an n_c-point Gauss rule
        self._grules = {}
        xo, wo = gauss_hermite(st.nodes("n_o", var["o"]))
        uo = th["o"]["mu"] + np.sqrt(var["o"]) * xo
        so, dso = _sig(uo), _dsig(uo)
        E = lambda v: float(np.dot(wo, v))  # noqa: E731
        self.Eo = {"s": E(so), "s2": E(so**2), "s4": E(so**4), "d2": E(dso**2), "d4": E(dso**4),
                   "s2d2": E(so**2 * dso**2)}
        # moments of the perpetuity c' = F c + G (F, G independent) set the grid
        EF, EF2 = float(wf @ self.F), float(wf @ self.F**2)
        EG, EG2 = float(self.wg @ self.G), float(self.wg @ self.G**2)
        self.EF, self.EF2 = EF, EF2
        m = EG / (1.0 - EF)
        c2 = (EG2 + 2.0 * EF * EG * m) / (1.0 - EF2)
        sd = float(np.sqrt(max(c2 - m * m, 0.0)))
        L = abs(m) + st.width * sd + 2.0
        self.grid = _Grid(L, min(1.0, max(sd, 0.05)), st.n, st.order)
        self._AF, self._AG = {}, {}

    def AF(self, key):
        """(A_F phi)(c_j) = sum_a w_a f_key(u_f,a) phi(F_a c_j)."""
        if key not in self._AF:
            fw = {"1": 1.0, "F": self.F, "F2": self.F**2, "F4": self.F**4, "d2": self.dF**2,
                  "d4": self.dF**4, "F2d2": self.F**2 * self.dF**2}[key]
            c = self.grid.c
            self._AF[key] = self.grid.operator(c[:, None] * self.F[None, :], (self.wf * fw)[None, :])
        return self._AF[key]

    def grule(self, gw):
        """Gauss rule (nodes, weights) of the measure sum_b v_b gw_b delta(G_b), gw >= 0."""
        return _gauss_rule(self.G, self.wg * gw, self.st.n_c)

    def _grule_key(self, key):
        """Gauss rule of the law of G weighted by 1, B or B^2. Each is a sum of terms
        coef * [law of X weighted by fx(u_i)] x [law of Y weighted by fy(u_r)]; every factor is
        compressed to an m-point Gauss rule (m = n_c + 4, exact for the moments of degree < 2m
        that the final n_c-point rule uses), the products laid out on m x m points, and the sum
        compressed once more. This is exact in the same moments as compressing the n_g^2-point
        tensor rule directly, at a fraction of the cost."""
        si, dsi, wx = self._X
        tr, dtr, wy = self._Y
        s2i, s2r = self.th["i"]["sigma2"], self.th["r"]["sigma2"]
        terms = {"1": [(1.0, 1.0, 1.0)],
                 "B": [(s2i, dsi**2, tr**2), (s2r, si**2, dtr**2)],
                 "B2": [(s2i**2, dsi**4, tr**4), (2 * s2i * s2r, dsi**2 * si**2, tr**2 * dtr**2),
                        (s2r**2, si**4, dtr**4)]}[key]
        m = self.st.n_c + 4
        pts, wts = [], []
        for coef, fx, fy in terms:
            if coef <= 0:
                continue
            xa, wa = _gauss_rule(si, wx * fx, m)
            yb, wb = _gauss_rule(tr, wy * fy, m)
            if xa.size == 0 or yb.size == 0:
                continue
            pts.append(np.multiply.outer(xa, yb).ravel())
            wts.append(coef * np.multiply.outer(wa, wb).ravel())
        if not pts:
            return np.zeros(0), np.zeros(0)
        return _gauss_rule(np.concatenate(pts), np.concatenate(wts), self.st.n_c)

    def AG(self, key):
        """(A_G phi)(c_j) = sum_b v_b g_key(u_i, u_r)_b phi(c_j + G_b)."""
        if key not in self._AG:
            g, wgt = self._grule_key(key)
            c = self.grid.c
            if g.size == 0:
                self._AG[key] = np.zeros((c.size, c.size))
            else:
                self._AG[key] = self.grid.operator(c[:, None] + g[None, :], wgt[None, :])
        return self._AG[key]

    def stationary(self):
        """Left Perron vector pi of P = A_F A_G, normalised to sum 1."""
        return stationary_vector(self.AF("1") @ self.AG("1"))


def _theta_point(theta: Theta, idx=()):
    return {k: {f: float(np.broadcast_to(getattr(theta[k], f), theta.shape)[idx])
                for f in ("sigma2", "nu2", "rho2", "mu")} for k in "ifro"}


def _check_theta(th):
    for k in "ifro":
        for f in ("sigma2", "nu2", "rho2", "mu"):
            v = th[k][f]
            if not np.isfinite(v) or (f != "mu" and v < 0):
                raise ValueError(f"{k}.{f}={v!r} must be finite" + (" and >= 0" if f != "mu" else ""))


def _q_map(th, q, R, st):
    mod = _Model(th, q, R, st)
    pi = mod.stationary()
    tc = np.tanh(mod.grid.c)
    return mod.Eo["s2"] * float(pi @ tc**2), mod, pi


def _solve_q(th, R, st, tol, max_iter, q0=None):
    """Q_h = G(Q_h) by a safeguarded secant iteration (G is increasing and bounded by 1)."""
    q = 0.25 if q0 is None else float(q0)
    g, mod, pi = _q_map(th, q, R, st)
    best = (abs(g - q), q, mod, pi)
    q_prev, r_prev = q, g - q
    q = g
    for it in range(max_iter):
        g, mod, pi = _q_map(th, q, R, st)
        r = g - q
        if abs(r) < best[0]:
            best = (abs(r), q, mod, pi)
        if abs(r) <= tol * max(1.0, q):
            return q, mod, pi, abs(r), it + 2
        d = (r - r_prev) / (q - q_prev) if q != q_prev else 0.0
        qn = q - r / d if d < 0 else g
        if not (np.isfinite(qn) and qn > 0):
            qn = g
        q_prev, r_prev, q = q, r, qn
    return best[1], best[2], best[3], best[0], max_iter + 1


@dataclass(frozen=True)
class TwoStatePoint:
    """Fixed point, time scale and Jacobian moments of one Theta (NaN where not covered)."""

    mu_s: float
    q_s: float
    c_s: float
    chi: float
    m1: float
    m2: float
    converged: bool
    residual: float
    method: str
    boundary_mass: float


def solve_point(theta, sigma_z=1.0, R=1.0, *, settings: Settings = DEFAULT, tol=1e-12, max_iter=60,
                q0=None) -> TwoStatePoint:
    """The two-state theory at one Theta (a scalar :class:`Theta` or ``{gate: {field: value}}``).

    ``method`` of the result: ``"two-state, C*=1"`` at Sigma_z = 1 (where C* = 1 is the stable
    fixed point, chi <= 1), ``"two-state, C*=0"`` at Sigma_z = 0 with independent copies,
    ``"two-state joint (c_a, c_b)"`` at other Sigma_z < 1 (:mod:`rnn_mft.theory.lstm_joint`), or
    ``"not covered"`` (an unstable fixed point), with NaN chi.
    """
    th = _theta_point(theta) if isinstance(theta, Theta) else theta
    _check_theta(th)
    R = check_R(R)
    sz = float(check_sigma_z(sigma_z))
    q, mod, pi, res, _ = _solve_q(th, R, settings, tol, max_iter, q0)
    conv = bool(res <= max(tol, 1e-10) * max(1.0, q) and np.isfinite(q) and q > 0)
    tc = np.tanh(mod.grid.c)
    mu = mod.Eo["s"] * float(pi @ tc)
    # mass on the two outermost nodes on each side: the clamped boundary must hold (almost) none
    bmass = float(np.abs(pi[:2]).sum() + np.abs(pi[-2:]).sum())
    m1, m2 = _moments(mod, pi, th)
    nan = float("nan")
    if sz == 1.0:
        chi = _chi_one(mod, pi, th)
        if chi <= 1.0:
            return TwoStatePoint(mu, q, 1.0, chi, m1, m2, conv, res, "two-state, C*=1", bmass)
        return TwoStatePoint(mu, q, nan, nan, m1, m2, False, res, "not covered (C*=1 unstable)", bmass)
    indep = sz == 0.0 and all(th[k]["rho2"] == 0 for k in "ifro") and abs(mu) < 1e-9
    if indep:
        chi = _chi_zero(mod, pi, th)
        if chi < 1.0:
            return TwoStatePoint(mu, q, 0.0, chi, m1, m2, conv, res, "two-state, C*=0", bmass)
        return TwoStatePoint(mu, q, nan, nan, m1, m2, False, res, "not covered (C*=0 unstable)", bmass)
    from .lstm_joint import solve_joint         # 0 <= Sigma_z < 1, 0 < C* < 1: the joint (c_a, c_b) law
    jp = solve_joint(th, sz, R, q=q, mu_h=mu)
    if jp.stable:
        return TwoStatePoint(mu, q, jp.c_star, jp.chi, m1, m2, conv and jp.converged, max(res, jp.residual),
                             jp.method, max(bmass, jp.boundary_mass))
    return TwoStatePoint(mu, q, jp.c_star, nan, m1, m2, False, res, jp.method, bmass)


def stationary_law(theta, q_h=None, R=1.0, *, settings: Settings = DEFAULT):
    """Nodes ``c`` and probability weights ``p`` of the stationary cell-state law (at the fixed
    point Q_h* unless ``q_h`` is given); ``sum(p * f(c))`` approximates E f(c)."""
    th = _theta_point(theta) if isinstance(theta, Theta) else theta
    _check_theta(th)
    R = check_R(R)
    if q_h is None:
        _, mod, pi, _, _ = _solve_q(th, R, settings, 1e-12, 60)
    else:
        mod = _Model(th, float(q_h), R, settings)
        pi = mod.stationary()
    return mod.grid.c.copy(), pi


def fixed_point(theta: Theta, sigma_z=1.0, R: float = 1.0, *, settings: Settings | None = None,
                tol: float | None = None, batched: bool = True):
    """The two-state theory over the grid of ``theta`` (and ``sigma_z``): a dict of arrays
    ``mu_s, q_s, c_s, chi, m1, m2, converged, residual, method``.

    ``batched`` (default): all grid points at once with stacked linear algebra
    (``rnn_mft.theory.lstm_twostate_batch.fixed_point_batched``, discretisation ``settings``,
    default :data:`FAST`; Q* to a residual ``tol`` = 1e-9, which moves chi by < 1e-10 against
    1e-12 on the grid of ``benchmarks/theory.py``, measured);
    each point's numbers depend on that point only. ``batched=False``: the single-point
    reference path, :func:`solve_point` point by point (default :data:`DEFAULT`, ``tol`` =
    1e-12), in two halves on two threads, each starting its Q-iteration from the previous
    point's Q*."""
    if not isinstance(theta, Theta) or theta.arch != "lstm":
        raise ValueError("theta must be a Theta for arch='lstm'")
    sz = check_sigma_z(sigma_z)
    R = check_R(R)
    shape = np.broadcast_shapes(theta.shape, sz.shape)
    if batched:
        from .lstm_twostate_batch import fixed_point_batched
        pts = {k: {f: np.array(np.broadcast_to(getattr(theta[k], f), shape), float).ravel()
                   for f in ("sigma2", "nu2", "rho2", "mu")} for k in "ifro"}
        out = fixed_point_batched(pts, np.array(np.broadcast_to(sz, shape), float).ravel(), R,
                                  settings or FAST, tol=1e-9 if tol is None else tol)
        return {k: v.reshape(shape) for k, v in out.items()}
    settings = settings or DEFAULT
    tol = 1e-12 if tol is None else tol
    keys = ("mu_s", "q_s", "c_s", "chi", "m1", "m2", "residual")
    out = {k: np.full(shape, np.nan) for k in keys}
    out["converged"] = np.zeros(shape, bool)
    out["method"] = np.empty(shape, dtype=object)
    szb = np.broadcast_to(sz, shape)
    nd = len(theta.shape)
    pts = list(np.ndindex(*shape)) if shape else [()]

    def tidx(idx):
        sub = idx[len(idx) - nd:] if nd else ()
        return tuple(i if s > 1 else 0 for i, s in zip(sub, theta.shape))

    def work(chunk):
        res, q0 = [], None
        for idx in chunk:
            p = solve_point(_theta_point(theta, tidx(idx)), float(szb[idx]), R, settings=settings, tol=tol,
                            q0=q0)
            q0 = p.q_s if np.isfinite(p.q_s) else None
            res.append((idx, p))
        return res

    if len(pts) >= 8:
        from .lstm import _pool
        chunks = [pts[: len(pts) // 2], pts[len(pts) // 2:]]
        results = [r for part in _pool().map(work, chunks) for r in part]
    else:
        results = work(pts)
    for idx, p in results:
        for k in keys:
            out[k][idx] = getattr(p, k)
        out["converged"][idx] = p.converged
        out["method"][idx] = p.method
    return out
