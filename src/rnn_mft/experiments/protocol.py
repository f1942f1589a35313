"""The protocol every chapter's module follows, and the pieces it is made of.

Every module behind a chapter exposes three functions:

``config(profile) -> Config``
    The chapter's settings at a profile (``smoke``, ``ci``, ``paper``, and ``cpu`` where the chapter
    declares it), as a *frozen* dataclass
    whose fields carry their documentation (``cfg.describe()`` prints them). A misspelt field is an
    error, not a silently ignored key: ``cfg.replace(N=500)`` or ``cfg | {"N": 500}`` returns a
    new, validated config, and ``cfg["Nn"]`` raises a ``KeyError`` naming the allowed fields.
``run(cfg, store=None) -> result``
    Computes the chapter's result. Theory chapters take seconds and keep nothing, so they ignore
    ``store``; training experiments read and write :class:`rnn_mft.train.ResultsStore`.
``report(cfg, result) -> dict``
    The numbers the page shows in its prose, by name. The chapter inserts them into its sentences
    with myst-nb's ``glue`` (:func:`glue_report`), so the interpretive text lives in the chapter's
    ``.md`` and the values come from the code.

A config reads like the mapping it replaces (``cfg["N"]``, ``dict(cfg)``, ``**cfg``), so code that
took the old dictionaries keeps working.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo(Config):
...     N: int = doc(16, "width of the network")
...     PROFILES = {"smoke": dict(N=8), "ci": dict(N=16), "paper": dict(N=64)}
>>> cfg = Demo.for_profile("smoke")
>>> cfg.N, cfg["profile"]
(8, 'smoke')
>>> (cfg | {"N": 12}).N
12
>>> cfg.replace(M=3)
Traceback (most recent call last):
...
KeyError: "Demo has no field 'M'; allowed: profile, N"
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = ["PROFILES", "BOOK_PROFILES", "OPTIONAL_PROFILES", "ProfileNotDeclared", "check_profile", "Config", "doc",
           "glue_report", "show_stored_paper", "show_stored"]

#: every profile, smallest first: ``smoke`` (seconds, the tests), ``ci`` (the CPU book), ``cpu``
#: (trained once on a CPU in budgeted slices and committed, for the chapters where ``ci`` is too
#: small to show anything: Table 2's MNIST row and Figure 1), ``paper`` (the paper's scale, a GPU)
PROFILES = ("smoke", "ci", "cpu", "paper")
#: profiles a chapter has only where its config declares them (``Config.PROFILES``)
OPTIONAL_PROFILES = ("cpu",)
#: the profiles a whole book is built at (``cpu`` is a stored profile: the ci book shows it)
BOOK_PROFILES = ("smoke", "ci", "paper")


class ProfileNotDeclared(ValueError):
    """An optional profile (``cpu``) asked of a chapter that does not declare it."""


def check_profile(profile: str) -> str:
    """Return ``profile`` if known, else raise a ValueError naming the allowed profiles."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile={profile!r}; allowed: {', '.join(PROFILES)}")
    return profile


def doc(default: Any, text: str):
    """A dataclass field with a default and its documentation (shown by :meth:`Config.describe`).
    Mutable defaults (lists, dicts) are copied for every instance."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class Config(Mapping):
    """Base of every chapter's settings: a frozen dataclass that also reads as a mapping.

    Subclasses declare their fields with :func:`doc` and a class attribute ``PROFILES``: for each
    profile the values that differ from the defaults.
    """

    profile: str = doc("ci", "smoke (seconds, the tests), ci (the CPU book), cpu (stored CPU-scale runs, where "
                             "declared) or paper (the paper's scale)")
    PROFILES: ClassVar[dict] = {}

    def __post_init__(self):
        check_profile(self.profile)

    @classmethod
    def for_profile(cls, profile: str) -> "Config":
        """The settings at ``profile``; an optional profile the class does not declare raises
        :class:`ProfileNotDeclared`."""
        check_profile(profile)
        if profile not in cls.profiles():
            raise ProfileNotDeclared(f"{cls.__name__} has no profile {profile!r} (it is declared only by the "
                                     f"chapters that need it); allowed here: {', '.join(cls.profiles())}")
        return cls(profile=profile, **cls.PROFILES.get(profile, {}))

    @classmethod
    def profiles(cls) -> list[str]:
        """The profiles this chapter has: every profile but an optional one it does not declare."""
        return [p for p in PROFILES if p not in OPTIONAL_PROFILES or p in cls.PROFILES]

    # -- reading -------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def __getitem__(self, key: str):
        if key not in self.field_names():
            raise KeyError(f"{type(self).__name__} has no field {key!r}; allowed: {', '.join(self.field_names())}")
        return getattr(self, key)

    def __iter__(self):
        return iter(self.field_names())

    def __len__(self) -> int:
        return len(self.field_names())

    # -- changing (a new, validated object) -----------------------------------------------------
    def replace(self, **changes) -> "Config":
        """A copy with ``changes``; an unknown field raises a KeyError naming the allowed ones."""
        for k in changes:
            if k not in self.field_names():
                raise KeyError(f"{type(self).__name__} has no field {k!r}; allowed: {', '.join(self.field_names())}")
        return dataclasses.replace(self, **changes)

    def __or__(self, changes: Mapping) -> "Config":
        return self.replace(**dict(changes))

    def describe(self) -> str:
        """A Markdown table of the fields: name, value, meaning."""
        rows = ["| setting | value | meaning |", "| --- | --- | --- |"]
        for f in dataclasses.fields(self):
            rows.append(f"| `{f.name}` | `{getattr(self, f.name)!r}` | {f.metadata.get('doc', '')} |")
        return "\n".join(rows)


def _plain(v):
    """A glued value: numbers as Python int/float (their text is then ``0.25``, not
    ``np.float64(0.25)``, so ``{glue:text}`name:.2f``` can format them); text as Markdown, for
    ``{glue:md}`name```."""
    import numbers

    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, str):
        from IPython.display import Markdown

        return Markdown(v)
    return v


def glue_report(numbers: Mapping[str, Any], prefix: str = "") -> dict:
    """Glue every entry of a :func:`report` under ``prefix + name`` for the chapter's prose,
    without displaying it: numbers for ``{glue:text}`name:.3g```, text for ``{glue:md}`name```.
    Where myst-nb is not installed (e.g. on Colab with the ``plot`` extra only) nothing is
    glued. Returns ``numbers`` as a dict."""
    try:
        from myst_nb import glue
    except ImportError:  # pragma: no cover - the book extra brings myst-nb
        return dict(numbers)
    for k, v in numbers.items():
        glue(prefix + k, _plain(v), display=False)
    return dict(numbers)


def show_stored_paper(exp, profile: str, draw=None):
    """The "Paper-scale results" block of a training chapter, in one place.

    Below profile ``paper``, loads the stored paper-profile results of the training experiment
    module ``exp`` (``exp.stored_paper_results()``: read-only, nothing is trained; a
    :class:`~rnn_mft.experiments.training._common.StoredPaper` with whatever part of the paper
    profile's runs is stored, or None), shows a note saying whether they exist, which runs are
    still missing and where the stored ones come from (device, code version, dates), and, when any
    exist, shows what ``draw(results, exp.config("paper"))`` returns (default
    ``exp.draw_stored_paper``): a list of Markdown strings and ``(name, figure)`` pairs, each
    figure also saved under ``name``. At profile ``paper`` the page's own results are the
    paper-scale ones and only the note is shown. Returns the ``StoredPaper`` or None.
    """
    from IPython.display import Markdown, display

    from .training._common import paper_note

    check_profile(profile)
    paper = exp.stored_paper_results() if profile != "paper" else None
    display(Markdown(paper_note(profile, paper)))
    draw = draw if draw is not None else getattr(exp, "draw_stored_paper", None)
    if paper is not None and draw is not None:
        _show_items(draw(paper.results, exp.config("paper")))
    return paper


def show_stored(exp, profile: str):
    """The "CPU-scale results" block of a training chapter that declares profile ``cpu``: its
    stored runs (``exp.stored_results("cpu")``, read-only, nothing trained), a note on their
    provenance and on the runs still missing (with the step a run in progress has reached), and
    what ``exp.draw_stored(results, exp.config("cpu"))`` draws. On a page run at profile ``cpu``
    itself only the note is shown. Returns the
    :class:`~rnn_mft.experiments.training._common.StoredPaper` or None."""
    from IPython.display import Markdown, display

    from .training._common import cpu_note

    check_profile(profile)
    if profile == "cpu":
        display(Markdown("This page ran at profile `cpu`: the results above are its runs."))
        return None
    got = exp.stored_results("cpu")
    display(Markdown(cpu_note(profile, got, exp)))
    if got is not None:
        _show_items(exp.draw_stored(got.results, exp.config("cpu")))
    return got


def _show_items(items) -> None:
    """Display a chapter block's Markdown strings and ``(name, figure)`` pairs (each figure also
    saved under ``name``)."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from ..plotting import savefig

    for item in items or []:
        if isinstance(item, str):
            display(Markdown(item))
        else:
            name, fig = item
            savefig(fig, name)
            display(fig)
            plt.close(fig)
