r"""The two-state LSTM theory (:mod:`rnn_mft.theory.lstm_twostate`) on a batch of Thetas at once.

The same equations as the single-point path (:func:`~rnn_mft.theory.lstm_twostate.solve_point`;
eq. (6) for :math:`Q_h^*`, the module docstring of ``lstm_twostate`` for :math:`\chi`,
:math:`m_1`, :math:`m_2`), vectorised across grid points:

* the operators :math:`A_F, A_G` of B points are (B, n, n) stacks built by one scatter each;
  the stationary law :math:`\pi P = \pi` is one stacked ``np.linalg.solve``;
* :math:`Q_h^* = G(Q_h^*)` is the safeguarded secant iteration of ``lstm_twostate._solve_q``
  under a per-point mask, started from a Gaussian-cell-state estimate (:func:`_q_guess`),
  whose slope makes the first step a Newton step;
  a point leaves when its residual is below ``tol``, and its outputs are computed from the
  model of that last evaluation;
* :math:`\chi` at :math:`\Sigma_z = 1` is the root of :math:`1 = \alpha/\chi + \beta\langle
  a_p, (\chi - P_2)^{-1} w\rangle` by a bracketed secant iteration per point (masked;
  ``lstm_twostate_chi._chi_one_batch``); :math:`m_1, m_2` by stacked vector-operator products
  (``_moments_batch``); the F-operator products of the stationary law they share are made
  once (:meth:`_BModel.pi_products`);
* the law of :math:`G = \sigma(u_i)\tanh(u_r)` (weighted by 1, B or B^2) is compressed to an
  ``n_c``-point Gauss rule by a Lanczos run on the Kronecker products of the factors' Jacobi
  matrices (``lstm_twostate_chi.product_gauss_rule``), which gives the rule of the product of
  the factor Gauss rules without forming it.

Cost (a 100 x 100 grid, ``benchmarks/theory.py``): the stencils, their scatters and the Lanczos
runs work on blocks of points (:data:`BLOCK_ELEMS`), whose temporaries stay in cache; whole-batch
temporaries made them several times slower on the development machines. Gauss-Hermite nodes
of negligible weight are dropped (:data:`PRUNE`).

The discretisation is a :class:`~rnn_mft.theory.lstm_twostate.Settings`
(``lstm_twostate.FAST`` on the grid path: 35 nodes and 10-point Lagrange stencils, which are as
accurate as 201 nodes with cubic ones). Each point's Gauss-Hermite orders come from its own
variance bound (:func:`point_orders`), and points are grouped by them, so a point's numbers
depend on that point only: a grid gives the numbers of the points one by one, up to the
rounding of stacked BLAS kernels (tested: 1e-11), and to 1e-9 those of ``solve_point`` with
the same settings. The same call gives the same bits.

:math:`\chi` at :math:`\Sigma_z = 0` (the renewal equation, ``_chi_zero``) stays per point:
:func:`fixed_point_batched` evaluates it with the single-point code at the batch's
:math:`Q_h^*`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .meanfield import gate_moment
from .lstm_twostate import stationary_vector
from .quadrature import gauss_hermite, sigmoid as _sig
from .lstm_twostate_chi import _chi_one_batch, _moments_batch, gauss_rule_batch, jacobi_batch, product_gauss_rule

__all__ = ["solve_batch", "fixed_point_batched", "point_orders", "gauss_rule_batch"]

#: points per stacked evaluation (memory: ~B n max(n_f, n_c) order doubles per operator)
CHUNK = 256


def _dsig(u):
    s = _sig(u)
    return s * (1.0 - s)


#: Gauss-Hermite nodes whose weight is below this fraction of the largest are dropped on the
#: batched path: every integrand here is bounded by 1 (sigmoids, tanh, their derivatives and
#: powers), so the dropped mass is below 1e-30 n of the largest weight, far below rounding even
#: for a saturated gate whose expectation is ~1e-12; it removes 40-60 % of the nodes at the
#: orders of the grid (e.g. 160 -> 92), and with them the cost of the Gauss rules of G
PRUNE = 1e-30


@lru_cache(maxsize=None)
def _gh(n):
    """The ``n``-point Gauss-Hermite rule without its negligible nodes (:data:`PRUNE`)."""
    x, w = gauss_hermite(n)
    keep = w >= PRUNE * w.max()
    x, w = x[keep], w[keep]
    x.flags.writeable = w.flags.writeable = False
    return x, w


#: elements (points x grid nodes x abscissae) per block of the stencil computations
#: (:meth:`_BGrid.weights`, :meth:`_BGrid.operator`, :meth:`_BModel.vF_many`): temporaries of
#: ~0.5 MB stay in cache and reuse memory instead of touching fresh pages (measured on the
#: 100 x 100 grid: whole-batch temporaries made the stencils ~4x slower)
BLOCK_ELEMS = 1 << 16


def _blocks(B, per_point):
    """Slices of the batch axis with about :data:`BLOCK_ELEMS` elements each."""
    step = max(1, BLOCK_ELEMS // max(1, per_point))
    return [slice(b0, min(B, b0 + step)) for b0 in range(0, B, step)]


def _lagrange(u, p, out):
    """Lagrange weights out[k] = prod_{j != k} (u - j) / (k - j) of the nodes 0..p-1 at u, as
    products of the factors left and right of k (no division by u - j, so exact nodes are
    safe), accumulated in place: three live arrays, whatever p."""
    if p == 4:
        u1, u2, u3 = u - 1.0, u - 2.0, u - 3.0
        out[0] = -u1 * u2 * u3 / 6.0
        out[1] = u * u2 * u3 / 2.0
        out[2] = -u * u1 * u3 / 2.0
        out[3] = u * u1 * u2 / 6.0
        return out
    t = np.empty_like(u)
    out[0] = 1.0
    np.copyto(out[1], u)
    for k in range(2, p):                    # out[k] = prod_{j < k} (u - j)
        np.subtract(u, k - 1, out=t)
        np.multiply(out[k - 1], t, out=out[k])
    r = np.subtract(u, p - 1)                # r = prod_{j > k} (u - j)
    for k in range(p - 2, -1, -1):
        out[k] *= r
        if k:
            np.subtract(u, k, out=t)
            r *= t
    for k in range(p):
        out[k] /= float(np.prod([k - j for j in range(p) if j != k]))
    return out


class _BGrid:
    """Per-point grids c[b, j] = a_b sinh(t_j), t_j uniform on [-T_b, T_b]; Lagrange stencils."""

    def __init__(self, L, a, n, order):
        self.L, self.a, self.n, self.order = L, a, n, order
        self.T = np.arcsinh(L / a)
        self.t = np.linspace(-self.T, self.T, n, axis=-1)
        self.dt = self.t[:, 1] - self.t[:, 0]
        c = a[:, None] * np.sinh(self.t)
        self.c = 0.5 * (c - c[:, ::-1])              # exactly odd: c[n-1-j] = -c[j], c = 0 at the centre

    def take(self, sel):
        g = object.__new__(_BGrid)
        g.n, g.order = self.n, self.order
        for k in ("L", "a", "T", "t", "dt", "c"):
            setattr(g, k, getattr(self, k)[sel])
        return g

    def weights(self, y, out=None):
        """Stencils of the values at y (B, n, K), stencil axis first: first node i0 (B, n, K) and
        Lagrange weights (p, B, n, K) (the weights of :func:`lstm_twostate.lagrange_weights`),
        written into ``out = (i0, w)`` if given. Computed in blocks of points
        (:data:`BLOCK_ELEMS`): the same numbers, with temporaries small enough to stay in cache
        and out of fresh memory pages."""
        B = y.shape[0]
        p, n = self.order, self.n
        i0, w = out if out is not None else (np.empty(y.shape, np.int64), np.empty((p,) + y.shape))
        for sl in _blocks(B, y[0].size):
            ex = (sl, None, None)
            s = np.arcsinh(np.clip(y[sl], -self.L[ex], self.L[ex]) / self.a[ex])
            s += self.T[ex]
            s /= self.dt[ex]
            i = np.clip(np.floor(s).astype(np.int64) - (p // 2 - 1), 0, n - p)
            i0[sl] = i
            s -= i
            _lagrange(s, p, w[:, sl])
        return i0, w

    def operator(self, y, wq, odd=False):
        """Stack of dense M[b] with (M[b] phi)_j = sum_k wq[b, k] phi(y[b, j, k]); ``y`` may be
        given as its stencil from :meth:`weights`. Scattered in blocks of points. ``odd``: the
        points are odd in the node (y[n-1-j] = -y[j], as F c_j), so M is centrosymmetric,
        M[n-1-j, n-1-i] = M[j, i] (the grid is odd and stencils mirror), and only the rows from
        the centre on are scattered."""
        i0, w = y if isinstance(y, tuple) else self.weights(y)
        B, n, p = i0.shape[0], self.n, w.shape[0]
        h = n // 2 if odd else 0
        r = n - h                                             # rows scattered: h .. n-1
        out = np.empty((B, n, n))
        for sl in _blocks(B, i0[0].size):
            nb = i0[sl].shape[0]
            base = (np.arange(nb)[:, None, None] * r + np.arange(r)[None, :, None]) * n + i0[sl, h:]
            flat = base[None] + np.arange(p)[:, None, None, None]
            vals = w[:, sl, h:] * wq[None, sl, None, :]
            out[sl, h:] = np.bincount(flat.ravel(), weights=vals.ravel(), minlength=nb * r * n).reshape(nb, r, n)
        if h:
            out[:, :h] = out[:, n - 1 - np.arange(h), ::-1]
        return out

    def vecop(self, v, y, wq):
        """v[b] @ M[b] for the M of :meth:`operator`, as a scatter (no dense matrix)."""
        i0, w = y if isinstance(y, tuple) else self.weights(y)
        B, n, p = i0.shape[0], self.n, w.shape[0]
        flat = (np.arange(B)[:, None, None] * n + i0)[None] + np.arange(p)[:, None, None, None]
        vals = w * (v[:, :, None] * wq[:, None, :])[None]
        return np.bincount(flat.ravel(), weights=vals.ravel(), minlength=B * n).reshape(B, n)


class _BModel:
    """Batched :class:`lstm_twostate._Model`: gate laws and grid of B points at their q (B,)."""

    def __init__(self, th, q, R, st, orders):
        self.th, self.q, self.st = th, q, st
        var = {k: gate_moment(th[k], q, R) for k in "ifro"}                      # eq. (4a)
        self.var = var
        n_f, n_g, n_o = orders
        xf, wf = _gh(n_f)
        uf = th["f"]["mu"][:, None] + np.sqrt(var["f"])[:, None] * xf
        self.F, self.dF = _sig(uf), _dsig(uf)
        self.wf = np.broadcast_to(wf, self.F.shape)
        xg, wg = _gh(n_g)
        ui = th["i"]["mu"][:, None] + np.sqrt(var["i"])[:, None] * xg
        ur = th["r"]["mu"][:, None] + np.sqrt(var["r"])[:, None] * xg
        self.si, self.dsi = _sig(ui), _dsig(ui)
        self.tr = np.tanh(ur)
        self.dtr = 1.0 - self.tr**2
        self.wg = np.broadcast_to(wg, self.si.shape)
        xo, wo = _gh(n_o)
        uo = th["o"]["mu"][:, None] + np.sqrt(var["o"])[:, None] * xo
        so, dso = _sig(uo), _dsig(uo)
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
        self.grid = _BGrid(L, np.minimum(1.0, np.maximum(sd, 0.05)), st.n, st.order)
        self._g = {}

    def take(self, sel):
        """The model of the points ``sel`` (a boolean mask or indices) only."""
        m = object.__new__(_BModel)
        m.st = self.st
        m.th = _sub(self.th, sel)
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
        """Batched :meth:`lstm_twostate._Model._grule_key`: the Gauss rule of the law of G weighted
        by 1, B or B^2 (the last two are built together): the Jacobi matrices of all factor laws
        of the keys asked for come from one stacked Lanczos run, each key's rule from
        :func:`lstm_twostate_chi.product_gauss_rule`."""
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
        blocks = _blocks(B, n * K * n // 4)
        S = np.empty((blocks[0].stop - blocks[0].start) * n * K * n)
        for sl in blocks:
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


def _sub(th, mask):
    return {k: {f: v[mask] for f, v in d.items()} for k, d in th.items()}


def _gauss_G(th, q, R, nodes=24):
    """Eq. (6)'s G(Q_h) with the cell state replaced by a Gaussian of the perpetuity's mean and
    variance (no grid): the cheap model behind :func:`_q_guess`."""
    xf, wf = xg, wg = xo, wo = xz, wz = gauss_hermite(nodes)
    v = {k: np.sqrt(gate_moment(th[k], q, R))[:, None] for k in "ifro"}
    F = _sig(th["f"]["mu"][:, None] + v["f"] * xf)
    EF, EF2 = F @ wf, F**2 @ wf
    X = _sig(th["i"]["mu"][:, None] + v["i"] * xg)
    Y = np.tanh(th["r"]["mu"][:, None] + v["r"] * xg)
    EG, EG2 = (X @ wg) * (Y @ wg), (X**2 @ wg) * (Y**2 @ wg)
    m = EG / (1.0 - EF)
    sd = np.sqrt(np.maximum((EG2 + 2.0 * EF * EG * m) / (1.0 - EF2) - m * m, 0.0))
    so2 = _sig(th["o"]["mu"][:, None] + v["o"] * xo) ** 2 @ wo
    return so2 * (np.tanh(m[:, None] + sd[:, None] * xz) ** 2 @ wz)


def _q_guess(th, R, iters=12, h=1e-4):
    """A cheap start for the Q-iteration, by a few Picard steps of :func:`_gauss_G`, and that
    model's slope dG/dQ there (a central difference), which the first step of
    :func:`solve_batch` uses in place of the true one. Only a start: the secant iteration
    removes its error."""
    q = np.full(th["f"]["mu"].shape, 0.25)
    for _ in range(iters):
        q = _gauss_G(th, q, R)
    q = np.clip(q, 1e-12, 1.0)
    lo, hi = np.maximum(q - h, 1e-12), np.minimum(q + h, 1.0)
    slope = (_gauss_G(th, hi, R) - _gauss_G(th, lo, R)) / (hi - lo)
    return q, slope


def solve_batch(th, R, st, *, tol=1e-12, max_iter=60, q0=None, chi_mask=None, orders=None):
    """The two-state theory at B points ``th = {gate: {field: array (B,)}}``.

    Q_h* = G(Q_h*) (eq. (6)) by the safeguarded secant iteration of
    :func:`lstm_twostate._solve_q`, point by point under a mask: a point leaves the iteration
    when its residual |G(q) - q| <= tol max(1, q), and its fixed point, moments and chi are
    computed from the model of that last evaluation (no rebuild). Returns a dict of arrays
    (B,): ``q_s, mu_s, residual, converged, m1, m2, boundary_mass`` and ``chi`` (the Perron root
    at Sigma_z = 1, before the chi <= 1 check of the caller; NaN where ``chi_mask`` is False).
    Orders (n_f, n_g, n_o) of the Gauss-Hermite rules: ``orders``, or the largest of
    :func:`point_orders` over the batch; start ``q0``, or :func:`_q_guess`."""
    B = th["f"]["mu"].shape[0]
    orders = orders or tuple(int(np.max(o)) for o in point_orders(th, R, st))
    slope = None
    if q0 is None:
        q0, slope = _q_guess(th, R)
    want_chi = np.ones(B, bool) if chi_mask is None else np.asarray(chi_mask, bool)
    out = {k: np.full(B, np.nan) for k in ("q_s", "mu_s", "residual", "m1", "m2", "boundary_mass", "chi")}
    out["converged"] = np.zeros(B, bool)

    def finish(ix, mod, pi, r):
        """Outputs of the points ix (indices into the batch) from their model and law."""
        q = mod.q
        out["q_s"][ix], out["residual"][ix] = q, np.abs(r)
        out["converged"][ix] = (np.abs(r) <= max(tol, 1e-10) * np.maximum(1.0, q)) & np.isfinite(q) & (q > 0)
        out["mu_s"][ix] = mod.Eo["s"] * np.einsum("bj,bj->b", pi, np.tanh(mod.grid.c))
        out["boundary_mass"][ix] = np.abs(pi[:, :2]).sum(-1) + np.abs(pi[:, -2:]).sum(-1)
        out["m1"][ix], out["m2"][ix] = _moments_batch(mod, pi, mod.th)
        wc = want_chi[ix]
        if wc.all():
            out["chi"][ix] = _chi_one_batch(mod, pi, mod.th)
        elif wc.any():
            sub = mod.take(wc)
            out["chi"][ix[wc]] = _chi_one_batch(sub, pi[wc], sub.th)

    def evaluate(ix, q):
        mod = _BModel(_sub(th, ix), q, R, st, orders)
        pi = mod.stationary()
        g = mod.Eo["s2"] * np.einsum("bj,bj->b", pi, np.tanh(mod.grid.c) ** 2)
        return mod, pi, g

    q = np.array(np.broadcast_to(q0, (B,)), float)
    ix = np.arange(B)
    mod, pi, g = evaluate(ix, q)
    best_r, best_q = np.abs(g - q), q.copy()
    q_prev, r_prev = q.copy(), g - q
    # the first step: Newton's with the Gaussian model's slope where it is below 1 (the fixed
    # point attracts), else a Picard step, as the single-point path; the secant steps follow
    q = g.copy()
    if slope is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            qn = q_prev + r_prev / (1.0 - slope)
        use = (slope < 0.98) & np.isfinite(qn) & (qn > 0) & (qn <= 1.0)
        q[use] = qn[use]
    for _ in range(max_iter):
        if ix.size == 0:
            break
        qa = q[ix]
        mod, pi, g = evaluate(ix, qa)
        r = g - qa
        better = np.abs(r) < best_r[ix]
        best_r[ix[better]], best_q[ix[better]] = np.abs(r)[better], qa[better]
        conv = np.abs(r) <= tol * np.maximum(1.0, qa)
        if conv.any():
            sub = mod if conv.all() else mod.take(conv)
            finish(ix[conv], sub, pi[conv], r[conv])
        qp, rp = q_prev[ix], r_prev[ix]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(qa != qp, (r - rp) / (qa - qp), 0.0)
            qn = np.where(d < 0, qa - r / d, g)
        qn = np.where(np.isfinite(qn) & (qn > 0), qn, g)
        q_prev[ix], r_prev[ix], q[ix] = qa, r, qn
        ix = ix[~conv]
    if ix.size:                                   # not converged: the best iterate
        mod, pi, g = evaluate(ix, best_q[ix])
        finish(ix, mod, pi, g - best_q[ix])
    return out


#: Gauss-Hermite orders are rounded up to these levels, so that a point's orders (and with them
#: its numbers) depend on that point only, whichever batch it is solved in
_LEVELS = (48, 64, 96, 128, 160, 192, 256, 320, 400)


_LEVELS_F = (16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 400)


def _level(n, levels=_LEVELS):
    """The smallest level >= n, elementwise (beyond the last level: ceil(n))."""
    n = np.asarray(n, float)
    lv = np.asarray(levels)
    i = np.searchsorted(lv, n, side="left")
    return np.where(i < lv.size, lv[np.minimum(i, lv.size - 1)], np.ceil(n)).astype(int)


#: u_f's rule weighs phi(F c) at every grid node; its order grows with the variance bound of
#: u_f: at least 16 and NF_PER_VAR per unit of variance (measured: 16 nodes at variance 6.3 put
#: 2e-5 into chi, 48 nodes 1.5e-8; at variance 3 and below 16 nodes give 2e-8)
NF_PER_VAR = 6.0


#: the (u_i, u_r) rule is compressed to the law of G, whose high moments need more nodes than
#: one expectation: n_g follows nodes_for at this multiple of the variance bound (1: the bound at
#: Q_h = 1 and the rounding up to a level leave enough margin on the test set)
NG_FACTOR = 1.0


def point_orders(th, R, st):
    """Gauss-Hermite orders (n_f, n_g, n_o) of each point (arrays (B,)): the fixed settings, or
    the library's rule (:func:`meanfield.nodes_for`, at least 48) at the largest variance the
    point can reach (Q_h <= 1), rounded up to a level of ``_LEVELS``."""
    from .meanfield import node_rule
    vmax = {k: gate_moment(th[k], 1.0, R) for k in "ifro"}            # eq. (4a) at the bound Q_h <= 1
    vg = np.maximum(vmax["i"], vmax["r"])

    def rule(name, v):
        fixed = getattr(st, name)
        v = np.asarray(v, float)
        if fixed is not None:
            return np.full(v.shape, int(fixed))
        v = np.where(np.isfinite(v), v, 1.0)                           # as meanfield.nodes_for
        if name == "n_f":
            return _level(np.maximum(16.0, NF_PER_VAR * v), _LEVELS_F)
        return _level(np.maximum(48.0, node_rule(v)))

    return rule("n_f", vmax["f"]), rule("n_g", NG_FACTOR * vg), rule("n_o", vmax["o"])


def fixed_point_batched(pts, sz, R, st, tol=1e-12, max_iter=60):
    """The two-state theory at P points ``pts = {gate: {field: array (P,)}}`` with input
    correlations ``sz`` (P,): the points are grouped by their Gauss-Hermite orders
    (:func:`point_orders`), solved in stacked chunks of :data:`CHUNK` on the library's two
    threads, and checked as :func:`lstm_twostate.solve_point` checks one point. Returns a dict
    of arrays (P,) ``mu_s, q_s, c_s, chi, m1, m2, converged, residual, method``."""
    from . import lstm_twostate as L2
    from .lstm import _pool
    from .lstm_joint import solve_joint
    P = sz.shape[0]
    of, og, oo = point_orders(pts, R, st)
    keys = np.stack([of, og, oo], 1)
    groups = {}
    for i, kk in enumerate(map(tuple, keys)):
        groups.setdefault(kk, []).append(i)
    # the costliest orders first, so that the pool's last tasks are the cheapest
    tasks = [(kk, np.array(ix[s:s + CHUNK])) for kk, ix in sorted(groups.items(), key=lambda g: g[0][::-1], reverse=True)
             for s in range(0, len(ix), CHUNK)]
    need_chi = sz == 1.0

    def work(task):
        kk, ix = task
        sub = {k: {f: v[ix] for f, v in d.items()} for k, d in pts.items()}
        return ix, solve_batch(sub, R, st, tol=tol, max_iter=max_iter, orders=tuple(int(x) for x in kk),
                               chi_mask=need_chi[ix])

    results = list(_pool().map(work, tasks)) if len(tasks) > 1 else [work(t) for t in tasks]
    nan = np.nan
    out = {k: np.full(P, nan) for k in ("mu_s", "q_s", "c_s", "chi", "m1", "m2", "residual")}
    out["converged"] = np.zeros(P, bool)
    out["method"] = np.empty(P, dtype=object)
    for ix, r in results:
        for k in ("mu_s", "q_s", "m1", "m2", "residual", "chi"):
            out[k][ix] = r[k]
        out["converged"][ix] = r["converged"]
    # Sigma_z = 1: C* = 1 is the stable fixed point where chi <= 1
    one = sz == 1.0
    ok = one & (out["chi"] <= 1.0)
    out["c_s"][ok], out["method"][ok] = 1.0, "two-state, C*=1"
    bad = one & ~ok
    out["chi"][bad], out["converged"][bad], out["method"][bad] = nan, False, "not covered (C*=1 unstable)"
    out["chi"][~one] = nan
    for i in np.flatnonzero(~one):
        th = {k: {f: float(v[i]) for f, v in d.items()} for k, d in pts.items()}
        indep = sz[i] == 0.0 and all(th[k]["rho2"] == 0 for k in "ifro") and abs(out["mu_s"][i]) < 1e-9
        if indep:
            # the renewal equation stays per point, at the batch's Q*
            so = L2.Settings(n=st.n, n_f=int(keys[i, 0]), n_g=int(keys[i, 1]), n_o=int(keys[i, 2]),
                             n_c=st.n_c, width=st.width, order=st.order)
            mod = L2._Model(th, float(out["q_s"][i]), R, so)
            chi = L2._chi_zero(mod, mod.stationary(), th)
            if chi < 1.0:
                out["c_s"][i], out["chi"][i], out["method"][i] = 0.0, chi, "two-state, C*=0"
            else:
                out["converged"][i], out["method"][i] = False, "not covered (C*=0 unstable)"
        else:
            # 0 <= Sigma_z < 1, 0 < C* < 1: the joint (c_a, c_b) law, per point, at the batch's Q*
            jp = solve_joint(th, float(sz[i]), R, q=float(out["q_s"][i]), mu_h=float(out["mu_s"][i]))
            out["c_s"][i], out["method"][i] = jp.c_star, jp.method
            if jp.stable:
                out["chi"][i] = jp.chi
                out["converged"][i] = out["converged"][i] and jp.converged
                out["residual"][i] = max(out["residual"][i], jp.residual)
            else:
                out["converged"][i] = False
    return out
