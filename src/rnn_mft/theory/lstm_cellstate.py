r"""The cell-state law of the LSTM's two-state theory: one copy's chain, its stationary law, :math:`Q_h^*`.

With untied weights the pre-activations :math:`u_k` are fresh Gaussians at every step (eqs.
(3)-(4) with :math:`s = h`), so each unit's cell state is the Markov chain (16),
:math:`c' = F c + G` with :math:`F = \sigma(u_f)` independent of
:math:`G = \sigma(u_i)\tanh(u_r)`, whose law depends on the population only through
:math:`Q_h`. Its transition operator on functions,
:math:`(P\varphi)(c) = \mathbb{E}\,\varphi(Fc + G)`, is discretised on the sinh grid of
:mod:`rnn_mft.theory.lstm_grid` (local Lagrange interpolation in :math:`t`) with Gauss-Hermite
rules for :math:`u_f` and :math:`(u_i, u_r)`: :math:`P = A_F A_G`, where the law of :math:`G`
on the :math:`n_g^2` points of the tensor rule is compressed to an ``n_c``-point Gauss rule
(:mod:`rnn_mft.theory.gauss_rules`). The stationary law is the left Perron vector
:math:`\pi P = \pi` (a linear solve, no sampling), and

.. math:: \mu_h = \mathbb{E}\sigma(u_o)\,\langle\pi, \tanh c\rangle,\qquad
          Q_h = \mathbb{E}\sigma(u_o)^2\,\langle\pi, \tanh^2 c\rangle

is solved for :math:`Q_h` (eq. (6)) by a secant iteration (:func:`solve_q`).

* :class:`Settings`: the discretisation (:data:`DEFAULT` for one point, :data:`FAST` for the
  batched grid path);
* :class:`CellStateModel`: the gate laws, the operators :math:`A_F`, :math:`A_G` (also weighted
  by the functions of the gates that the tangent needs) and the stationary law at one Theta point
  and one :math:`Q_h`; :func:`q_map`, :func:`solve_q`, :func:`stationary_law` on it;
* :class:`BatchCellStateModel`: the same for a stack of points, each at its own :math:`Q_h`
  (stacked operators, blocked stencils, the laws of :math:`G` from
  :func:`~rnn_mft.theory.gauss_rules.product_gauss_rule`, Gauss-Hermite rules without their
  negligible nodes, :func:`pruned_gauss_hermite`);
* :func:`theta_point`, :func:`check_theta_point`, :func:`sub_points`: the ``{gate: {field:
  value}}`` form of a Theta point (or of a stack of points) that these models take.

The time scale and the Jacobian moments built on these operators are in
:mod:`rnn_mft.theory.lstm_tangent`, the two-copy chain of :math:`(c_a, c_b)` in
:mod:`rnn_mft.theory.lstm_joint`; :mod:`rnn_mft.theory.lstm_twostate` assembles the theory.
The one-point and the stacked model are kept side by side: they must give the same numbers
(tested to 1e-9 in ``tests/test_theory_lstm_twostate.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .gauss_rules import gauss_rule, jacobi_batch, product_gauss_rule
from .lstm_grid import BatchGrid, Grid, blocks, stationary_vector
from .meanfield import check_R, gate_moment, nodes_for
from .quadrature import dsigmoid, gauss_hermite, sigmoid
from .theta import Theta

__all__ = ["Settings", "DEFAULT", "FAST", "PRUNE", "CellStateModel", "BatchCellStateModel", "pruned_gauss_hermite",
           "theta_point", "check_theta_point", "sub_points", "q_map", "solve_q", "stationary_law"]


@dataclass(frozen=True)
class Settings:
    """Discretisation of the two-state theory (the defaults give chi to 1e-7 or better, tested).

    n : number of cell-state grid points; n_f : Gauss-Hermite nodes for u_f; n_g : nodes per
    dimension for (u_i, u_r) (None: chosen from the gate variances, as everywhere in the library); n_c : nodes of the Gauss rule to which the law of
    G = sigma(u_i) tanh(u_r) is compressed; n_o : nodes for u_o; width : half-width of the grid in standard
    deviations of the stationary cell state (plus its mean and 2); order : points of the local
    Lagrange stencil in t (4: cubic; :data:`FAST`'s 10 reaches the same accuracy on a 5x coarser
    grid, see ``rnn_mft.theory.lstm_twostate.fixed_point_batched``).
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
#: the discretisation of the batched grid path (:func:`rnn_mft.theory.lstm_twostate.fixed_point`,
#: ``analyze("lstm", ...)``): a
#: 35-point grid with 10-point Lagrange stencils and 8-node G rules; the Gauss-Hermite orders
#: per point from its variance bound (``rnn_mft.theory.lstm_twostate.point_orders``).
#: Measured against ``Settings(n=801, n_f=300, n_g=400, n_o=400, n_c=40, width=18)`` on the
#: test sets of ``tests/test_theory_lstm_twostate.py`` and of the benchmark grid, at R = 1 and 2:
#: max |chi error| below 5e-7 (target 1e-6).
FAST = Settings(n=35, n_c=8, order=10)


#: Gauss-Hermite nodes whose weight is below this fraction of the largest are dropped on the
#: batched path: every integrand here is bounded by 1 (sigmoids, tanh, their derivatives and
#: powers), so the dropped mass is below 1e-30 n of the largest weight, far below rounding even
#: for a saturated gate whose expectation is ~1e-12; it removes 40-60 % of the nodes at the
#: orders of the grid (e.g. 160 -> 92), and with them the cost of the Gauss rules of G
PRUNE = 1e-30


@lru_cache(maxsize=None)
def pruned_gauss_hermite(n):
    """The ``n``-point Gauss-Hermite rule without its negligible nodes (:data:`PRUNE`)."""
    x, w = gauss_hermite(n)
    keep = w >= PRUNE * w.max()
    x, w = x[keep], w[keep]
    x.flags.writeable = w.flags.writeable = False
    return x, w


class CellStateModel:
    """Gate laws and the discretised transition at one Theta point and one Q_h."""

    def __init__(self, th, q, R, st: Settings):
        self.th, self.q, self.R, self.st = th, q, R, st
        var = {k: gate_moment(th[k], q, R) for k in "ifro"}                      # eq. (4a)
        self.var = var
        xf, wf = gauss_hermite(st.nodes("n_f", var["f"]))
        uf = th["f"]["mu"] + np.sqrt(var["f"]) * xf
        self.F, self.dF, self.wf = sigmoid(uf), dsigmoid(uf), np.asarray(wf)
        xg, wg = gauss_hermite(st.nodes("n_g", max(var["i"], var["r"])))
        ui = th["i"]["mu"] + np.sqrt(var["i"]) * xg
        ur = th["r"]["mu"] + np.sqrt(var["r"]) * xg
        si, dsi = sigmoid(ui)[:, None], dsigmoid(ui)[:, None]
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
        so, dso = sigmoid(uo), dsigmoid(uo)
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
        self.grid = Grid(L, min(1.0, max(sd, 0.05)), st.n, st.order)
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
        return gauss_rule(self.G, self.wg * gw, self.st.n_c)

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
            xa, wa = gauss_rule(si, wx * fx, m)
            yb, wb = gauss_rule(tr, wy * fy, m)
            if xa.size == 0 or yb.size == 0:
                continue
            pts.append(np.multiply.outer(xa, yb).ravel())
            wts.append(coef * np.multiply.outer(wa, wb).ravel())
        if not pts:
            return np.zeros(0), np.zeros(0)
        return gauss_rule(np.concatenate(pts), np.concatenate(wts), self.st.n_c)

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


def theta_point(theta: Theta, idx=()):
    """The point ``idx`` of ``theta``'s grid as ``{gate: {field: float}}``, the form the models take."""
    return {k: {f: float(np.broadcast_to(getattr(theta[k], f), theta.shape)[idx])
                for f in ("sigma2", "nu2", "rho2", "mu")} for k in "ifro"}


def check_theta_point(th):
    """A ValueError unless every field of the point ``th`` is finite and every variance >= 0."""
    for k in "ifro":
        for f in ("sigma2", "nu2", "rho2", "mu"):
            v = th[k][f]
            if not np.isfinite(v) or (f != "mu" and v < 0):
                raise ValueError(f"{k}.{f}={v!r} must be finite" + (" and >= 0" if f != "mu" else ""))


def q_map(th, q, R, st):
    """Eq. (6)'s map at one point: ``(G(q), model, pi)`` with G(q) = E sigma(u_o)^2 <pi, tanh^2 c>
    from the :class:`CellStateModel` at Q_h = ``q`` and its stationary law ``pi``."""
    mod = CellStateModel(th, q, R, st)
    pi = mod.stationary()
    tc = np.tanh(mod.grid.c)
    return mod.Eo["s2"] * float(pi @ tc**2), mod, pi


def solve_q(th, R, st, tol, max_iter, q0=None):
    """Q_h = G(Q_h) (eq. (6), :func:`q_map`) by a safeguarded secant iteration (G is increasing
    and bounded by 1), from ``q0`` (default 0.25), until :math:`|G(q) - q|` <= ``tol`` max(1, q) or
    ``max_iter`` steps. Returns ``(q, model, pi, residual, evaluations)``: the fixed point (or the
    best iterate), its :class:`CellStateModel` and stationary law, :math:`|G(q) - q|` there, and the
    number of evaluations of G."""
    q = 0.25 if q0 is None else float(q0)
    g, mod, pi = q_map(th, q, R, st)
    best = (abs(g - q), q, mod, pi)
    q_prev, r_prev = q, g - q
    q = g
    for it in range(max_iter):
        g, mod, pi = q_map(th, q, R, st)
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


def stationary_law(theta, q_h=None, R=1.0, *, settings: Settings = DEFAULT):
    """Nodes ``c`` and probability weights ``p`` of the stationary cell-state law (at the fixed
    point Q_h* unless ``q_h`` is given); ``sum(p * f(c))`` approximates E f(c)."""
    th = theta_point(theta) if isinstance(theta, Theta) else theta
    check_theta_point(th)
    R = check_R(R)
    if q_h is None:
        _, mod, pi, _, _ = solve_q(th, R, settings, 1e-12, 60)
    else:
        mod = CellStateModel(th, float(q_h), R, settings)
        pi = mod.stationary()
    return mod.grid.c.copy(), pi


class BatchCellStateModel:
    """Batched :class:`CellStateModel`: gate laws and grid of B points at their q (B,)."""

    def __init__(self, th, q, R, st, orders):
        self.th, self.q, self.st = th, q, st
        var = {k: gate_moment(th[k], q, R) for k in "ifro"}                      # eq. (4a)
        self.var = var
        n_f, n_g, n_o = orders
        xf, wf = pruned_gauss_hermite(n_f)
        uf = th["f"]["mu"][:, None] + np.sqrt(var["f"])[:, None] * xf
        self.F, self.dF = sigmoid(uf), dsigmoid(uf)
        self.wf = np.broadcast_to(wf, self.F.shape)
        xg, wg = pruned_gauss_hermite(n_g)
        ui = th["i"]["mu"][:, None] + np.sqrt(var["i"])[:, None] * xg
        ur = th["r"]["mu"][:, None] + np.sqrt(var["r"])[:, None] * xg
        self.si, self.dsi = sigmoid(ui), dsigmoid(ui)
        self.tr = np.tanh(ur)
        self.dtr = 1.0 - self.tr**2
        self.wg = np.broadcast_to(wg, self.si.shape)
        xo, wo = pruned_gauss_hermite(n_o)
        uo = th["o"]["mu"][:, None] + np.sqrt(var["o"])[:, None] * xo
        so, dso = sigmoid(uo), dsigmoid(uo)
        E = lambda v: v @ wo  # noqa: E731
        self.Eo = {"s": E(so), "s2": E(so**2), "s4": E(so**4), "d2": E(dso**2), "d4": E(dso**4),
                   "s2d2": E(so**2 * dso**2)}
        EF, EF2 = self.F @ wf, self.F**2 @ wf
        EX, EX2, EY, EY2 = self.si @ wg, self.si**2 @ wg, self.tr @ wg, self.tr**2 @ wg
        EG, EG2 = EX * EY, EX2 * EY2
        self.EF, self.EF2 = EF, EF2
        m = EG / (1.0 - EF)
        c2 = (EG2 + 2.0 * EF * EG * m) / (1.0 - EF2)
        sd = np.sqrt(np.maximum(c2 - m * m, 0.0))
        L = np.abs(m) + st.width * sd + 2.0
        self.grid = BatchGrid(L, np.minimum(1.0, np.maximum(sd, 0.05)), st.n, st.order)
        self._g = {}

    def take(self, sel):
        """The model of the points ``sel`` (a boolean mask or indices) only."""
        m = object.__new__(BatchCellStateModel)
        m.st = self.st
        m.th = sub_points(self.th, sel)
        m.q = self.q[sel]
        m.var = {k: v[sel] for k, v in self.var.items()}
        for k in ("F", "dF", "wf", "si", "dsi", "tr", "dtr", "wg", "EF", "EF2"):
            setattr(m, k, getattr(self, k)[sel])
        m.Eo = {k: v[sel] for k, v in self.Eo.items()}
        m.grid = self.grid.take(sel)
        m._g = {}
        for k, v in self._g.items():
            if isinstance(v, np.ndarray):                          # dense operators
                m._g[k] = v[sel]
            elif isinstance(v, dict):                              # products of the law
                m._g[k] = {kk: vv[sel] for kk, vv in v.items()}
            elif isinstance(k, tuple) and k[0] == "st":            # stencils (stencil axis first)
                m._g[k] = (v[0][sel], v[1][:, sel])
            else:                                                  # Gauss rules
                m._g[k] = (v[0][sel], v[1][sel])
        return m

    def fweight(self, key):
        F, d = self.F, self.dF
        return self.wf * {"1": 1.0, "F": F, "F2": F**2, "F4": F**4, "d2": d**2, "d4": d**4,
                          "F2d2": F**2 * d**2}[key]

    def grule(self, key):
        """Batched :meth:`CellStateModel._grule_key`: the Gauss rule of the law of G weighted
        by 1, B or B^2 (the last two are built together): the Jacobi matrices of all factor laws
        of the keys asked for come from one stacked Lanczos run, each key's rule from
        :func:`~rnn_mft.theory.gauss_rules.product_gauss_rule`."""
        if key not in self._g:
            self._grules(("B", "B2") if key in ("B", "B2") else (key,))
        return self._g[key]

    def _grules(self, keys):
        si, dsi, tr, dtr, wg = self.si, self.dsi, self.tr, self.dtr, self.wg
        s2i, s2r = self.th["i"]["sigma2"], self.th["r"]["sigma2"]
        one = np.ones_like(si)
        terms = {"1": [(np.ones_like(s2i), one, one)],
                 "B": [(s2i, dsi**2, tr**2), (s2r, si**2, dtr**2)],
                 "B2": [(s2i**2, dsi**4, tr**4), (2 * s2i * s2r, dsi**2 * si**2, tr**2 * dtr**2),
                        (s2r**2, si**4, dtr**4)]}
        m = self.st.n_c
        B = si.shape[0]
        allt = [t for k in keys for t in terms[k]]
        T = len(allt)
        # the factor laws' Jacobi matrices, all in one stacked Lanczos run
        X = np.concatenate([si] * T + [tr] * T, 0)
        W = np.concatenate([wg * fx for _, fx, _ in allt] + [wg * fy for _, _, fy in allt], 0)
        jac = [v.reshape((2, T, B) + v.shape[1:]) for v in jacobi_batch(X, W, m)]
        t0 = 0
        for k in keys:
            tt = slice(t0, t0 + len(terms[k]))
            t0 += len(terms[k])
            coef = np.stack([allt[j][0] for j in range(tt.start, tt.stop)])
            self._g[k] = product_gauss_rule(coef, [v[0, tt] for v in jac], [v[1, tt] for v in jac], m)

    def _stencil(self, key):
        """Interpolation stencils of the points F c_j ("F") or c_j + G_b (a G-rule key), cached."""
        if ("st", key) not in self._g:
            c = self.grid.c
            if key == "F":
                # F_k c_j is odd in j: the stencils of the rows below the centre are those of
                # their mirror rows, reflected (first node n - p - i0, weights reversed)
                n, h = self.grid.n, self.grid.n // 2
                p = self.grid.order
                B, K = c.shape[0], self.F.shape[1]
                i0, w = np.empty((B, n, K), np.int64), np.empty((p, B, n, K))
                self.grid.weights(c[:, h:, None] * self.F[:, None, :], out=(i0[:, h:], w[:, :, h:]))
                mirror = n - 1 - np.arange(h)
                i0[:, :h] = n - p - i0[:, mirror]
                w[:, :, :h] = w[::-1][:, :, mirror]
                self._g["st", key] = (i0, w)
            else:
                self._g["st", key] = self.grid.weights(c[:, :, None] + self.grule(key)[0][:, None, :])
        return self._g["st", key]

    def AF(self, key):
        """Stack of A_F(key): (A_F phi)(c_j) = sum_k wf_k f_key(u_f,k) phi(F_k c_j) (a scatter, or
        the one :meth:`pi_products` made on its way)."""
        if ("AF", key) in self._g:
            return self._g["AF", key]
        return self.grid.operator(self._stencil("F"), self.fweight(key), odd=True)

    def vF_many(self, rows, ops=()):
        """[sum_{j,k} V[b, j, k] phi(F_k c_j) as a row vector over the grid, for V in rows] (the
        products v @ A_F(key) for V = v[:, :, None] * fweight(key)[:, None, :]), each (B, n),
        and the operators A_F(key) for key in ``ops``. The dense interpolation tensor
        S[b, j, k, :] of the points F_k c_j, of which every F-operator is a weighted sum of
        slices, is built in blocks of points and read once for all of them."""
        i0, w = self._stencil("F")
        B, n, K = i0.shape
        p, M = w.shape[0], len(rows)
        V = np.stack(rows, 1).reshape(B, M, n * K)
        fw = [self.fweight(key) for key in ops]
        out = np.empty((B, M, n))
        A = [np.empty((B, n, n)) for _ in ops]
        blks = blocks(B, n * K * n // 4)
        S = np.empty((blks[0].stop - blks[0].start) * n * K * n)
        for sl in blks:
            nb = i0[sl].shape[0]
            Sb = S[: nb * n * K * n]
            Sb[:] = 0.0
            # the p nodes of one stencil are distinct: an assignment, no accumulation
            flat = (np.arange(nb * n * K).reshape(nb, n, K) * n + i0[sl])[None] + np.arange(p)[:, None, None, None]
            Sb[flat.ravel()] = w[:, sl].ravel()
            out[sl] = V[sl] @ Sb.reshape(nb, n * K, n)
            for a, f in zip(A, fw):
                a[sl] = (f[sl][:, None, None, :] @ Sb.reshape(nb, n, K, n))[:, :, 0, :]
        return [out[:, m] for m in range(M)], A

    def pi_products(self, pi):
        """The F-operator products of the stationary law ``pi`` that chi and the moments use,
        computed together once per model and cached: ``v @ A_F(key)`` of pi ("p1": key 1,
        "pF2": F^2), of pi c^2 ("c2d2": d^2) and the combination that enters m2 ("m2F":
        pi F^4 + sigma_f^4 pi c^4 d^4 + 2 sigma_f^2 pi c^2 F^2 d^2; vF is linear in v, so the
        three are one product). On the way, chi's operator A_F(F^2) is made and cached."""
        if "pi" not in self._g:
            c2 = pi * self.grid.c**2
            s2f = self.th["f"]["sigma2"][:, None, None]
            fw = self.fweight
            m2F = (pi[:, :, None] * fw("F4")[:, None, :] + s2f**2 * (c2 * self.grid.c**2)[:, :, None] * fw("d4")[:, None, :]
                   + 2 * s2f * c2[:, :, None] * fw("F2d2")[:, None, :])
            vals, (self._g["AF", "F2"],) = self.vF_many(
                [pi[:, :, None] * fw("1")[:, None, :], pi[:, :, None] * fw("F2")[:, None, :],
                 c2[:, :, None] * fw("d2")[:, None, :], m2F], ops=("F2",))
            self._g["pi"] = dict(zip(("p1", "pF2", "c2d2", "m2F"), vals))
        return self._g["pi"]

    def AG(self, key):
        if ("AG", key) not in self._g:
            self._g["AG", key] = self.grid.operator(self._stencil(key), self.grule(key)[1])
        return self._g["AG", key]

    def vG(self, v, key):
        """v @ A_G(key): with the dense operator where it is built ("1"), else as a scatter."""
        if ("AG", key) in self._g or key == "1":
            return (v[:, None, :] @ self.AG(key))[:, 0, :]
        return self.grid.vecop(v, self._stencil(key), self.grule(key)[1])

    def stationary(self):
        """Left Perron vectors of P = A_F A_G (stacked linear solves)."""
        return stationary_vector(self.AF("1") @ self.AG("1"))


def sub_points(th, mask):
    """The points ``mask`` (a boolean mask or indices) of a stack ``{gate: {field: array}}``."""
    return {k: {f: v[mask] for f, v in d.items()} for k, d in th.items()}
