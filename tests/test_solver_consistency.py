"""A Theta from solve_for_timescale has the requested xi according to analyze (same settings)."""
import pytest

from rnn_mft import theory


@pytest.mark.slow
@pytest.mark.parametrize("arch,xi", [("lstm", 300.0), ("peephole_lstm", 300.0), ("gru", 50.0)])
def test_analyze_reproduces_the_solved_timescale(arch, xi):
    res = theory.solve_for_timescale(arch, xi=xi)
    assert res.xi == pytest.approx(xi, rel=1e-4)
    again = theory.analyze(arch, res.theta)
    assert bool(again.converged)
    assert float(again.xi) == pytest.approx(xi, rel=1e-4)
