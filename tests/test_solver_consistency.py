"""A Theta from solve_for_timescale has the requested xi according to analyze (same settings).

Compared in chi = exp(-1/xi), in absolute terms: the solver's contract is xi to xi_rtol = 1e-4
relative, i.e. chi to xi_rtol chi |log chi| (3.3e-7 at xi = 300), which its search meets by
stopping at the smaller tol = 1e-8; float64 resolves chi to u64 ~ 1e-16, far below either.
"""
import numpy as np
import pytest

from rnn_mft import theory

XI_RTOL = 1e-4                                # solve_for_timescale's default xi_rtol


@pytest.mark.slow
@pytest.mark.parametrize("arch,xi", [("lstm", 300.0), ("peephole_lstm", 300.0), ("gru", 50.0)])
def test_analyze_reproduces_the_solved_timescale(arch, xi):
    res = theory.solve_for_timescale(arch, xi=xi)
    target = np.exp(-1 / xi)
    tol = XI_RTOL * target * -np.log(target)      # dchi = chi |log chi| dxi/xi
    assert abs(res.chi - target) < tol
    again = theory.analyze(arch, res.theta)
    assert bool(again.converged)
    assert abs(float(again.chi) - target) < tol
