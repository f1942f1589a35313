"""One module per chapter, each following one protocol (:mod:`rnn_mft.experiments.protocol`):
``config(profile)`` (a frozen, documented dataclass), ``run(cfg, store=None)`` and
``report(cfg, result)`` (the numbers the page's prose shows).

Profiles (DESIGN.md): ``smoke`` (seconds, used by the tests), ``ci`` (the whole book in well
under 45 minutes on 2 CPU cores), ``cpu`` (only the chapters that declare it, Table 2 and Figure
1: trained once on a CPU in budgeted slices, committed, and shown by the ci book), ``paper`` (the
paper's scale, needs a GPU).

The experiments compute and never draw: the figures are :mod:`rnn_mft.plotting`'s, and so are
the training chapters' blocks of stored results (:func:`rnn_mft.plotting.stored.show_stored`,
:func:`rnn_mft.plotting.stored.show_stored_paper`).
"""
from __future__ import annotations

from importlib import import_module

from .protocol import BOOK_PROFILES, PROFILES, Config, ProfileNotDeclared, check_profile, doc, glue_report
from .theory_chapters import MODULES as _THEORY_CHAPTERS          # the chapters' names only (no imports)
from .training import MODULES as _TRAINING

__all__ = ["BOOK_PROFILES", "PROFILES", "Config", "ProfileNotDeclared", "check_profile", "doc", "glue_report"]


def __getattr__(name: str):
    """``rnn_mft.experiments.jacobian``, ``rnn_mft.experiments.trainability`` and the other
    chapters' old import paths keep working (``from rnn_mft.experiments import trainability``):
    the theory chapters live in :mod:`rnn_mft.experiments.theory_chapters`, the training
    experiments in :mod:`rnn_mft.experiments.training` now."""
    if name in _THEORY_CHAPTERS:
        return import_module(f".theory_chapters.{name}", __name__)
    if name in _TRAINING:
        return import_module(f".training.{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
