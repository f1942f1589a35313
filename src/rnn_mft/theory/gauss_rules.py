r"""Gauss rules of discrete measures: the compression of a law given on many points to a few.

The cell-state theories of the LSTM (:mod:`rnn_mft.theory.lstm_cellstate`,
:mod:`rnn_mft.theory.lstm_joint`) integrate over laws given as weighted points, e.g. the law of
:math:`G = \sigma(u_i)\tanh(u_r)` on the :math:`n_g^2` points of a tensor Gauss-Hermite rule.
Each such measure :math:`\sum_j w_j\,\delta(x_j)` (:math:`w \ge 0`) is replaced by its
``m``-point Gauss rule, which integrates every polynomial of degree :math:`< 2m` exactly: the
eigen-decomposition of the ``m x m`` Jacobi matrix that the Lanczos (Stieltjes) procedure on
:math:`\mathrm{diag}(x)` gives (Golub-Welsch). Here:

* :func:`gauss_rule`: one measure (Lanczos with full reorthogonalisation);
* :func:`jacobi_batch`, :func:`gauss_rule_batch`: a stack of measures, each row its own points
  and weights (blocks of rows, :data:`LANCZOS_ELEMS`);
* :func:`gauss_rules_shared_weights`: a stack of measures whose rows share one weight vector
  (the joint theory's conditional laws of :math:`G`);
* :func:`product_gauss_rule`: the rule of the law of a product :math:`G = XY` of independent
  factors, from the factors' Jacobi matrices, by a Lanczos run on their Kronecker product
  (the batched grid path's laws of :math:`G`).

A measure with fewer than ``m`` points of support stops its recurrence early (a breakdown):
fewer nodes (:func:`gauss_rule`) or surplus nodes of weight 0 (the stacked forms).
"""
from __future__ import annotations

import numpy as np

__all__ = ["LANCZOS_ELEMS", "gauss_rule", "jacobi_batch", "gauss_rule_batch", "gauss_rules_shared_weights",
           "product_gauss_rule"]


def gauss_rule(x, w, m):
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


#: Lanczos vectors (rows x nodes x steps) per block of rows in :func:`jacobi_batch` (measured:
#: blocks of ~2 MB run 15 % faster than one stack of 15 MB)
LANCZOS_ELEMS = 1 << 18


def _lanczos(apply, v0, m, thr):
    """Batched Lanczos with full (classical Gram-Schmidt) reorthogonalisation: the Jacobi
    matrices, diagonals ``a`` (B, m) and off-diagonals ``b`` (B, m - 1), of the symmetric
    operators ``apply`` (a stack of row vectors (B, N) to (B, N)) on the Krylov spaces of the
    unit start vectors ``v0`` (B, N). A row whose recurrence breaks down (b <= thr; a zero
    start at once) keeps zeros from there on."""
    B, N = v0.shape
    V = np.zeros((m, B, N))                       # Lanczos vectors, each a contiguous block
    V[0] = v0
    a, b = np.zeros((B, m)), np.zeros((B, m - 1))
    alive = np.einsum("bn,bn->b", v0, v0) > 0
    for k in range(m):
        # three-term recurrence, then one full reorthogonalisation
        y = apply(V[k])
        if k:
            y -= b[:, k - 1, None] * V[k - 1]
        a[:, k] = np.einsum("bn,bn->b", V[k], y)
        y -= a[:, k, None] * V[k]
        Vk = V[: k + 1]
        y -= np.einsum("kb,kbn->bn", np.einsum("kbn,bn->kb", Vk, y), Vk)
        if k + 1 < m:
            nb = np.sqrt(np.einsum("bn,bn->b", y, y))
            alive &= nb > thr
            b[:, k] = np.where(alive, nb, 0.0)
            V[k + 1] = y * np.where(alive, 1.0 / np.where(alive, nb, 1.0), 0.0)[:, None]
    # a broken-down recursion (b = 0) leaves zero rows: their eigenvectors carry no weight; keep
    # the surplus diagonal at the mean (the shift) so every node stays inside the support's hull
    a = np.where(np.concatenate([np.ones((B, 1), bool), np.cumprod(b != 0, axis=1).astype(bool)], axis=1), a, 0.0)
    return a, b


def _gauss_from_jacobi(a, b):
    """Nodes (eigenvalues) and weights (summing to one) of the Gauss rules of Jacobi matrices
    (a (B, m), b (B, m - 1)): the weights (Golub-Welsch: squared first eigenvector components)
    as Christoffel numbers 1 / sum_j p_j(node)^2 of the orthonormal polynomials of the
    recurrence (cheaper than eigenvectors); a broken-down recurrence (some b = 0) takes the
    eigenvectors."""
    B, m = a.shape
    J = np.zeros((B, m, m))
    ii = np.arange(m)
    J[:, ii, ii] = a
    J[:, ii[:-1], ii[1:]] = b
    J[:, ii[1:], ii[:-1]] = b
    lam = np.linalg.eigvalsh(J)
    full = np.all(b > 0, axis=1)
    wts = np.empty((B, m))
    if full.any():
        L, A, Bc = lam[full], a[full], b[full]
        p_prev, p_cur = np.zeros_like(L), np.ones_like(L)
        ssum = np.ones_like(L)
        for k in range(m - 1):
            p_next = ((L - A[:, k, None]) * p_cur - (Bc[:, k - 1, None] * p_prev if k else 0.0)) / Bc[:, k, None]
            ssum += p_next**2
            p_prev, p_cur = p_cur, p_next
        wts[full] = 1.0 / ssum
    if not full.all():
        lam_b, U = np.linalg.eigh(J[~full])
        lam[~full], wts[~full] = lam_b, U[:, 0, :] ** 2
    return lam, wts


def jacobi_batch(x, w, m):
    """For each row b, the m x m Jacobi matrix of the discrete measure ``sum_j w[b, j]
    delta(x[b, j])`` (w >= 0), normalised and centred: ``(a, b, shift, tot)`` with the
    recurrence coefficients a (B, m), b (B, m - 1) of x - shift, the mean ``shift`` and the
    mass ``tot`` (B,). Its Gauss rule is :func:`gauss_rule_batch`'s."""
    x = np.asarray(x, float)
    w = np.asarray(w, float)
    B, N = x.shape
    rows = max(1, LANCZOS_ELEMS // max(1, m * N))
    if B > rows:                                  # rows are independent: blocks stay in cache
        parts = [jacobi_batch(x[r:r + rows], w[r:r + rows], m) for r in range(0, B, rows)]
        return tuple(np.concatenate(p) for p in zip(*parts))
    tot = w.sum(-1)
    tsafe = np.where(tot > 0, tot, 1.0)
    shift = (w * x).sum(-1) / tsafe
    xs = x - shift[:, None]
    a, b = _lanczos(lambda v: xs * v, np.sqrt(w / tsafe[:, None]), m, 1e-13 * (1.0 + np.abs(xs).max(-1)))
    return a, b, shift, tot


def gauss_rule_batch(x, w, m):
    """Batched :func:`gauss_rule`: for each row b, an ``m``-point Gauss rule of the
    discrete measure ``sum_j w[b, j] delta(x[b, j])`` (w >= 0). Returns nodes and weights
    (B, m); where the measure has fewer than m support points the surplus nodes get weight 0
    (up to rounding) and a zero measure gives zero weights."""
    a, b, shift, tot = jacobi_batch(x, w, m)
    lam, wts = _gauss_from_jacobi(a, b)
    return lam + shift[:, None], tot[:, None] * wts


def product_gauss_rule(coef, fx, fy, m):
    """For each row b, the ``m``-point Gauss rule of the law of G = X Y under the measure
    ``sum_t coef[t, b] mu_X[t, b] (x) mu_Y[t, b]``, where each factor measure is given by its
    :func:`jacobi_batch` tuple (arrays with a leading term axis t, as ``fx``, ``fy``).

    The Lanczos recurrence of G runs on the direct sum over t of the tensor-product spaces, with
    the operator J_X (x) J_Y of each term (J with the shift on its diagonal) and the start
    sum_t sqrt(coef mass_X mass_Y / total) e_1 (x) e_1: the moments it sees,
    E[G^j] = E[X^j] E[Y^j], are those of the factor Gauss rules' product measure, exact for
    j < 2 m_f (m_f: the factors' size), so for m_f >= m the rule equals that of the product of
    the factor rules, without forming them. Returns nodes and weights (B, m)."""
    aX, bX, sX, tX = fx
    aY, bY, sY, tY = fy
    T, B, mf = aX.shape
    ii = np.arange(mf)

    def dense(a, b, sh):                                          # (B, T, mf, mf) Jacobi matrices
        J = np.zeros((B, T, mf, mf))
        J[..., ii, ii] = np.moveaxis(a + sh[..., None], 0, 1)
        J[..., ii[:-1], ii[1:]] = J[..., ii[1:], ii[:-1]] = np.moveaxis(b, 0, 1)
        return J

    JX, JY = dense(aX, bX, sX), dense(aY, bY, sY)
    mass = np.moveaxis(np.asarray(coef, float) * tX * tY, 0, 1)   # (B, T)
    tot = mass.sum(-1)
    v0 = np.zeros((B, T, mf, mf))
    v0[:, :, 0, 0] = np.sqrt(np.maximum(mass, 0.0) / np.where(tot > 0, tot, 1.0)[:, None])

    def kron(v):
        return (JX @ v.reshape(B, T, mf, mf) @ JY).reshape(B, -1)   # (J_X (x) J_Y) v, J_Y symmetric

    v0 = v0.reshape(B, -1)
    shift = np.einsum("bn,bn->b", v0, kron(v0))
    a, b = _lanczos(lambda v: kron(v) - shift[:, None] * v, v0, m, 1e-13 * 3.0)
    lam, wts = _gauss_from_jacobi(a, b)
    return lam + shift[:, None], tot[:, None] * wts


def gauss_rules_shared_weights(x, w, m):
    """Batched m-point Gauss rules of the measures sum_j w_j delta(x[b, j]) (w >= 0, one weight
    vector for every row b): Lanczos with full reorthogonalisation on each row at once; after a
    breakdown (a measure with fewer than m points of support) the remaining nodes get weight 0."""
    x = np.asarray(x, float)
    w = np.asarray(w, float) / np.sum(w)
    B = x.shape[0]
    shift = x @ w
    xs = x - shift[:, None]
    scale = 1.0 + np.abs(xs).max(1)
    V = np.zeros((B, m, x.shape[1]))
    a, b = np.zeros((B, m)), np.zeros((B, m - 1))
    V[:, 0] = np.sqrt(w)[None, :]
    for k in range(m):
        y = xs * V[:, k]
        a[:, k] = np.einsum("bj,bj->b", V[:, k], y)
        for _ in range(2):
            y -= np.einsum("bkj,bk->bj", V[:, : k + 1], np.einsum("bkj,bj->bk", V[:, : k + 1], y))
        if k + 1 < m:
            nb = np.linalg.norm(y, axis=1)
            ok = nb > 1e-12 * scale
            b[:, k] = np.where(ok, nb, 0.0)
            V[:, k + 1] = np.where(ok[:, None], y / np.where(ok, nb, 1.0)[:, None], 0.0)
    Jm = np.zeros((B, m, m))
    idx = np.arange(m)
    Jm[:, idx, idx] = a
    Jm[:, idx[:-1], idx[1:]] = b
    Jm[:, idx[1:], idx[:-1]] = b
    lam, U = np.linalg.eigh(Jm)
    return lam + shift[:, None], U[:, 0, :] ** 2
