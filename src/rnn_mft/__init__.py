"""rnn_mft: the mean-field theory of gated RNNs (Gilboa et al. 2019), initializers and experiments.

Subpackages: :mod:`rnn_mft.arch` (the architectures), :mod:`rnn_mft.theory` (mean-field theory),
:mod:`rnn_mft.sim` (finite-width simulations), :mod:`rnn_mft.nets` (PyTorch cells and
initializers), :mod:`rnn_mft.data` (data sets and tasks), :mod:`rnn_mft.train` (training engine
and results store). The architectures, the theory and the ``rnn-mft theory`` and ``rnn-mft solve``
commands need only the core dependencies (numpy, scipy); ``sim``, ``nets``, ``data`` and ``train``
need the ``torch`` extra (``pip install 'rnn_mft[torch]'``; without it, importing them raises an
ImportError that says so); :mod:`rnn_mft.plotting` needs the ``plot`` extra, the chapters'
experiments (:mod:`rnn_mft.experiments`) ``torch`` and ``plot``, :mod:`rnn_mft.book` the ``book``
extra. ``CONTRIBUTING.md`` draws the map of the code.

The most used names are also available here, imported on first use (``import rnn_mft`` itself
imports neither numpy nor torch; the theory names never import torch):

>>> import rnn_mft
>>> th = rnn_mft.Theta.standard("gru")
>>> r = rnn_mft.analyze("gru", th, sigma_z=1.0)
>>> bool(r.converged) and 0 < float(r.xi) < float("inf")
True
>>> sorted(set(rnn_mft.__all__) - set(dir(rnn_mft)))
[]
"""
from __future__ import annotations

import importlib


def _version() -> str:
    """The installed distribution's version: ``version`` in pyproject.toml, its one source."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rnn_mft")
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        import re
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        m = re.search(r'(?m)^version\s*=\s*"([^"]+)"', pyproject.read_text()) if pyproject.is_file() else None
        return m.group(1) if m else "0+unknown"


#: public name -> the subpackage that defines it (imported lazily by :func:`__getattr__`)
_EXPORTS = {
    # the mean-field theory (numpy/scipy only)
    "Theta": "theory", "ARCHS": "theory", "analyze": "theory", "AnalysisResult": "theory",
    "solve_for_timescale": "theory", "SolveResult": "theory", "xi_from_chi": "theory",
    "reference_step": "theory",
    # finite-width simulations (torch)
    "simulate_pair": "sim", "SimResult": "sim",
    # PyTorch cells and initializers (torch)
    "make": "nets", "make_classifier": "nets", "RecurrentCell": "nets", "SequenceClassifier": "nets",
    "init_": "nets", "critical_init_": "nets", "critical_theta": "nets", "standard_init_": "nets",
    "chrono_init_": "nets",
    # data sets and tasks (torch)
    "load_task": "data", "load_task_pair": "data", "TASKS": "data",
    # training (torch)
    "fit": "train", "TrainConfig": "train", "ResultsStore": "train",
}
_SUBPACKAGES = ("arch", "theory", "sim", "nets", "data", "train", "plotting", "experiments", "book", "cli",
                "settings")

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Import a public name (or a subpackage) on first access, then keep it in this module.
    ``__version__`` too is computed on first access (importlib.metadata costs ~40 ms)."""
    if name == "__version__":
        value = _version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBPACKAGES:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise               # the subpackage exists but needs something missing: say what
            raise AttributeError(f"module 'rnn_mft' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'rnn_mft' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | {"__version__"})
