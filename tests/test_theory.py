"""The mean-field theory library: forward (eqs. (6)-(9)), backward (eqs. (11)-(14)), Lemma 1,
closed-form limits, the vanilla tanh RNN of Poole et al./Schoenholz et al., vectorisation,
the Table 1 reference updates, the constructors, the solver and bad input.

Tolerances here are numerical, not statistical: quadrature orders are chosen for ~1e-7 accuracy
(meanfield.nodes_for); the quadrature and Mehler-series paths agree to
~1e-9 (checked against each other and against scipy.integrate), finite differences of the map
with step h = 1e-5 are accurate to O(h^2) ~ 1e-9 plus rounding u64 |C| / h ~ 1e-11. Every such
tolerance is a discretisation error (the same on every CPU); float64 rounding (u64 = 2**-53,
times the fixed point's conditioning 1/(1 - chi) <= 1e4 here) stays <= 1e-12, so they cannot
depend on the machine. Comparisons of the float64 reference update with the torch step are pure
rounding: reductions of N + n_in = 10 terms of O(1) plus one gate function, <= 20 u64 ~ 2e-15
(allowed 1e-12). The solver's time scale is compared in chi, never in xi (dxi/xi = xi dchi/chi:
near chi = 1 a relative xi tolerance is a chi tolerance that shrinks like 1/xi).
"""
import numpy as np
import pytest
from scipy import integrate, stats

from rnn_mft.theory import ARCHS, Theta, analyze, meanfield as mf, solve_for_timescale, gru
from rnn_mft.theory.architectures import TABLE1, reference_step, unrolled_cell_state

CLOSED = ("vanilla", "minimal", "gru", "peephole_lstm")


def solver_ctol(chi, tol=1e-8, xi_rtol=1e-4):
    """The chi tolerance at which solve_for_timescale's search stops (its defaults): ``tol``, or
    ``xi_rtol / 10`` relative in xi (dchi = chi |log chi| dxi/xi), whichever is smaller."""
    return min(tol, 0.1 * xi_rtol * chi * -np.log(chi))


def generic(arch, mu_f=0.5, **kw):
    return Theta.uniform(arch, sigma2=kw.get("sigma2", 1.0), nu2=1.0, rho2=0.1).replace({"f.mu": mu_f})


@pytest.mark.parametrize("arch", CLOSED)
@pytest.mark.parametrize("sz", [0.0, 0.4, 0.9])
def test_fixed_point_and_chi_against_the_quadrature_map(arch, sz):
    """The fast path (Mehler series) finds a fixed point of the direct-quadrature map (6), and
    chi (eq. (8)) equals a central finite difference of that map around C*."""
    th = generic(arch, mu_f=np.array([-1.0, 0.5, 2.0]))
    fp = mf.fixed_point(th, sz)
    assert fp.converged.all()
    mu, q, c = mf.step(th, fp.mu_s, fp.q_s, fp.c_s, sz)
    # two discretisations of one map (series vs direct rule): nodes_for's ~1e-7 accuracy (measured
    # <= 1.2e-8 in Q); the solver's own residual (tol 1e-10) is 1e3 below
    np.testing.assert_allclose(mu, fp.mu_s, atol=1e-7)
    np.testing.assert_allclose(q, fp.q_s, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(c, fp.c_s, atol=1e-7)
    h = 1e-5
    fd = (mf.step(th, fp.mu_s, fp.q_s, fp.c_s + h, sz)[2] - mf.step(th, fp.mu_s, fp.q_s, fp.c_s - h, sz)[2]) / (2 * h)
    # O(h^2) ~ 1e-10, rounding u64/h ~ 1e-11, the two rules' 1e-7 difference across 2h: <= 1e-7
    np.testing.assert_allclose(fp.chi, fd, atol=1e-6)


@pytest.mark.parametrize("arch", CLOSED)
def test_series_map_equals_quadrature_map_for_all_C(arch):
    th = generic(arch, mu_f=1.0)
    fp = mf.fixed_point(th, 0.3)
    C = np.linspace(-0.5, 1.0, 7)
    fast = fp.cmap(C)
    slow = mf.step(th, fp.mu_s, fp.q_s, C, 0.3)[2]
    np.testing.assert_allclose(fast, slow, atol=1e-7)       # nodes_for's accuracy (measured 2.4e-9)


@pytest.mark.parametrize("arch", CLOSED + ("lstm",))
def test_lemma1_m1_equals_chi_at_C1_sigmaz1(arch):
    """Lemma 1 (eq. (13)): m_{JJ^T,1} = chi_{C*=1, Sigma_z=1}, on a grid of Theta. For the LSTM
    it holds for the paper's one-state formulas (A.2.3); the two-state theory breaks it (see
    tests/test_theory_lstm_twostate.py)."""
    th = Theta.grid(generic(arch), {"f.mu": [-1.0, 1.0, 3.0], "f.sigma2": [0.2, 1.0]})
    kw = dict(method="paper") if arch == "lstm" else {}
    r = analyze(arch, th, 1.0, n_s=400, n_iters=100, **kw)
    assert r.converged.all()
    ok = r.c_s == 1.0
    assert ok.sum() >= 4
    # two formulas, equal analytically; on the same nodes they agree to rounding (measured 3e-15
    # relative), and 1e-7 (nodes_for's accuracy) would allow different rules
    np.testing.assert_allclose(r.m1[ok], r.chi[ok], rtol=1e-7)


@pytest.mark.parametrize("arch", ("minimal", "gru", "peephole_lstm", "lstm"))
def test_limit_sigma_to_zero_and_mu_f_to_infinity(arch):
    """Section 4.4: all sigma_k^2 -> 0 and mu_f -> inf give chi -> 1 and var -> 0."""
    base = Theta.uniform(arch, sigma2=1e-8, nu2=1.0, rho2=0.0)
    mus = np.array([2.0, 4.0, 7.0, 10.0])
    # the LSTM's one-state formulas (A.2.3); its two-state Jacobian has N zero singular values in
    # this limit (tests/test_theory_lstm_twostate.py)
    kw = dict(method="paper") if arch == "lstm" else {}
    r = analyze(arch, base.replace({"f.mu": mus}), 0.5 if arch != "lstm" else 1.0, n_s=400, n_iters=600, **kw)
    assert r.converged.all()
    assert np.all(np.diff(r.chi) > 0)
    # limit values, not rounding: at mu_f = 10, 1 - chi ~ E[1 - sigma(u_f)^2] ~ 1.5e-4 and var =
    # O(sigma^2 + (1 - sigma)^2) ~ 4e-8; the bounds sit 7x and 25x above, rounding ~1e-16 far below
    assert 1 - r.chi[-1] < 1e-3 and abs(r.m1[-1] - 1) < 1e-3
    assert np.all(np.diff(r.var) < 0) and abs(r.var[-1]) < 1e-6
    assert np.all(np.diff(r.xi) > 0)


def _poole(sw2, sb2):
    """Independent scipy.integrate implementation of the tanh q-map, chi_1 and the c-map slope
    (Poole et al. 2016, Schoenholz et al. 2016) at q* with sigma_b^2 = nu^2 R + rho^2."""
    def E(f, q):
        return integrate.quad(lambda z: f(np.sqrt(q) * z) * stats.norm.pdf(z), -12, 12, epsabs=1e-13)[0]
    q = 1.0
    for _ in range(2000):
        qn = E(lambda u: np.tanh(sw2 * 0 + u) ** 2, sw2 * q + sb2)
        if abs(qn - q) < 1e-14:
            break
        q = qn
    qu = sw2 * q + sb2
    chi1 = sw2 * E(lambda u: (1 - np.tanh(u) ** 2) ** 2, qu)
    return q, chi1


@pytest.mark.parametrize("sw2,nu2,rho2", [(0.8, 0.2, 0.0), (1.5, 0.05, 0.05), (2.5, 0.3, 0.1)])
def test_vanilla_against_the_known_tanh_results(sw2, nu2, rho2):
    """Vanilla RNN = deep tanh network with sigma_b^2 = nu^2 R + rho^2 (Poole et al. 2016):
    q* of the q-map and chi_1 = sigma_w^2 E[phi'(u)^2] = chi at C* = 1, Sigma_z = 1 when
    chi_1 <= 1 (ordered phase; in the chaotic phase C* < 1)."""
    th = Theta.uniform("vanilla", sigma2=sw2, nu2=nu2, rho2=rho2)
    r = analyze("vanilla", th, 1.0)
    q, chi1 = _poole(sw2, nu2 + rho2)
    # the library's rule (~1e-7 per expectation, times the q-map's conditioning for q*; measured
    # 1e-13 relative) against quad at 1e-13
    assert r.q_s == pytest.approx(q, rel=1e-6)
    assert r.m1 == pytest.approx(chi1, rel=1e-6)
    if chi1 < 1:
        assert r.c_s == 1.0 and r.chi == pytest.approx(chi1, rel=1e-6)
    else:
        assert r.c_s < 1 and r.chi < 1


def test_vanilla_edge_of_chaos():
    """sigma_w^2 = 1, sigma_b^2 -> 0 is the critical point of the tanh network: chi -> 1."""
    r = analyze("vanilla", Theta.uniform("vanilla", sigma2=1.0, nu2=np.array([1e-2, 1e-3, 1e-4])), 1.0)
    # a limit, not rounding: chi = 0.876, 0.957, 0.986 here (1 - chi ~ 1.3 sigma_b -> 0)
    assert np.all(np.diff(r.chi) > 0) and r.chi[-1] > 0.98


@pytest.mark.parametrize("arch", CLOSED + ("lstm",))
def test_vectorised_grid_equals_pointwise(arch):
    th = Theta.grid(generic(arch), {"f.mu": [-0.5, 1.5], "r.sigma2" if arch != "vanilla" else "f.nu2": [0.3, 1.2]})
    sz = np.array([0.2, 1.0])[:, None, None]
    kw = dict(method="paper") if arch == "lstm" else {}     # Sigma_z = 0.2 with rho2 > 0: 0 < C* < 1
    r = analyze(arch, th, sz, n_s=300, n_iters=80, **kw)
    assert r.chi.shape == (2, 2, 2)
    for a in range(2):
        for i in range(2):
            for j in range(2):
                p = analyze(arch, th.index((i, j)), float(sz[a, 0, 0]), n_s=300, n_iters=80, **kw)
                # the quadrature order follows the grid's largest variance, so a point alone
                # is integrated with fewer nodes: agreement to the quadrature's accuracy (~1e-7
                # per expectation, times 1/(1 - chi) <= 1e2 for the fixed point; measured 1.3e-6
                # relative; the LSTM's sampled chain uses the same seed in both)
                for k in ("q_s", "c_s", "chi", "m1", "m2"):
                    assert float(getattr(p, k)) == pytest.approx(getattr(r, k)[a, i, j], rel=1e-4, abs=1e-8), k


def test_gru_module_agrees_with_analyze():
    th = generic("gru", mu_f=np.array([-1.0, 2.0]))
    old = gru.fixed_point(th, 0.5)
    new = analyze("gru", th, 0.5)
    # two solvers of one map: gru's residual tol 1e-9 (x 1/(1 - chi) <= 3.6 here) and the quadrature
    # rules' difference (measured 7e-10 in C*, 5e-10 relative in Q*)
    np.testing.assert_allclose(old.c_s, new.c_s, atol=1e-8)
    np.testing.assert_allclose(old.q_s, new.q_s, rtol=1e-8)


@pytest.mark.parametrize("arch", CLOSED + ("lstm",))
def test_jacobian_moments_are_consistent(arch):
    """var = m2 - m1^2 >= 0; the printed eq. (14) and the free-probability m2 agree when no a_k
    fluctuates (only a_0, deterministic: all sigma_k^2 = 0 and deterministic gates)."""
    r = analyze(arch, Theta.grid(generic(arch), {"f.mu": [-1.0, 1.0, 3.0]}), 1.0, n_s=400, n_iters=100)
    assert np.all(r.var >= -1e-12)           # m2 - m1^2 of O(1) moments: cancellation ~ 4 u64 m2 ~ 1e-15
    th0 = Theta.uniform(arch, sigma2=0.0, nu2=0.0, rho2=0.0, mu=0.3).replace({"f.mu": 2.0})
    kw = dict(method="paper") if arch == "lstm" else {}     # eq. (14) as printed: one-state formulas
    r0 = analyze(arch, th0, 1.0, n_s=100, n_iters=50, **kw)
    # algebraically equal here (deterministic a_0): the two sums differ by rounding, ~10 u64 ~ 1e-15
    assert float(r0.m2) == pytest.approx(float(r0.m2_printed), abs=1e-12)


def test_standard_and_critical_constructors():
    # approx's default rel 1e-6 on one or two float64 operations (error <= 2 u64)
    st = Theta.standard("lstm")
    assert float(st["f"].mu) == 1 and float(st["i"].sigma2) == 1 and float(st["i"].nu2) == pytest.approx(0.4)
    assert float(Theta.standard("lstm", n_in=1, n_hidden=100)["f"].nu2) == pytest.approx(2 / 401)
    cr = Theta.critical("peephole_lstm")
    assert float(cr["f"].mu) == 5 and float(cr["o"].sigma2) == 1e-5 and float(cr["r"].nu2) == 0
    cl = Theta.critical("lstm")
    assert float(cl["f"].nu2) == 1 and float(cl["o"].sigma2) == 1 and float(cl["i"].sigma2) == 1e-5
    for arch in ARCHS:
        r = analyze(arch, Theta.critical(arch), 1.0, n_s=300, n_iters=150)
        s = analyze(arch, Theta.standard(arch), 1.0, n_s=300, n_iters=150)
        assert r.converged and s.converged
        if arch != "lstm":   # C.4's LSTM is the CIFAR-10 setting, chosen with a short xi
            assert r.xi > 10 * s.xi
    with pytest.raises(ValueError, match="n_in"):
        Theta.standard("gru", n_in=3)


@pytest.mark.parametrize("arch", ["gru", "peephole_lstm", "minimal", "vanilla"])
@pytest.mark.parametrize("xi", [30.0, 1000.0])
def test_solver_hits_the_target(arch, xi):
    s = solve_for_timescale(arch, xi=xi)
    target = np.exp(-1 / xi)
    # in chi, to the search's own stopping tolerance (a relative 1e-5 in xi was exactly that
    # tolerance at xi = 1000: the vanilla RNN stopped 2.9e-9 from the target, 0.29 of it)
    assert abs(s.chi - target) < solver_ctol(target)
    r = analyze(arch, s.theta, 1.0)          # the solver's last evaluation, repeated: same numbers
    assert abs(float(r.chi) - target) < solver_ctol(target)
    if arch != "vanilla":       # Gaussian weights: the vanilla Jacobian is never isometric
        assert s.var < 1e-4 and abs(s.m1 - 1) < 0.05


def test_solver_lstm_and_bounds():
    s = solve_for_timescale("lstm", xi=50, n_s=200, n_iters=150)
    assert abs(s.chi - np.exp(-1 / 50)) < solver_ctol(np.exp(-1 / 50))     # in chi, the search's tolerance
    s2 = solve_for_timescale("peephole_lstm", chi=0.99, bounds={"f.mu": (0, 12), "f.sigma2": (1e-5, 0.5)})
    assert abs(s2.chi - 0.99) < solver_ctol(0.99)
    with pytest.raises(ValueError, match="not reachable"):
        solve_for_timescale("gru", xi=100, bounds={"f.mu": (0, 1)})
    with pytest.raises(ValueError, match="unknown gate"):
        solve_for_timescale("gru", xi=100, bounds={"q.mu": (0, 1)})
    with pytest.raises(ValueError, match="xi"):
        solve_for_timescale("gru", xi=-1)


def _params(arch, N, n_in, rng):
    return {g: (rng.normal(0, 1 / np.sqrt(N), (N, N)), rng.normal(0, 1 / np.sqrt(n_in), (N, n_in)),
                rng.normal(0.3, 0.5, N)) for g in ARCHS[arch]}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_reference_step_matches_simulator_and_table(arch):
    """The numpy reference of Table 1 equals the torch step of the simulator, batched."""
    import torch
    from rnn_mft.sim.networks import STEPS
    rng = np.random.default_rng(0)
    N, n_in, B = 7, 3, 4
    P = _params(arch, N, n_in, rng)
    s = rng.normal(size=(B, N))
    z = rng.normal(size=(B, n_in))
    Pt = {g: tuple(torch.tensor(a)[None] for a in (W, U, b[:, None])) for g, (W, U, b) in P.items()}
    St = torch.tensor(s.T)[None].repeat(1, 1, 1)
    if arch == "lstm":
        c = rng.normal(size=(B, N))
        h1, c1 = reference_step(arch, (s, c), z, P)
        ht, ct = STEPS[arch](Pt, (torch.tensor(s.T)[None], torch.tensor(c.T)[None]), torch.tensor(z.T)[None])
        np.testing.assert_allclose(h1, ht[0].numpy().T, atol=1e-12)
        np.testing.assert_allclose(c1, ct[0].numpy().T, atol=1e-12)
        # the unrolled form of Table 1 equals the iterated eq. (16)
        T = 5
        uf, ui, ur = (rng.normal(size=(T, N)) for _ in range(3))
        cc = c[0]
        for t in range(T):
            cc = 1 / (1 + np.exp(-uf[t])) * cc + 1 / (1 + np.exp(-ui[t])) * np.tanh(ur[t])
        np.testing.assert_allclose(unrolled_cell_state(c[0], uf, ui, ur), cc, atol=1e-12)
    else:
        s1 = reference_step(arch, s, z, P)
        st = STEPS[arch](Pt, St, torch.tensor(z.T)[None])
        np.testing.assert_allclose(s1, st[0].numpy().T, atol=1e-12)
        assert s1.shape == (B, N)
    assert TABLE1[arch].gates == ARCHS[arch] and TABLE1[arch].f and TABLE1[arch].state


def test_bad_input():
    th = generic("gru")
    with pytest.raises(ValueError, match=r"sigma2.*>= 0"):
        Theta.uniform("gru", sigma2=-1.0)
    with pytest.raises(ValueError, match="unknown architecture"):
        analyze("rnn", th)
    with pytest.raises(ValueError, match="unknown gate"):
        Theta("gru", {"f": {}, "r": {}, "r2": {}, "o": {}})
    with pytest.raises(ValueError, match="missing gate"):
        Theta("gru", {"f": {}, "r": {}})
    with pytest.raises(ValueError, match=r"sigma_z.*\[0, 1\]"):
        analyze("gru", th, sigma_z=1.2)
    with pytest.raises(ValueError, match=r"sigma_z.*\[0, 1\]"):
        analyze("gru", th, sigma_z=-0.1)
    with pytest.raises(ValueError, match="finite"):
        Theta.uniform("gru", mu=np.nan)
    with pytest.raises(ValueError, match="finite"):
        Theta.uniform("gru", nu2=np.inf)
    with pytest.raises(ValueError, match="R="):
        analyze("gru", th, R=0.0)
    with pytest.raises(ValueError, match="arch='lstm'"):
        analyze("gru", Theta.standard("lstm"))
    with pytest.raises(ValueError, match="n_s"):
        analyze("lstm", Theta.standard("lstm"), n_s=0)
