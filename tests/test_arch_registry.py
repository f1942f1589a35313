"""The architecture registry (rnn_mft.arch): one module per cell, and a toy cell added in one module.

The toy (tests/arch_toy_gated_vanilla.py, s' = sigma(u_o) tanh(u_f)) is registered and then run
through everything the registry feeds: Theta, the float64 reference update, the simulator, the
finite-width Jacobian and ``analyze``. The theory is checked against things it does not compute
itself: the fixed point against a scipy.integrate evaluation of the map eq. (6), chi against a
finite difference of the direct-quadrature map, and (mu*, Q*, C*), m1 against simulated untied
networks with the tolerances of tests/test_sim_theory.py (5 standard errors plus 2/N).

Numerical tolerances (float64, u64 = 2**-53): the reference update against the same formula by
hand is rounding of N + n = 12-term products, <= ~30 u64 ~ 3e-15 (allowed 1e-14; the torch step
1e-12); the theory against scipy.integrate (1e-13) is the library's quadrature (~1e-9 here, at
variances <= 2) times the fixed point's conditioning; the central difference for chi has
O(h^2) ~ 1e-10 truncation and u64/h ~ 1e-11 rounding.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate

from rnn_mft import arch
from rnn_mft.nets import _loops
from rnn_mft.sim import jacobian, simulate_pair, squared_singular_values
from rnn_mft.sim.networks import STEPS
from rnn_mft.theory import ARCHS, TABLE1, Theta, analyze, meanfield as mf, reference_step

TOY = Path(__file__).with_name("arch_toy_gated_vanilla.py")


def _load_toy():
    spec = importlib.util.spec_from_file_location("arch_toy_gated_vanilla", TOY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def toy():
    mod = _load_toy()
    arch.register(mod)
    try:
        yield mod.ARCH.name
    finally:
        arch.unregister(mod.ARCH.name)


def toy_theta(name):
    return Theta.uniform(name, sigma2=1.2, nu2=0.6, rho2=0.05, o={"mu": 0.5})


def _sig(x):
    return 1 / (1 + np.exp(-x))


# --- the registry itself --------------------------------------------------------------------------
def test_registry_holds_table1_and_feeds_the_library():
    assert arch.names() == ("vanilla", "minimal", "gru", "peephole_lstm", "lstm")
    assert ARCHS is arch.GATES and mf.SPECS is arch.SPECS
    for name in arch.names():
        a = arch.get(name)
        assert a.gates == ARCHS[name] == TABLE1[name].gates
        assert _loops.loop_for(name).gates == a.storage_order     # its fused loop is written for that order
        assert sorted(a.storage_order) == sorted(a.gates)
        assert (a.spec is None) == (name == "lstm")
    assert arch.get("peephole_lstm").bounded is False and arch.get("gru").bounded is True


def test_registry_rejects_bad_input():
    with pytest.raises(ValueError, match="arch='nope'.*allowed: vanilla"):
        arch.get("nope")
    with pytest.raises(ValueError, match="cannot be replaced"):
        arch.register(arch.Architecture("gru", ("f",), lambda pre, s, ops: s, arch.Spec("zero", "tanh", ())))
    with pytest.raises(ValueError, match="cannot be unregistered"):
        arch.unregister("vanilla")
    with pytest.raises(ValueError, match="needs an Architecture"):
        arch.register(42)
    with pytest.raises(ValueError, match=r"uses gates \['r'\]"):
        arch.Architecture("bad", ("f",), lambda pre, s, ops: s, arch.Spec("sig", "omsig", (("r", "tanh"),)))
    with pytest.raises(ValueError, match="function 'cos'"):
        arch.Spec("zero", "cos", ())
    with pytest.raises(ValueError, match="storage_order"):
        arch.Architecture("bad", ("f", "r"), lambda pre, s, ops: s, storage_order=("f", "x"))


def test_jacobian_terms_of_the_gru_spell_appendix_a2():
    D0, terms = arch.get("gru").jacobian_terms()
    assert D0 == [(1.0, (("f", "sig"),), 0)]
    assert [t[0] for t in terms] == ["f", "r2"]
    assert terms[0][1] == [(1.0, (("f", "dsig"),), 1), (1.0, (("f", "ndsig"), ("r2", "tanh")), 0)]
    assert terms[1][1] == [(1.0, (("f", "omsig"), ("r2", "dtanh")), 0)]
    assert terms[1][2][2] == "r"                         # the (1b) factor D_g + D_H W_r
    with pytest.raises(ValueError, match="no closed-form"):
        arch.get("lstm").jacobian_terms()


# --- a toy architecture: one module, one registration ----------------------------------------------
def test_toy_registration_is_complete_and_reversible(toy):
    assert toy in arch.names() and ARCHS[toy] == ("f", "o") and toy in mf.SPECS and toy in STEPS
    th = toy_theta(toy)
    assert th.arch == toy
    with pytest.raises(ValueError, match="already registered"):
        arch.register(arch.Architecture(toy, ("f",), lambda pre, s, ops: s))
    arch.unregister(toy)
    assert toy not in ARCHS and toy not in mf.SPECS and toy not in STEPS
    with pytest.raises(ValueError, match="unknown architecture"):
        Theta.uniform(toy, sigma2=1.0)
    arch.register(_load_toy())


def test_toy_reference_update_and_simulator_step(toy):
    rng = np.random.default_rng(1)
    N, n, B = 7, 5, 3
    P = {g: (rng.normal(size=(N, N)), rng.normal(size=(N, n)), rng.normal(size=N)) for g in ARCHS[toy]}
    s, z = rng.normal(size=(B, N)), rng.normal(size=(B, n))
    uf = s @ P["f"][0].T + z @ P["f"][1].T + P["f"][2]
    uo = s @ P["o"][0].T + z @ P["o"][1].T + P["o"][2]
    want = _sig(uo) * np.tanh(uf)                               # the toy's eq. (1c), by hand
    assert np.allclose(reference_step(toy, s, z, P), want, rtol=0, atol=1e-14)
    hard = np.clip(0.2 * uo + 0.5, 0, 1) * np.tanh(uf)
    assert np.allclose(reference_step(toy, s, z, P, hard_sigmoid=True), hard, rtol=0, atol=1e-14)
    # the simulator's batched torch step (B, N, copies) on the same weights
    Pt = {g: tuple(torch.tensor(a)[None] for a in (W, U, b[:, None])) for g, (W, U, b) in P.items()}
    got = STEPS[toy](Pt, torch.tensor(s.T)[None], torch.tensor(z.T)[None])[0].numpy().T
    assert np.allclose(got, want, rtol=0, atol=1e-12)


def _toy_map_scipy(th, q, R=1.0):
    """(mu', Q') of eq. (6) for the toy by scipy.integrate: mu' = E tanh(u_f) E sig(u_o)."""
    def E(f, p):
        v = th[p].sigma2 * q + th[p].nu2 * R + th[p].rho2           # eq. (4a)
        m = float(th[p].mu)
        g = lambda x: f(m + np.sqrt(v) * x) * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)  # noqa: E731
        return integrate.quad(g, -12, 12, epsabs=1e-13, epsrel=1e-13, limit=200)[0]
    mu = E(np.tanh, "f") * E(_sig, "o")
    Q = E(lambda u: np.tanh(u) ** 2, "f") * E(lambda u: _sig(u) ** 2, "o")
    return mu, Q


def test_toy_analyze_against_independent_integration(toy):
    th = toy_theta(toy)
    r = analyze(toy, th, sigma_z=0.4)
    assert bool(r.converged) and r.info["method"] == "quadrature + Mehler series"
    mu, Q = _toy_map_scipy(th, float(r.q_s))
    assert abs(Q - float(r.q_s)) < 1e-9 and abs(mu - float(r.mu_s)) < 1e-9
    # C* is a fixed point of the direct-quadrature map, chi its slope there (eq. (8))
    m, q, c = float(r.mu_s), float(r.q_s), float(r.c_s)
    assert abs(float(mf.step(th, m, q, c, 0.4, n=200)[2]) - c) < 1e-9
    h = 1e-5
    fd = (float(mf.step(th, m, q, c + h, 0.4, n=200)[2]) - float(mf.step(th, m, q, c - h, 0.4, n=200)[2])) / (2 * h)
    assert abs(fd - float(r.chi)) < 1e-7
    # Lemma 1: at Sigma_z = 1 (C* = 1) the Jacobian's m1 equals chi (two formulas on the same nodes:
    # rounding, ~1e-15; 1e-10 leaves room for either's quadrature order)
    r1 = analyze(toy, th, sigma_z=1.0)
    assert float(r1.c_s) == 1.0 and abs(float(r1.m1) - float(r1.chi)) < 1e-10
    # a grid goes through the scheduled path (two halves on two threads) with the same numbers
    grid = th.replace({"f.sigma2": np.full(2048, 1.2)})
    # (the same points solved as a grid: the same quadrature order, rounding and the solver's
    # residual tolerance 1e-10 times 1/(1 - chi): rtol 1e-9; measured 2e-12)
    rg = analyze(toy, grid, sigma_z=0.4)
    assert np.allclose(rg.chi, float(r.chi), rtol=1e-9, atol=0) and rg.converged.all()


def test_toy_theory_matches_simulated_networks(toy):
    """(mu*, Q*, C*) against untied networks; tolerances as in tests/test_sim_theory.py."""
    th = toy_theta(toy)
    N, seeds, sz = 2000, 8, 0.4
    r = analyze(toy, th, sz)
    sim = simulate_pair(toy, th, N, np.full(40, sz), n_seeds=seeds, seed=5)
    last = slice(-20, None)
    mu, q, c = (getattr(sim, k)[last].mean() for k in ("mu_s", "q_s", "c_s"))
    Q = float(r.q_s)
    tol_mu = 5 * np.sqrt(Q / (2 * N * seeds)) + 2 / N
    tol_q = 5 * np.sqrt(Q / (2 * N * seeds)) + 2 * Q / N      # |s| <= 1: Var(s^2) <= E s^4 <= Q
    tol_c = 5 * np.sqrt(2 / (N * seeds)) + 2 / N
    assert abs(mu - float(r.mu_s)) < tol_mu, (mu, r.mu_s, tol_mu)
    assert abs(q - Q) < tol_q, (q, Q, tol_q)
    assert abs(c - float(r.c_s)) < tol_c, (c, r.c_s, tol_c)


def test_toy_jacobian_m1_matches_untied_networks(toy):
    """m1 (eq. (11), from the registry's Jacobian terms) against the spectrum of J J^T."""
    th = toy_theta(toy)
    n_real, n = 3, 400
    r = analyze(toy, th, 1.0)
    lam = np.stack([squared_singular_values(jacobian(toy, th, n, T=20, seed=s)) for s in range(n_real)])
    tol1 = 5 * np.sqrt(lam.var() / lam.size) + 2 / n
    assert abs(lam.mean() - float(r.m1)) < tol1, (lam.mean(), r.m1, tol1)
