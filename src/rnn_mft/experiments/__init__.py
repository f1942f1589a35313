"""One module per chapter, each following one protocol (:mod:`rnn_mft.experiments.protocol`):
``config(profile)`` (a frozen, documented dataclass), ``run(cfg, store=None)`` and
``report(cfg, result)`` (the numbers the page's prose shows).

Profiles (DESIGN.md): ``smoke`` (seconds, used by the tests), ``ci`` (the whole book in well
under 45 minutes on 2 CPU cores), ``paper`` (the paper's scale, needs a GPU).
"""
from __future__ import annotations

from .protocol import PROFILES, Config, check_profile, doc, glue_report

__all__ = ["PROFILES", "Config", "check_profile", "doc", "glue_report"]


def __getattr__(name: str):
    """``rnn_mft.experiments.jacobian`` and the other theory chapters' old import paths keep
    working: they live in :mod:`rnn_mft.experiments.theory_chapters` now."""
    from importlib import import_module

    from .theory_chapters import MODULES

    if name in MODULES:
        return import_module(f".theory_chapters.{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
