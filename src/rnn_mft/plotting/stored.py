"""What the training chapters show of a stored profile's results: the "CPU-scale results" and
"Paper-scale results" blocks.

A stored profile (``cpu``, ``paper``) is trained elsewhere (budgeted CPU slices, a lent GPU)
and read back here from the results store; nothing is trained. :func:`show_stored` and
:func:`show_stored_paper` display a note on what is stored (``rnn_mft.experiments.training.common``:
:func:`~rnn_mft.experiments.training.common.cpu_note`,
:func:`~rnn_mft.experiments.training.common.paper_note`), then what the experiment's drawing
(:data:`DRAW_STORED`) makes of the stored part: Markdown strings and ``(figure name, figure)``
pairs, each figure saved with :func:`rnn_mft.plotting.savefig` and displayed.

The experiments compute (``stored_results(profile)``, ``stored_paper_results()``, their
``accuracy``, ``comparison`` and ``verdict``); this module draws what they computed.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from ..experiments.protocol import check_profile
from ..experiments.training import sequence_length, trainability, training_curves, unrolled
from ..experiments.training.common import cpu_note, paper_note
from . import savefig
from .training_experiments import plot_sequence_length, plot_trainability, plot_training_curves_grid

__all__ = ["DRAW_STORED", "draw_stored_sequence_length", "draw_stored_trainability", "draw_stored_training_curves",
           "draw_stored_unrolled", "show_stored", "show_stored_paper"]


def draw_stored_sequence_length(results: dict, cfg: sequence_length.SequenceLengthConfig) -> list:
    """Figure 1's chapter, a stored profile's results (``sequence_length.stored_results``): the
    accuracy against the stored lengths, the comparison with the paper and its claim read off
    them."""
    Ts = list(results)
    acc = sequence_length.accuracy(results)
    fig = plot_sequence_length(Ts, acc, title=f"{cfg.profile} (stored)")
    return [(f"fig1_sequence_length_{cfg.profile}", fig), sequence_length.comparison(Ts, acc, cfg),
            sequence_length.verdict(results)]


def draw_stored_trainability(paper: dict, cfg_p: trainability.TrainabilityConfig) -> list:
    """Figures 2 and 6's chapter, stored paper-scale results (``trainability.stored_paper_results``):
    per weight kind with any stored runs, the maps of the architectures stored (a length not yet
    stored is a blank row) and their region table, then the comparison with the paper."""
    out = []
    summ = {}
    for kind, fig_no in (("untied", 2), ("tied", 6)):
        if not paper[kind]:
            out.append(f"No {kind} run (Figure {fig_no}) is stored at profile `paper` yet.")
            summ[kind] = {}
            continue
        maps = {a: trainability.accuracy_map(r, cfg_p.Ts) for a, r in paper[kind].items()}
        fig = plot_trainability(maps, paper["overlays"], cfg_p.Ts, f"{kind} weights, paper (stored)")
        out.append((f"fig{fig_no}_trainability_{kind}_paper", fig))
        summ[kind] = {a: trainability.region_summary(m, cfg_p.Ts, paper["overlays"][a]) for a, m in maps.items()}
        out.append(trainability.region_table(summ[kind]))
    out.append(trainability.comparison(summ["untied"], summ["tied"], cfg_p))
    return out


def draw_stored_training_curves(paper: dict, cfg_p: training_curves.TrainingCurvesConfig) -> list:
    """Figure 4's chapter, stored paper-scale results (``training_curves.stored_paper_results``):
    the curves of the stored panels and the comparison with the paper (a panel not yet stored
    says so)."""
    panels = {k: {"curves": training_curves.best_curves(r, cfg_p), "chance": 1 / r.meta["task"]["num_classes"]}
              for k, r in paper.items()}
    fig = plot_training_curves_grid(panels, [t for t in training_curves.TASKS if any(k[0] == t for k in panels)])
    return [("fig4_training_curves_paper", fig), training_curves.comparison(paper, cfg_p)]


def draw_stored_unrolled(results: dict, cfg: unrolled.UnrolledConfig) -> list:
    """Table 2's chapter, a stored profile's results (``unrolled.stored_results``): Table 2 with
    the stored runs beside the paper's numbers, and the paper's claim read off them (Markdown
    only)."""
    return [unrolled.table(results, cfg), unrolled.verdict(results, cfg)]


#: experiment name (``EXPERIMENT`` of its module) -> ``draw(results, cfg)``: what its chapter
#: shows of a stored profile's results, a list of Markdown strings and ``(figure name, figure)``
#: pairs
DRAW_STORED = {sequence_length.EXPERIMENT: draw_stored_sequence_length,
               trainability.EXPERIMENT: draw_stored_trainability,
               training_curves.EXPERIMENT: draw_stored_training_curves,
               unrolled.EXPERIMENT: draw_stored_unrolled}


def show_stored_paper(exp, profile: str, draw=None):
    """The "Paper-scale results" block of a training chapter, in one place.

    Below profile ``paper``, loads the stored paper-profile results of the training experiment
    module ``exp`` (``exp.stored_paper_results()``: read-only, nothing is trained; a
    :class:`~rnn_mft.experiments.training.common.StoredPaper` with whatever part of the paper
    profile's runs is stored, or None), shows a note saying whether they exist, which runs are
    still missing and where the stored ones come from (device, code version, dates), and, when any
    exist, shows what ``draw(results, exp.config("paper"))`` returns (default: the experiment's
    entry of :data:`DRAW_STORED`): a list of Markdown strings and ``(name, figure)`` pairs, each
    figure also saved under ``name``. At profile ``paper`` the page's own results are the
    paper-scale ones and only the note is shown. Returns the ``StoredPaper`` or None.
    """
    from IPython.display import Markdown, display

    check_profile(profile)
    paper = exp.stored_paper_results() if profile != "paper" else None
    display(Markdown(paper_note(profile, paper)))
    draw = draw if draw is not None else DRAW_STORED.get(exp.EXPERIMENT)
    if paper is not None and draw is not None:
        _show_items(draw(paper.results, exp.config("paper")))
    return paper


def show_stored(exp, profile: str, draw=None):
    """The "CPU-scale results" block of a training chapter that declares profile ``cpu``: its
    stored runs (``exp.stored_results("cpu")``, read-only, nothing trained), a note on their
    provenance and on the runs still missing (with the step a run in progress has reached), and
    what ``draw(results, exp.config("cpu"))`` draws (default: the experiment's entry of
    :data:`DRAW_STORED`). On a page run at profile ``cpu`` itself only the note is shown.
    Returns the :class:`~rnn_mft.experiments.training.common.StoredPaper` or None."""
    from IPython.display import Markdown, display

    check_profile(profile)
    if profile == "cpu":
        display(Markdown("This page ran at profile `cpu`: the results above are its runs."))
        return None
    got = exp.stored_results("cpu")
    display(Markdown(cpu_note(profile, got, exp)))
    draw = draw if draw is not None else DRAW_STORED.get(exp.EXPERIMENT)
    if got is not None and draw is not None:
        _show_items(draw(got.results, exp.config("cpu")))
    return got


def _show_items(items) -> None:
    """Display a chapter block's Markdown strings and ``(name, figure)`` pairs (each figure also
    saved under ``name``)."""
    from IPython.display import Markdown, display

    for item in items or []:
        if isinstance(item, str):
            display(Markdown(item))
        else:
            name, fig = item
            savefig(fig, name)
            display(fig)
            plt.close(fig)
