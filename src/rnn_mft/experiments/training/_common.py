"""Shared pieces of the training experiments (Figures 1, 2, 4, 6 and Table 2).

* :func:`make_ensemble`: an ensemble whose members are initialised each in its own way (a Theta
  drawn with :func:`rnn_mft.nets.init_`, the standard initialization of Appendix C.5, or chrono)
  and share one read-out draw, so that members differ only where the experiment says;
* :func:`train_cfg`: the :class:`~rnn_mft.train.TrainConfig` of an experiment's settings;
* :func:`stored`: train, or load what the results store holds for the same settings (profiles
  ``ci`` and ``paper``; ``smoke`` always trains and writes nothing), with checkpoints for
  long runs;
* :func:`run_key`: a short hash of the settings that produced a run, part of its stored name,
  so that editing a config never silently reuses results of other settings;
* :func:`unit`: the description of one stored run (experiment, run name, and how to rebuild the
  call that trains it), what each training experiment's ``units(profile)`` lists without
  training anything, so that :mod:`rnn_mft.cluster` can submit exactly the runs the chapters
  later load from the store;
* :func:`sweep`: an experiment's ``run`` announces how many runs it trains or loads; :func:`stored`
  then prints one line per run, ``trainability: run 3 of 14 (<name>): trained in 41 s; ETA 6 min``
  (or ``... loaded from the store``), flushed, into the notebook and, through the book's build,
  the build log; the ETA is the mean time of the runs trained so far times the runs left.
  ``$RNN_MFT_PROGRESS=0`` silences it;
* :func:`stored_units` and :class:`StoredPaper`: the paper-profile runs the results store holds,
  as far as they exist (a lent GPU stores a figure ensemble by ensemble), for the chapters'
  "Paper-scale results" sections; nothing is trained there.

``$RNN_MFT_STORE_SMOKE=1`` makes profile ``smoke`` use the results store as ``ci`` does (what the
cluster executors set, so that a smoke-profile run through them can be checked against inline).
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from ... import nets, train
from ...data import load_task_pair
from ...data.sources import import_pooch
from ...settings import current as current_settings
from ...theory import Theta

__all__ = ["make_ensemble", "train_cfg", "stored", "run_key", "INIT_KINDS", "load_pair", "stored_units", "stored_paper",
           "stored_profile", "StoredPaper", "provenance", "paper_note", "cpu_note", "short_name", "unit", "store_smoke",
           "sweep", "Sweep"]

INIT_KINDS = ("theta", "standard", "critical", "chrono")


def load_pair(name: str, **kwargs):
    """:func:`rnn_mft.data.load_task_pair` without pooch's per-attempt "Downloading data from ..."
    log lines (a chapter page would show one per mirror URL tried on an offline machine); a file
    that cannot be had still raises with the full list of what was tried."""
    import logging

    try:
        log = import_pooch().get_logger()
    except ImportError:              # no pooch (an offline GPU machine): files come from the mirror
        return load_task_pair(name, progressbar=False, **kwargs)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        return load_task_pair(name, progressbar=False, **kwargs)
    finally:
        log.setLevel(level)


def run_key(settings: dict) -> str:
    """10 hex digits of the SHA-1 of ``settings`` (JSON, sorted keys; ``profile`` excluded):
    :func:`rnn_mft.train.results.settings_key`, which the results store checks stored settings
    against when it reads a run."""
    return train.results.settings_key(settings)


def store_smoke() -> bool:
    """``$RNN_MFT_STORE_SMOKE`` is set: profile ``smoke`` reads and writes the results store."""
    return current_settings().store_smoke


def unit(profile: str, experiment: str, name: str, fn, args=(), config: dict | None = None) -> dict:
    """One stored run, described without training it: ``fn(config(profile).replace(**config),
    *args, store=store)`` trains (or loads) exactly the run ``profile/experiment/name``
    (``fn``: the experiment module's own function, e.g. its ``run_group``; ``config``: the fields
    that differ from the profile's, e.g. trainability's ``tied``). ``module`` and ``call`` name
    ``fn`` for status records and logs; :func:`rnn_mft.cluster.collect_runs` makes the typed
    :class:`~rnn_mft.cluster.runs.RunUnit` of it."""
    return {"profile": profile, "experiment": experiment, "name": name, "fn": fn, "module": fn.__module__,
            "call": fn.__name__, "args": list(args), "config": dict(config or {})}


def _init_member(model, spec, generator):
    kind = spec[0]
    if kind in ("theta", "critical"):
        th = spec[1]
        if not isinstance(th, Theta):
            raise ValueError(f"init spec {spec!r}: the second entry must be a Theta")
        nets.init_(model, th, generator=generator)
    elif kind == "standard":
        nets.standard_init_(model, generator=generator)
    elif kind == "chrono":
        nets.chrono_init_(model, t_max=float(spec[1]), generator=generator)
    else:
        raise ValueError(f"unknown initialization kind {kind!r}; allowed: {', '.join(INIT_KINDS)}")


def make_ensemble(arch: str, n_in: int, n_hidden: int, n_out: int, inits: Sequence[tuple], *,
                  untied: int | None = None, hard_sigmoid: bool = False, seed: int = 0,
                  lengths: Sequence[int] | None = None, h_detach=0.0, member_seeds: Sequence[int] | None = None):
    """An ensemble of ``len(inits)`` classifiers; member ``m`` is initialised by ``inits[m]``:
    ``("theta", Theta)`` / ``("critical", Theta)`` (:func:`~rnn_mft.nets.init_`),
    ``("standard",)`` (:func:`~rnn_mft.nets.standard_init_`) or ``("chrono", t_max)``
    (:func:`~rnn_mft.nets.chrono_init_`). Member ``m`` draws its recurrent weights from the
    generator seeded ``seed * 1000 + member_seeds[m]`` (default ``member_seeds[m] = m``); every
    member gets the same read-out draw (seed ``seed``). A single init gives an ensemble of one.
    ``lengths``: member ``m`` reads out at step ``lengths[m]`` (a mixed-length ensemble, see
    :class:`~rnn_mft.nets.SequenceClassifier`); ``h_detach``: one probability or one per member
    (LSTMs only)."""
    inits = list(inits)
    if not inits:
        raise ValueError("inits must hold at least one initialization")
    if member_seeds is None:
        member_seeds = range(len(inits))
    member_seeds = [int(v) for v in member_seeds]
    if len(member_seeds) != len(inits):
        raise ValueError(f"member_seeds has {len(member_seeds)} entries; allowed: one per member ({len(inits)})")
    hd = [h_detach] * len(inits) if isinstance(h_detach, (int, float)) else list(h_detach)
    if len(hd) != len(inits):
        raise ValueError(f"h_detach={h_detach!r}; allowed: one probability or one per member ({len(inits)})")
    members = []
    for m, spec in enumerate(inits):
        single = nets.make_classifier(arch, n_in, n_hidden, n_out, untied=untied, hard_sigmoid=hard_sigmoid,
                                      h_detach=hd[m])
        single.reset_readout(torch.Generator().manual_seed(int(seed)))
        _init_member(single, spec, torch.Generator().manual_seed(int(seed) * 1000 + member_seeds[m]))
        members.append(single)
    return nets.stack(members, lengths=lengths)


def train_cfg(s: dict, **over) -> train.TrainConfig:
    """TrainConfig from an experiment's settings (keys ``steps, batch_size, optimizer, lr, ...``)."""
    keys = ("steps", "batch_size", "optimizer", "lr", "momentum", "clip", "eval_every", "eval_batch_size",
            "checkpoint_every", "seed")
    d = {k: s[k] for k in keys if k in s}
    d.update(over)
    return train.TrainConfig(**d)        # progress bars: as train.progress_enabled decides (Jupyter, a terminal)


@dataclass
class Sweep:
    """The runs of one experiment's sweep (:func:`sweep`): ``total`` runs, ``done`` of them
    reached so far (trained, loaded or failed), ``trained_s`` the seconds of each trained one;
    ``quiet``: no lines."""

    experiment: str
    total: int
    quiet: bool = False
    done: int = 0
    trained_s: list = field(default_factory=list)

    def line(self, name: str, seconds: float | None) -> str:
        """The progress line of the run just reached (``seconds``: its training time, None when it
        was loaded from the store)."""
        what = "loaded from the store" if seconds is None else f"trained in {_duration(seconds)}"
        left = self.total - self.done
        if self.trained_s and left > 0:
            what += f"; ETA {_duration(sum(self.trained_s) / len(self.trained_s) * left)}"
        return f"{self.experiment}: run {self.done} of {self.total} ({name}): {what}"


#: the open sweeps, innermost last (:func:`sweep`)
_SWEEPS: list[Sweep] = []


def _duration(seconds: float) -> str:
    """``0.4 s``, ``41 s``, ``6 min``, ``2.5 h``."""
    if seconds < 9.5:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@contextlib.contextmanager
def sweep(experiment: str, total: int, quiet: bool = False) -> Iterator[Sweep]:
    """Within this block, ``experiment`` trains or loads ``total`` runs through :func:`stored`,
    which prints ``<experiment>: run k of <total> (<name>): trained in 41 s; ETA 6 min`` (or
    ``loaded from the store``) after each. Outside any sweep the line has no counter:
    ``<experiment>: run <name>: trained in 41 s``; ``quiet``: no lines in this block."""
    sw = Sweep(str(experiment), int(total), bool(quiet))
    _SWEEPS.append(sw)
    try:
        yield sw
    finally:
        _SWEEPS.remove(sw)


def _announce(experiment: str, name: str, seconds: float | None, sw: Sweep | None) -> None:
    """Print the progress line of a run (flushed: it reaches the notebook and the build log at
    once), unless ``$RNN_MFT_PROGRESS=0``."""
    if sw is not None and seconds is not None:
        sw.trained_s.append(float(seconds))
    if current_settings().progress is False or (sw is not None and sw.quiet):
        return
    if sw is not None:
        line = sw.line(name, seconds)
    else:
        what = "loaded from the store" if seconds is None else f"trained in {_duration(seconds)}"
        line = f"{experiment}: run {name}: {what}"
    print(line, flush=True)


def stored(profile: str, experiment: str, name: str, fn: Callable[[str | None], train.RunResult],
           store: train.ResultsStore | None = None) -> train.RunResult:
    """``fn(checkpoint_path)`` or the stored result of ``profile/experiment/name``.

    ``smoke`` (unless ``$RNN_MFT_STORE_SMOKE``): ``fn(None)``, nothing stored (under a time budget, ``$RNN_MFT_DEADLINE``, with a
    checkpoint). ``ci``/``paper``: the results store's entry when it exists, else ``fn`` with a
    checkpoint file (resumed if a previous run was interrupted or ran out of time), then stored
    atomically; the checkpoint is deleted only once the result is written.

    Each call prints one progress line (see :func:`sweep`): trained (and how long it took) or
    loaded from the store.
    """
    sw = _SWEEPS[-1] if _SWEEPS else None
    if sw is not None:
        sw.done += 1                    # counted even if the run fails, so later runs keep their number
    t0, trained = time.perf_counter(), []

    def timed(ckpt):
        trained.append(True)
        return fn(ckpt)

    res = _stored(profile, experiment, name, timed, store)
    _announce(experiment, name, time.perf_counter() - t0 if trained else None, sw)
    return res


def _stored(profile, experiment, name, fn, store):
    if profile == "smoke" and not store_smoke():
        if current_settings().deadline is None:
            return fn(None)
        # under a time budget even a smoke run checkpoints, so that it can continue later
        store = store or train.ResultsStore()
        ck = store.checkpoint_path(profile, experiment, name)
        res = fn(str(ck))
        ck.unlink(missing_ok=True)
        return res
    store = store or train.ResultsStore()
    ck = store.checkpoint_path(profile, experiment, name)
    return store.load_or_run(profile, experiment, name, lambda: fn(str(ck)), checkpoint=ck)


@dataclass
class StoredPaper:
    """The results of a training experiment at a stored profile (``paper``, ``cpu``) that the
    results store holds.

    ``results``: the experiment's own structure (what its ``run`` returns) with only the stored
    runs in it; ``stored`` and ``missing``: the names of the experiment's paper-profile runs
    (``units("paper")``) that are stored and that are not (yet)."""

    results: object
    stored: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    in_progress: dict = field(default_factory=dict)      #: missing run -> step its checkpoint reached


def stored_units(module, profile: str = "paper", store: train.ResultsStore | None = None):
    """``(loaded, missing)``: every run of ``module.units(profile)`` that the results store holds,
    loaded as ``(unit, module.<call>(config, *args, store=store))``, and the units it lacks.
    The store is read-only: nothing is ever trained here, whatever is missing (and no progress
    lines are printed: loading is quick)."""
    store = store or train.ResultsStore(readonly=True)
    loaded, missing = [], []
    units = module.units(profile)
    present = [u for u in units if store.exists(u["profile"], u["experiment"], u["name"])]
    if not present:
        return [], units
    with sweep(present[0]["experiment"], len(present), quiet=True):
        for u in units:
            if not store.exists(u["profile"], u["experiment"], u["name"]):
                missing.append(u)
                continue
            cfg = module.config(profile).replace(**u["config"])
            loaded.append((u, u["fn"](cfg, *u["args"], store=store)))
    return loaded, missing


def stored_profile(module, profile: str, assemble: Callable[[list], object],
                   store: train.ResultsStore | None = None) -> StoredPaper | None:
    """:class:`StoredPaper` of a training experiment ``module`` at a stored ``profile`` (``paper``,
    ``cpu``), or None when none of its runs there is stored. ``assemble(loaded)`` builds the
    experiment's result structure from the ``(unit, output)`` pairs of :func:`stored_units`.
    A run not stored yet whose checkpoint is (a run trained in budgeted slices) is named with the
    step it has reached in ``in_progress``."""
    loaded, missing = stored_units(module, profile, store)
    if not loaded:
        return None
    out = StoredPaper(assemble(loaded), [u["name"] for u, _ in loaded], [u["name"] for u in missing])
    out.in_progress = _in_progress(missing, store)
    return out


def stored_paper(module, assemble: Callable[[list], object]) -> StoredPaper | None:
    """:func:`stored_profile` at profile ``paper``."""
    return stored_profile(module, "paper", assemble)


def _in_progress(missing: list, store=None) -> dict:
    """``{run name: training step}`` of the missing runs whose checkpoint the store holds (read
    with the safe loader: tensors and plain data only); an unreadable checkpoint is left out."""
    store = store or train.ResultsStore(readonly=True)
    out = {}
    for u in missing:
        ck = store.checkpoint_path(u["profile"], u["experiment"], u["name"])
        if ck.is_file():
            try:
                out[u["name"]] = int(train.checkpoint.load_checkpoint(ck)["step"])
            except train.CheckpointError:
                pass
    return out


def _flatten(results) -> list:
    if isinstance(results, train.RunResult):
        return [results]
    if isinstance(results, dict):
        return [r for v in results.values() for r in _flatten(v)]
    if isinstance(results, (list, tuple)):
        return [r for v in results for r in _flatten(v)]
    return []


def provenance(results) -> str:
    """One Markdown sentence on where stored results come from: devices, code versions, rnn_mft
    and torch versions, dates and total wall time of every :class:`~rnn_mft.train.RunResult` inside.
    Results split from one ensemble (``meta["settings"]["ensemble"]``, e.g. one per length of a
    whole-figure ensemble) count as the one run they were, with its wall time once."""
    runs, seen = [], set()
    for r in _flatten(results):
        key = (r.meta.get("settings") or {}).get("ensemble") or id(r)
        if key not in seen:
            seen.add(key)
            runs.append(r)
    if not runs:
        return "no runs"
    pick = lambda key: sorted({str(r.meta.get(key, "?")) for r in runs})  # noqa: E731
    dates = sorted(str(r.meta.get("finished", "?")) for r in runs)
    wall = sum(float(r.meta.get("wall_time_s", 0.0)) for r in runs)
    return (f"{len(runs)} stored runs; device {', '.join(pick('device'))}; code {', '.join(pick('code_version'))}; "
            f"rnn_mft {', '.join(pick('rnn_mft_version'))}; torch {', '.join(pick('torch_version'))}; finished {dates[0]} to {dates[-1]}; "
            f"{wall / 3600:.1f} h of training in total.")


def short_name(name: str) -> str:
    """A stored run's name without its settings hash (:func:`run_key`), for prose."""
    return re.sub(r"-[0-9a-f]{10}$", "", name)


def cpu_note(profile: str, cpu, module=None) -> str:
    """Markdown paragraph for a chapter: are stored ``cpu``-profile results shown, and from where
    (``cpu``: None or a :class:`StoredPaper` of that profile). ``module``: the experiment, for the
    total steps of a run in progress."""
    steps = module.config("cpu").steps if module is not None else None
    if cpu is None:
        prog = _in_progress(module.units("cpu")) if module is not None else {}
        going = ("; in progress: " + ", ".join(f"`{short_name(m)}` (step {k} of {steps}, checkpoint committed)"
                                               for m, k in prog.items())) if prog else ""
        return ("**CPU-scale results (profile `cpu`):** none stored for this chapter yet" + going
                + " (`tools/cpu_slice.py` trains them in budgeted slices on a CPU; see README, The cpu profile). "
                f"Everything above was computed at profile `{profile}`.")
    text = ("**CPU-scale results (profile `cpu`, stored, not recomputed by this page):** "
            + provenance(cpu.results))
    if cpu.missing:
        n = len(cpu.stored) + len(cpu.missing)
        parts = []
        for m in cpu.missing:
            at = cpu.in_progress.get(m)
            parts.append(f"`{short_name(m)}`" + (f" (in progress: step {at}" + (f" of {steps}" if steps else "")
                                                 + ", checkpoint committed)" if at is not None else ""))
        text += (f" Of the cpu profile's {n} runs, {len(cpu.stored)} are stored; not yet: " + ", ".join(parts)
                 + ". What is drawn below is the part that exists.")
    return text + " They are drawn below, marked `cpu (stored)`."


def paper_note(profile: str, paper) -> str:
    """Markdown paragraph for a chapter: are stored paper-profile results shown, and from where.
    ``paper``: None, a :class:`StoredPaper` (then how many of the paper profile's runs are stored,
    and which are not yet), or results as a chapter's ``run`` returns them."""
    if profile == "paper":
        return "This page ran at profile `paper`: the results above are the paper-scale runs."
    if paper is None:
        return ("**Paper-scale results:** none stored for this chapter yet "
                "(`data/results/paper/` is filled by `make reproduce` on a GPU machine; see README). "
                f"Everything above was computed at profile `{profile}`.")
    if not isinstance(paper, StoredPaper):
        paper = StoredPaper(paper)
    text = "**Paper-scale results (stored, not recomputed by this page):** " + provenance(paper.results)
    if paper.missing:
        n = len(paper.stored) + len(paper.missing)
        text += (f" Of the paper profile's {n} ensemble runs, {len(paper.stored)} are stored; not yet: "
                 + ", ".join(f"`{short_name(m)}`" for m in paper.missing)
                 + " (a later GPU session trains them; see README, Using a GPU). What is drawn below is the"
                   " part that exists.")
    return text + " They are drawn below, marked `paper (stored)`."
