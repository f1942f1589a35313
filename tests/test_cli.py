"""The ``rnn-mft`` command line: output, JSON keys, and clean errors (exit 2, no traceback)."""
import json
import math
import subprocess
import sys

import pytest

from rnn_mft.cli import main
from rnn_mft.theory import Theta, analyze


@pytest.fixture
def theta_file(tmp_path):
    p = tmp_path / "theta.json"
    Theta.standard("gru").to_json(p)
    return p


def test_theory_json(theta_file, capsys):
    assert main(["theory", "--arch", "gru", "--theta", str(theta_file), "--sigma-z", "0.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    from rnn_mft.theory.analysis import RESOLUTION_KEYS
    assert set(d) == {"mu_s", "q_s", "c_s", "chi", "xi", "m1", "m2", "var", "converged"} | set(RESOLUTION_KEYS)
    r = analyze("gru", Theta.standard("gru"), 0.5)
    # the same computation, printed as JSON (repr: exact round trip); 1e-12 = 1e4 u64 for the file's Theta
    assert d["chi"] == pytest.approx(float(r.chi), rel=1e-12) and d["converged"] is True


def test_theory_text_and_missing_fields_default_to_zero(tmp_path, capsys):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"f": {"sigma2": 1, "nu2": 1, "mu": 2}, "r": {"sigma2": 1}, "r2": {"nu2": 1}}))
    assert main(["theory", "--arch", "gru", "--theta", str(p), "--sigma-z", "1"]) == 0
    out = capsys.readouterr().out
    for word in ("chi", "xi", "m1", "m2", "var", "C*"):
        assert word in out


def test_solve_prints_a_theta(capsys):
    assert main(["solve", "--arch", "gru", "--xi", "50"]) == 0
    th = Theta.from_json("gru", capsys.readouterr().out)
    # JSON floats round-trip exactly; compared in chi (not xi, whose relative error near chi = 1
    # is xi dchi/chi) to the solver's stopping tolerance, tol = 1e-8 (its default)
    assert abs(float(analyze("gru", th, 1.0).chi) - math.exp(-1 / 50)) < 1e-8


@pytest.mark.parametrize("args,msg", [
    (["theory", "--arch", "foo", "--theta", "{t}"], "invalid choice: 'foo' (choose from 'vanilla'"),
    (["theory", "--arch", "gru", "--theta", "{t}", "--sigma-z", "1.5"], "[0, 1]"),
    (["theory", "--arch", "gru", "--theta", "{t}", "--sigma-z", "nan"], "[0, 1]"),
    (["theory", "--arch", "lstm", "--theta", "{t}"], "unknown gate"),
    (["theory", "--arch", "gru", "--theta", "/nonexistent.json"], "cannot read"),
    (["theory", "--arch", "gru", "--theta", "{bad}"], ">= 0"),
    (["theory", "--arch", "gru", "--theta", "{field}"], "unknown field"),
    (["theory", "--arch", "gru", "--theta", "{missing}"], "missing gate"),
    (["solve", "--arch", "gru", "--xi", "-3"], "xi"),
    (["solve", "--arch", "gru", "--xi", "100", "--bounds", "{{\"f.mu\": [0, 1]}}"], "not reachable"),
    (["solve", "--arch", "gru"], "required"),
])
def test_bad_input_is_one_line_exit_2(theta_file, tmp_path, args, msg):
    bad = tmp_path / "bad.json"
    bad.write_text('{"f": {"sigma2": -1}, "r": {}, "r2": {}}')
    field = tmp_path / "field.json"
    field.write_text('{"f": {"foo": 1}, "r": {}, "r2": {}}')
    missing = tmp_path / "missing.json"
    missing.write_text('{"f": {}}')
    args = [a.format(t=theta_file, bad=bad, field=field, missing=missing) for a in args]
    p = subprocess.run([sys.executable, "-m", "rnn_mft.cli", *args], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    assert msg in p.stderr


def test_bare_call_prints_help_and_version(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rnn-mft") and "examples:" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    from rnn_mft import __version__
    assert capsys.readouterr().out.strip() == f"rnn-mft {__version__}"


def test_every_option_has_help_and_the_arch_lists_its_choices():
    from rnn_mft import arch
    from rnn_mft.cli import _parser
    p = _parser()
    sub = next(a for a in p._actions if a.dest == "cmd")
    for name, sp in sub.choices.items():
        for a in sp._actions:
            assert a.help, (name, a.option_strings)
        archs = [a for a in sp._actions if a.dest == "arch"]
        assert all(tuple(a.choices) == arch.names() for a in archs)


def test_help_examples_run(tmp_path):
    """Every example of the help's epilog runs (in a shell, in an empty folder)."""
    from pathlib import Path
    from rnn_mft.cli import EXAMPLES
    bindir = Path(sys.executable).parent
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "RNN_MFT_RESULTS": str(tmp_path / "results")}
    for line in EXAMPLES.splitlines()[1:]:
        cmd = line.strip()
        p = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True)
        # `runs` exits 1 when a run failed or is broken; missing runs are listed with exit 0
        assert p.returncode == 0, (cmd, p.stderr[-2000:])


def test_internal_errors_show_a_traceback(monkeypatch, capsys, theta_file):
    """A ValueError raised inside numpy (a bug of ours) is an internal error with its traceback;
    one raised by the library's own checks stays a one-line user error."""
    import numpy as np
    import rnn_mft.cli as cli

    def broken(*a, **k):
        return np.broadcast_shapes((2,), (3,))           # raises ValueError inside numpy
    monkeypatch.setattr(cli, "analyze", broken)
    assert main(["theory", "--arch", "gru", "--theta", str(theta_file)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err
    monkeypatch.undo()
    assert main(["theory", "--arch", "gru", "--theta", str(theta_file), "--sigma-z", "2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
