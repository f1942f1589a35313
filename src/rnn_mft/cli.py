"""``rnn-mft``: the mean-field theory from the command line.

``rnn-mft theory --arch ARCH --theta FILE.json --sigma-z S [--json]``
    prints the fixed point (mu*, Q*, C*), chi (eq. 8), xi (eq. 9), m1, m2 and var (eqs. 11-14),
    and how well xi is resolved (1 - chi, its float64 error, Algorithm 1's Monte Carlo error; in
    the JSON object the keys of ``rnn_mft.theory.analysis.RESOLUTION_KEYS``; NaN and infinity are
    null there).
``rnn-mft solve --arch ARCH (--xi X | --chi C) [--bounds JSON]``
    prints a Theta (JSON) with that time scale and the smallest Jacobian variance.
``rnn-mft runs --profile PROFILE [--json] [--state STATE]``
    lists each training run the book's chapters need at PROFILE as done, running, failed (with
    its log), broken (stored files that are not a complete run of its name, with the reason) or
    missing (:func:`rnn_mft.cluster.run_states`); exit 1 when any failed or is broken.

Bad input gives a one-line message on stderr and exit status 2: the library's own checks (a
ValueError raised by rnn_mft's code, which names the bad value and the allowed range) and
argparse's. Anything else is an internal error: its traceback is printed, exit status 1. NaN and
infinity are ``null`` in every JSON output (strict JSON parsers accept it); the text output prints
them as ``nan`` and ``inf``. ``rnn-mft --version`` prints the version; ``rnn-mft`` alone prints help.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from pathlib import Path

from . import arch as _arch
from .experiments.protocol import PROFILES
from . import __version__
from .theory import Theta, analyze, solve_for_timescale
from .theory import lstm as _lstm
from .theory.theta import check_arch

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):            # one line, exit 2 (argparse's convention)
        raise _Usage(message)


class _Usage(Exception):
    pass


#: largest Algorithm 1 sample count and iteration count the command line accepts (memory: the
#: samples are arrays of n_s floats per gate; 1e7 is ~1 GB of work arrays)
MAX_NS = 10_000_000
MAX_ITERS = 1_000_000


def _bounded_int(option: str, lo: int, hi: int):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option}={text!r} must be an integer in [{lo}, {hi}]") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{option}={text} is outside the allowed range [{lo}, {hi}]")
        return v
    parse.__name__ = option
    return parse


def _method_choices() -> tuple:
    """Every ``analyze(method=...)`` choice of the registered architectures (the LSTM's)."""
    return tuple(dict.fromkeys(m for n in _arch.names() for m in _arch.get(n).methods))


def _check_method(a) -> None:
    if a.method is not None and a.method not in _arch.get(a.arch).methods:
        with_methods = [n for n in _arch.names() if _arch.get(n).methods]
        raise ValueError(f"--method applies to --arch {' or '.join(with_methods)} only (got --arch {a.arch})")


EXAMPLES = """examples:
  rnn-mft solve --arch gru --xi 50 > theta.json
  rnn-mft theory --arch gru --theta theta.json
  rnn-mft theory --arch lstm --theta "$(rnn-mft solve --arch lstm --xi 200)" --sigma-z 0.5 --json
  rnn-mft solve --arch vanilla --chi 0.99 --bounds '{"f.nu2": [1e-8, 1]}'
  rnn-mft runs --profile ci --state missing
"""


def _parser():
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog="rnn-mft", description="Mean-field theory of LSTMs and GRUs (Gilboa et al. 2019): the fixed "
                "point, time scale and Jacobian moments of a gated RNN at initialization, and initializations "
                "with a chosen time scale.", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"rnn-mft {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser, metavar="{theory,solve,runs}")
    t = sub.add_parser("theory", help="fixed point, chi, xi, m1, m2, var for one Theta", epilog=EXAMPLES,
                       formatter_class=fmt, description="Fixed point (mu*, Q*, C*), chi (eq. 8), xi (eq. 9), "
                       "m1, m2, var (eqs. 11-14) of one Theta, and how well float64 resolves xi.")
    t.add_argument("--arch", required=True, choices=_arch.names(), metavar="ARCH",
                   help=f"the architecture: {', '.join(_arch.names())}")
    t.add_argument("--theta", required=True,
                   help="JSON text starting with '{', or a JSON file {gate: {sigma2, nu2, rho2, mu}}")
    t.add_argument("--sigma-z", type=float, default=1.0, help="input correlation in [0, 1] (default 1)")
    t.add_argument("--R", type=float, default=1.0, help="input second moment (default 1)")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.add_argument("--method", choices=_method_choices(), default=None,
                   help="LSTM: the two-state theory (default; deterministic, agrees with simulated networks) "
                        "or the paper's Algorithm 1 with Appendix A.2.3 (Monte Carlo, for comparison)")
    t.add_argument("--n-s", type=_bounded_int("--n-s", 1, MAX_NS), default=_lstm.DEFAULT_NS,
                   help=f"LSTM: Algorithm 1 samples (default {_lstm.DEFAULT_NS})")
    t.add_argument("--n-iters", type=_bounded_int("--n-iters", 1, MAX_ITERS), default=_lstm.DEFAULT_ITERS,
                   help=f"LSTM: Algorithm 1 iterations (default {_lstm.DEFAULT_ITERS})")
    t.add_argument("--seed", type=_bounded_int("--seed", 0, 2**63 - 1), default=0,
                   help="LSTM: seed of the samples (default 0)")
    s = sub.add_parser("solve", help="a Theta with a target time scale xi (or chi)", epilog=EXAMPLES,
                       formatter_class=fmt, description="A Theta (JSON on stdout) with the target time scale and, "
                       "among those, the smallest Jacobian variance (solve_for_timescale).")
    s.add_argument("--arch", required=True, choices=_arch.names(), metavar="ARCH",
                   help=f"the architecture: {', '.join(_arch.names())}")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--xi", type=float, help="target time scale xi > 0")
    g.add_argument("--chi", type=float, help="target chi in (0, 1)")
    s.add_argument("--bounds", default=None, help='JSON {"gate.field": [lo, hi]}: the hyperparameters searched '
                   '(default: the architecture\'s, {"f.mu": [-5, 15]}; the vanilla RNN {"f.nu2": [1e-12, 1]})')
    s.add_argument("--sigma-z", type=float, default=1.0, help="input correlation in [0, 1] (default 1)")
    s.add_argument("--method", choices=_method_choices(), default=None,
                   help="LSTM: the theory whose xi is matched (default two_state; see 'theory --help')")
    s.add_argument("--verbose", action="store_true", help="also print what the Theta achieves (on stderr)")
    r = sub.add_parser("runs", help="each training run of a profile: done, running, failed, broken or missing",
                       epilog=EXAMPLES, formatter_class=fmt)
    r.add_argument("--profile", default="paper", choices=PROFILES, help="the profile (default paper)")
    r.add_argument("--state", choices=("done", "running", "failed", "broken", "missing"), default=None,
                   help="list only runs in this state")
    r.add_argument("--json", action="store_true", help="print one JSON list")
    return p


def _runs(a) -> int:
    try:
        from .cluster.runs import STATES, run_states      # extra [torch]: rnn_mft.cluster trains; theory and solve need no torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise _Usage(f"'rnn-mft runs' reads the training runs, which needs PyTorch: {exc}") from None
    states = run_states(a.profile)
    shown = [s for s in states if a.state is None or s["state"] == a.state]
    if a.json:
        print(json.dumps(shown, indent=1))
    else:
        for s in shown:
            print(f"{s['state']:8s} {s['experiment']}/{s['name']}" + (f"  {s['detail']}" if s["detail"] else ""))
        counts = {k: sum(1 for s in states if s["state"] == k) for k in STATES}
        print(f"profile {a.profile}: {len(states)} runs; " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if any(s["state"] in ("failed", "broken") for s in states) else 0


def _fmt(x):
    if isinstance(x, bool):
        return str(x)
    if x is None:
        return "nan"
    if isinstance(x, str):
        return x
    return f"{x:.10g}"


def _theory(a):
    import warnings

    import numpy as np
    check_arch(a.arch)
    theta = Theta(a.arch, _theta_json(a.theta))
    if theta.shape != ():
        raise ValueError(f"--theta must hold scalar values; got fields of shape {theta.shape}")
    _check_method(a)
    # a point that does not converge says so in the output ("converged: False", exit 1), not with
    # a screen of numpy warnings from the NaN it carries
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        r = analyze(a.arch, theta, a.sigma_z, a.R, n_s=a.n_s, n_iters=a.n_iters, seed=a.seed,
                    **({"method": a.method} if a.method else {}))
    d = r.to_dict(resolution=True)
    meth = str(r.info.get("methods", ""))
    if meth.startswith("not covered"):
        why = ("its joint discretisation gives no correlation in [-1, 1] here" if "outside [-1, 1]" in meth
               else "the two-state LSTM theory gives no time scale at an unstable fixed point")
        print(f"rnn-mft: note: {meth}: {why}; --method paper gives Algorithm 1 and A.2.3", file=sys.stderr)
    if a.json:
        print(json.dumps(d))
    else:
        print(f"architecture     {a.arch}   (Sigma_z = {a.sigma_z:g}, R = {a.R:g})")
        labels = [("mu_s", "mu*  (eq. 2a)"), ("q_s", "Q*   (eq. 2b)"), ("c_s", "C*   (eq. 2c)"),
                  ("chi", "chi  (eq. 8)"), ("xi", "xi   (eq. 9)"), ("m1", "m1   (eq. 11)"),
                  ("m2", "m2   (free prob.)"), ("var", "var = m2 - m1^2"), ("converged", "converged")]
        for k, lab in labels:
            print(f"{lab:<18} {_fmt(d[k])}")
        print(f"{'1 - chi':<18} {_fmt(d['one_minus_chi'])} +- {_fmt(d['one_minus_chi_err'])} (float64)"
              + (f", Monte Carlo s.e. of chi {_fmt(d['chi_stderr'])}" if d["chi_stderr"] else ""))
        print(f"{'xi resolved':<18} {_fmt(d['xi_resolved'])}" + (f"  ({d['xi_note']})" if d["xi_note"] else
                                                                  f"  (relative error {_fmt(d['xi_rel_err'])})"))
        if "methods" in r.info:                     # the two-state theory of the LSTM
            print(f"{'method':<18} {r.info['methods']} (m1, m2: the 2N x 2N Jacobian of (h, c))")
        else:
            print(f"{'m2 as printed (14)':<18} {_fmt(float(r.m2_printed))}")
    return 0 if d["converged"] else 1


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read --theta file {path!r}: {exc.strerror}; --theta takes a JSON object "
                         f"(text starting with '{{') or the name of a JSON file") from None
    except UnicodeDecodeError:
        raise ValueError(f"--theta file {path!r} is not text") from None


def _theta_json(arg: str) -> dict:
    """``--theta``: JSON text when it starts with ``{``, else the name of a file holding JSON (its
    content is parsed as JSON, never taken as another file name)."""
    if arg.lstrip().startswith("{"):
        text, where = arg, "--theta text"
    else:
        text, where = _read(arg), f"--theta file {arg!r}"
    if not text.strip():
        raise ValueError(f"{where} is empty; it must hold a JSON object {{gate: {{sigma2, nu2, rho2, mu}}}}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a JSON object {{gate: {{sigma2, nu2, rho2, mu}}}}, "
                         f"got {type(data).__name__}")
    return data


def _solve(a):
    check_arch(a.arch)
    bounds = None
    if a.bounds is not None:
        try:
            bounds = json.loads(a.bounds)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--bounds is not valid JSON: {exc.msg}") from None
        if not isinstance(bounds, dict):
            raise ValueError('--bounds must be a JSON object {"gate.field": [lo, hi]}')
    for name in ("xi", "chi"):
        v = getattr(a, name)
        if v is not None and not math.isfinite(v):
            raise ValueError(f"--{name}={v} must be finite")
    _check_method(a)
    r = solve_for_timescale(a.arch, xi=a.xi, chi=a.chi, bounds=bounds, sigma_z=a.sigma_z,
                            **({"method": a.method} if a.method else {}))
    print(r.theta.to_json())
    if a.verbose:
        print(f"chi={r.chi:.10g} 1-chi={r.one_minus_chi:.10g} xi={r.xi:.10g} (relative error {r.xi_rel_err:.2g}) "
              f"m1={r.m1:.10g} m2={r.m2:.10g} var={r.var:.6g}", file=sys.stderr)
    return 0


_PACKAGE = Path(__file__).resolve().parent


def _raised_by_us(exc: BaseException) -> bool:
    """True when ``exc`` was raised by rnn_mft's own code (a deliberate input check), not inside
    numpy, scipy or Python (an internal error that surfaced as a ValueError)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    try:
        Path(last.tb_frame.f_code.co_filename).resolve().relative_to(_PACKAGE)
    except ValueError:
        return False
    return True


def main(argv=None) -> int:
    """Entry point of the ``rnn-mft`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    if not argv:                          # a bare call: the help, as --help prints it
        parser.print_help()
        return 0
    try:
        a = parser.parse_args(argv)
        code = {"theory": _theory, "solve": _solve, "runs": _runs}[a.cmd](a)
    except _Usage as exc:
        print(f"rnn-mft: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except ValueError as exc:
        if not _raised_by_us(exc):
            traceback.print_exc()
            print("rnn-mft: internal error (the traceback above); please report it", file=sys.stderr)
            return 1
        print(f"rnn-mft: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnn-mft: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
