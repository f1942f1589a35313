"""The protocol every chapter's module follows, and the pieces it is made of.

Every module behind a chapter exposes three functions:

``config(profile) -> Config``
    The chapter's settings at a profile (``smoke``, ``ci``, ``paper``, and ``cpu`` where the chapter
    declares it), as a *frozen* dataclass
    whose fields carry their documentation (``cfg.describe()`` prints them). A misspelt field is an
    error, not a silently ignored key: ``cfg.replace(N=500)`` or ``cfg | {"N": 500}`` returns a
    new, validated config, and ``cfg.replace(Nn=500)`` raises a ``KeyError`` naming the allowed
    fields. Fields are read as attributes (``cfg.N``); a config is not a mapping (no ``cfg["N"]``,
    ``dict(cfg)`` or ``**cfg``): :meth:`Config.to_dict` gives its fields as a plain dict where
    something must be serialized or hashed.
``run(cfg, store=None) -> result``
    Computes the chapter's result. Theory chapters take seconds and keep nothing, so they ignore
    ``store``; training experiments read and write :class:`rnn_mft.train.ResultsStore`.
``report(cfg, result) -> dict``
    The numbers the page shows in its prose, by name. The chapter inserts them into its sentences
    with myst-nb's ``glue`` (:func:`glue_report`), so the interpretive text lives in the chapter's
    ``.md`` and the values come from the code.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo(Config):
...     N: int = doc(16, "width of the network")
...     PROFILES = {"smoke": dict(N=8), "ci": dict(N=16), "paper": dict(N=64)}
>>> cfg = Demo.for_profile("smoke")
>>> cfg.N, cfg.profile
(8, 'smoke')
>>> cfg.to_dict()
{'profile': 'smoke', 'N': 8}
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

__all__ = ["PROFILES", "BOOK_PROFILES", "OPTIONAL_PROFILES", "CPU_BUDGET_H", "ProfileNotDeclared", "check_profile", "Config", "doc",
           "glue_report"]

#: every profile, smallest first: ``smoke`` (seconds, the tests), ``ci`` (the CPU book), ``cpu``
#: (trained once on a CPU in budgeted slices and committed, for the chapters where ``ci`` is too
#: small to show anything: Table 2's MNIST row and Figure 1), ``paper`` (the paper's scale, a GPU)
PROFILES = ("smoke", "ci", "cpu", "paper")
#: profiles a chapter has only where its config declares them (``Config.PROFILES``)
OPTIONAL_PROFILES = ("cpu",)
#: what the whole ``cpu`` profile may cost, in CPU-hours on the project's 2-core machine (issue 27;
#: tests/test_cpu_profile.py holds the committed slices' measurements to it)
CPU_BUDGET_H = 6.0
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
class Config:
    """Base of every chapter's settings: a frozen dataclass, read by attribute (``cfg.N``).

    It is deliberately not a mapping (no ``cfg["N"]``, ``dict(cfg)``, ``**cfg``), so that settings
    are read one way only; :meth:`to_dict` gives the fields as a plain dict (run names hash it).
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

    def to_dict(self) -> dict:
        """The fields as a plain dict, in declaration order (``profile`` first); values are the
        config's own objects, not copies (what run names and stored settings are made of)."""
        return {name: getattr(self, name) for name in self.field_names()}

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
