"""No number past what float64 (or Monte Carlo) resolves: one test per defect of the hostile review
(see rnn_mft.theory.analysis, "Resolution of xi").

Each test failed on the code before the fix (HEAD 66631f5; run with ``PYTHONPATH=<that tree>/src``):

* the GRU at mu_f = 50 gave chi = 1 - 3.3e-16 (rounding noise) and xi = 3.0e15 against 2.59e21, the
  same xi for every mu_f past about 36, and 5.3297e12 against 5.3432e12 at mu_f = 30;
* ``solve_for_timescale("gru", xi=1e14, bounds={"f.mu": [-5, 40]})`` returned xi = 1.0008e14, 8e-4
  off its 1e-4 contract (the target chi = exp(-1/xi) itself rounds to the xi of 1.0008e14), and
  the two-state LSTM "met" xi = 1e9, where float64 resolves 1 - chi to 4.5e-13, i.e. xi to 4.5e-4;
* the joint LSTM theory gave C* = 1.001 at Sigma_z = 0.99999 with converged = True;
* Algorithm 1 with n_s = 1, n_iters = 1 gave xi = 518 (37 at the defaults) with converged = True,
  and reported no Monte Carlo error.

Tolerances are float64 bounds, gamma_n = n eps / (1 - n eps) times the condition number of the
quantity compared (Higham, Accuracy and Stability of Numerical Algorithms), or statistical bounds
(chi-square quantiles) for the Monte Carlo error, never guessed.
"""
import json
import math
import warnings

import mpmath as mp
import numpy as np
import pytest

from rnn_mft.cli import main
from rnn_mft.theory import Theta, analyze, solve_for_timescale

EPS = np.finfo(float).eps


def gamma(n):
    return n * EPS / (1 - n * EPS)


#: roundings behind one chi of the closed-form theory (theory.meanfield.cmap): Horner of degree
#: M <= 320 (2M roundings) on nq <= 600-node Gauss-Hermite sums, and 16 for products and divisions
N_CLOSED = 2 * 320 + 600 + 16


# =============================================================================== 1. 1 - chi of the GRU
def _E(g, m, v):
    """E g(u), u ~ N(m, v), by mpmath quadrature (40 digits)."""
    s = mp.sqrt(v)
    return mp.quad(lambda z: g(m + s * z) * mp.exp(-z * z / 2), [-mp.inf, -8, 0, 8, mp.inf]) / mp.sqrt(2 * mp.pi)


def _gru_one_minus_chi(th, q, mu):
    """1 - chi of the GRU at Sigma_z = 1, C* = 1 to 40 digits, and the condition number of the
    sum it is (sum |terms| / |1 - chi|). chi = m1 there (Lemma 1, eqs. (11)-(12)):
    chi = E s_f^2 + s_f'2 E[sig'(u_f)^2] (Q - 2 mu^2 + E tanh^2 u_2)
          + sigma_r2^2 E[(1 - sig(u_f))^2] E[tanh'(u_2)^2] (sigma_r^2 E[sig'(u_r)^2] Q + E sig(u_r)^2),
    with 1 - E sig(u_f)^2 = E[sig(-u_f)(1 + sig(u_f))]; (mu*, Q*) from the library (1 - chi moves by
    a relative 1e-5 dQ / 2 per dQ here: sigma_f^2 = 1e-5, or is O(1)-conditioned for the standard Theta)."""
    mp.mp.dps = 40
    sig = lambda u: 1 / (1 + mp.exp(-u))  # noqa: E731
    dsig = lambda u: sig(u) * sig(-u)  # noqa: E731
    p = {g: {f: mp.mpf(float(getattr(th[g], f))) for f in ("sigma2", "nu2", "rho2", "mu")} for g in ("f", "r", "r2")}
    q, mu = mp.mpf(q), mp.mpf(mu)
    var = lambda g, gain=1: p[g]["sigma2"] * gain * q + p[g]["nu2"] + p[g]["rho2"]  # noqa: E731
    vf, vr = var("f"), var("r")
    Er2 = _E(lambda u: sig(u) ** 2, p["r"]["mu"], vr)
    v2 = var("r2", Er2)
    terms = [_E(lambda u: sig(-u) * (1 + sig(u)), p["f"]["mu"], vf),
             -p["f"]["sigma2"] * _E(lambda u: dsig(u) ** 2, p["f"]["mu"], vf)
             * (q - 2 * mu * mu + _E(lambda u: mp.tanh(u) ** 2, p["r2"]["mu"], v2)),
             -_E(lambda u: sig(-u) ** 2, p["f"]["mu"], vf) * _E(lambda u: (1 - mp.tanh(u) ** 2) ** 2, p["r2"]["mu"], v2)
             * p["r2"]["sigma2"] * (p["r"]["sigma2"] * _E(lambda u: dsig(u) ** 2, p["r"]["mu"], vr) * q + Er2)]
    omc = sum(terms)
    return omc, float(sum(abs(t) for t in terms) / abs(omc))


@pytest.mark.parametrize("name", ["critical", "standard"])
def test_gru_one_minus_chi_is_resolved_at_any_mu_f(name):
    """xi of the GRU against 40-digit mpmath, for mu_f up to 50 (where chi = 1 - 4e-22): to
    gamma_n times the condition number of 1 - chi as a sum of its terms (~1: no cancellation)."""
    th0 = getattr(Theta, name)("gru")
    mus = np.array([1.0, 3.0, 30.0, 36.0, 38.0, 40.0, 50.0])
    r = analyze("gru", th0.replace({"f.mu": mus}))
    assert r.converged.all()
    assert np.all(np.diff(r.xi) > 0)                     # HEAD: the same 3.0e15 from mu_f = 38 on
    for i, m in enumerate(mus):
        omc, kappa = _gru_one_minus_chi(th0.replace({"f.mu": float(m)}), float(r.q_s[i]), float(r.mu_s[i]))
        xi_ref = -1 / mp.log1p(-omc)
        # xi = -1/log1p(-omc): its relative condition in omc is 1 + O(omc); 2 gamma_n covers both
        tol = 2 * gamma(N_CLOSED) * kappa
        assert abs(float(r.xi[i]) / float(xi_ref) - 1) <= tol, (m, float(r.xi[i]), float(xi_ref))
        # the reported error bound holds, and is itself at the float64 level
        assert abs(float(r.one_minus_chi[i]) - float(omc)) <= float(r.one_minus_chi_err[i]), m
        assert float(r.xi_rel_err[i]) <= tol and bool(r.xi_resolved[i])
    assert float(r.xi[-1]) == pytest.approx(2.5923398e21 if name == "critical" else 1.2245407e21, rel=1e-7)


def test_cli_json_carries_the_resolution_with_null_for_non_finite(tmp_path, capsys):
    p = tmp_path / "gru50.json"
    Theta.critical("gru").replace({"f.mu": 50.0}).to_json(p)
    assert main(["theory", "--arch", "gru", "--theta", str(p), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["xi"] == pytest.approx(2.5923398e21, rel=1e-7) and d["xi_resolved"] is True and d["xi_note"] == ""
    assert 0 < d["one_minus_chi_err"] <= 1e-12 * d["one_minus_chi"] and d["chi_stderr"] == 0.0
    # an unresolved xi is null (not a number), with its lower bound and the reason
    q = tmp_path / "vanilla.json"
    Theta.uniform("vanilla", sigma2=1.0, nu2=0.0, rho2=0.0).to_json(q)
    main(["theory", "--arch", "vanilla", "--theta", str(q), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert "inf" not in json.dumps(d)
    if not d["xi_resolved"]:
        assert d["xi"] is None and d["xi_note"]


# =============================================================================== 2. the solver's contract
def test_solver_meets_a_long_target_to_its_contract():
    """xi = 1e14 for the GRU: met to 1e-4, checked against the 40-digit 1 - chi of the Theta it
    returns (HEAD: 1.0008e14, 8e-4 off, the target chi = exp(-1e-14) rounding to 1 - 0.99920e-14)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = solve_for_timescale("gru", xi=1e14, bounds={"f.mu": [-5, 40]})
    assert abs(s.xi / 1e14 - 1) <= 1e-4 and s.xi_rel_err <= 1e-12 and s.target_xi == 1e14
    r = analyze("gru", s.theta)
    omc, _ = _gru_one_minus_chi(s.theta, float(r.q_s), float(r.mu_s))
    assert abs(float(-1 / mp.log1p(-omc)) / 1e14 - 1) <= 1e-4


def test_solver_refuses_a_target_float64_does_not_resolve():
    """The two-state LSTM has no cancellation-free 1 - chi: float64 resolves it to 4.5e-13
    (analysis.TWO_STATE_ROUNDINGS), so xi = 1e9 (1 - chi = 1e-9) is known to 4.5e-4 only: more
    than xi_rtol = 1e-4. The solver must refuse, naming the target and the largest xi it resolves
    (1e-4 / 4.5e-13 = 2.2e8; HEAD returned xi = 1e9 as met). Below it, e.g. 5e7, it meets the target
    (not 1e8: the two-state theory's Q* does not converge at mu_f = 19.0-19.5, on HEAD too)."""
    with pytest.raises(ValueError, match=r"xi=1e\+09.*cannot be met.*largest xi it resolves .* is about 2\.\d+e\+08"):
        solve_for_timescale("lstm", xi=1e9, bounds={"f.mu": (-5.0, 24.0)})
    s = solve_for_timescale("lstm", xi=5e7, bounds={"f.mu": (-5.0, 24.0)})
    assert abs(s.xi / 5e7 - 1) <= 1e-4 and s.xi_rel_err <= 1e-4


# =============================================================================== 3. C* of the joint theory
def test_joint_correlation_outside_minus_one_one_is_not_converged():
    """At Sigma_z = 0.99999 the joint (c_a, c_b) grid cannot follow the law onto the diagonal and
    gives S > Q_h: C* = 1.00102 (HEAD: reported with converged = True). A correlation may leave
    [-1, 1] only by its rounding and the S iteration's tolerance (~1e-10); this is 1e-3."""
    r = analyze("lstm", Theta.critical("lstm"), sigma_z=0.99999)
    if bool(r.converged):
        assert -1.0 <= float(r.c_s) <= 1.0
    else:
        assert np.isnan(r.c_s) and np.isnan(r.xi) and "outside [-1, 1]" in str(r.info["methods"])
    assert not bool(r.converged)           # this point is the defect: C* = 1.00102 before clipping


# =============================================================================== 4. Algorithm 1's Monte Carlo error
def test_algorithm1_one_sample_is_not_converged():
    """n_s = 1 has no Monte Carlo error estimate (HEAD: xi = 518, converged, against 37 at the
    defaults); n_s = 2 has one whose one-sided 95% upper bound (a factor 16) is far above
    mc_rtol = 0.1."""
    th = Theta.critical("lstm").replace({"f.mu": 4.0})
    for n_s in (1, 2):
        r = analyze("lstm", th, 1.0, method="paper", n_s=n_s, n_iters=1)
        assert not bool(r.converged) and np.isnan(r.xi) and not bool(r.xi_resolved), n_s
        assert "n_s = %d" % n_s in str(r.xi_note)
    d = analyze("lstm", th, 1.0, method="paper")
    assert bool(d.converged) and float(d.xi) == pytest.approx(37.04, rel=1e-3)
    # its xi is a Monte Carlo estimate: reported with its error, and not "resolved" to 1e-4
    se, chi = float(d.chi_stderr), float(d.chi)
    assert se > 0 and float(d.xi_rel_err) == pytest.approx(se / (chi * -math.log(chi)), rel=1e-6)
    assert not bool(d.xi_resolved) and "Monte Carlo" in str(d.xi_note)


@pytest.mark.parametrize("n_s", [200, 1000])
def test_algorithm1_standard_error_matches_the_scatter_over_seeds(n_s):
    """chi_stderr is the error chi actually has: the scatter of chi over 30 seeds agrees with the
    mean reported standard error within the chi-square 99.9% interval of a 29-dof sample std."""
    from scipy.stats import chi2
    th = Theta.critical("lstm").replace({"f.mu": 4.0})
    rs = [analyze("lstm", th, 1.0, method="paper", n_s=n_s, seed=s, mc_rtol=np.inf) for s in range(30)]
    chis, ses = np.array([float(r.chi) for r in rs]), np.array([float(r.chi_stderr) for r in rs])
    ratio = chis.std(ddof=1) / ses.mean()
    lo, hi = np.sqrt(chi2.ppf([0.0005, 0.9995], 29) / 29)
    assert lo <= ratio <= hi, ratio
