"""The ``cpu`` profile (issue 27): Table 2's MNIST row and Figure 1 trained once on a CPU in
budgeted slices, committed, and shown by the ci book beside ``ci`` and the paper.

The display tests store real runs trained at the smoke profile's sizes under the cpu profile's
names (``config("cpu")`` patched to the smoke settings), as tests/test_paper_display.py does for
the paper profile, so the drawing path the ci book takes runs against results of the real layout.
"""
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib", reason="the chapters' drawing needs the plot extra")
pytest.importorskip("IPython", reason="the chapters' sections display through IPython (the book extra)")

from rnn_mft import train  # noqa: E402
from rnn_mft.cluster import collect_runs  # noqa: E402
from rnn_mft.experiments import PROFILES, ProfileNotDeclared  # noqa: E402
from rnn_mft.experiments.protocol import CPU_BUDGET_H  # noqa: E402
from rnn_mft.experiments.training import sequence_length, trainability, unrolled  # noqa: E402
from rnn_mft.experiments.training.common import StoredPaper, cpu_note, short_name  # noqa: E402
from rnn_mft.plotting.stored import show_stored  # noqa: E402
from rnn_mft.train.checkpoint import save_checkpoint  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
#: what the whole cpu profile may cost on the project's 2-core machine (issue 27)
BUDGET_CPU_H = CPU_BUDGET_H


def test_cpu_profile_covers_table2_mnist_and_figure1_only():
    assert PROFILES.index("ci") < PROFILES.index("cpu") < PROFILES.index("paper")
    units = collect_runs("cpu")
    assert sorted({u.experiment for u in units}) == ["sequence_length", "unrolled"]
    assert [list(u.args) for u in units if u.experiment == "unrolled"] == [["mnist"]]
    with pytest.raises(ProfileNotDeclared, match="allowed here: smoke, ci, paper"):
        trainability.config("cpu")
    for exp in (unrolled, sequence_length):
        c, ci, paper = exp.config("cpu"), exp.config("ci"), exp.config("paper")
        assert ci.steps < c.steps <= paper.steps and c.profile == "cpu"
    assert unrolled.config("cpu").width == 100                         # h-detach's width
    s = sequence_length.config("cpu")
    assert max(s.Ts) == max(sequence_length.config("paper").Ts) > max(sequence_length.config("ci").Ts)
    # the ensemble of T <= 400, trained first, keeps its stored name beside the longer lengths
    assert [10, 30, 100, 200, 400] in sequence_length.groups(s)
    assert "sequence_length/T10_30_100_200_400-3e0045b636" in {u.id for u in units}


def test_cpu_profile_fits_its_budget_as_measured_by_its_slices():
    """Every committed slice records the CPU seconds it used and the steps it trained; each run's
    measured CPU seconds per step times its steps, summed, must stay within the budget. CPU time,
    not wall time: the slices run under `nice` beside other work, which stretches their wall time
    but not (much) the work they do."""
    log = ROOT / "data" / "cpu_sessions" / "slices.jsonl"
    if not log.is_file():
        pytest.skip("no cpu-profile slice committed yet")
    steps = {u.id: (unrolled if u.experiment == "unrolled" else sequence_length).config("cpu").steps
             for u in collect_runs("cpu")}
    rate = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if r["run"] not in steps:
            continue                                  # a run of earlier cpu settings
        after = r["step_after"]
        if after is None:                             # finished in this slice: its checkpoint is gone
            after = steps[r["run"]] if r["outcome"] == "done" else None
        n = None if after is None else after - (r["step_before"] or 0)
        if n:
            c, k = rate.get(r["run"], (0.0, 0))
            rate[r["run"]] = (c + r["cpu_s"], k + n)
    measured = {run: c / k for run, (c, k) in rate.items()}
    assert measured, "the slice log names no run of the current cpu profile"
    # a run not yet measured costs what a measured run of its experiment costs per member-step
    # (a training step's arithmetic is the sum of its members' lengths, sequence_length.ensembles)
    work = {f"sequence_length/{sequence_length.run_name(sequence_length.config('cpu'), e['Ts'])}": sum(e["lengths"])
            for e in sequence_length.ensembles(sequence_length.config("cpu"))}
    cost = {}
    for run in steps:
        if run in measured:
            cost[run] = measured[run] * steps[run]
        else:
            known = [r for r in measured if r in work]
            assert run in work and known, f"no measured run of {run}'s experiment to estimate it from"
            per = sum(measured[r] / work[r] for r in known) / len(known)
            cost[run] = per * work[run] * steps[run]
    total_h = sum(cost.values()) / 3600
    assert total_h <= BUDGET_CPU_H, f"measured {measured} CPU s/step: {total_h:.1f} CPU-h > {BUDGET_CPU_H}"


@pytest.fixture
def cpu_store(profile_store):
    """``cpu_store(exp, **changes)``: ``exp.config("cpu")`` patched to the smoke settings named
    ``cpu``, in a store under tmp_path (conftest's ``profile_store``)."""
    return lambda exp, **changes: profile_store(exp, "cpu", **changes)


def _show(exp, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))

    def no_training(*a, **k):
        raise AssertionError("the CPU-scale section trained a network")
    monkeypatch.setattr(train, "fit", no_training)
    return show_stored(exp, "ci"), shown


def _markdown(shown):
    return "\n".join(o.data for o in shown if hasattr(o, "data") and isinstance(o.data, str))


def test_nothing_stored_says_so_and_names_a_run_in_progress(cpu_store, monkeypatch):
    cfg = cpu_store(unrolled)
    got, shown = _show(unrolled, monkeypatch)
    assert got is None and "none stored for this chapter yet (" in _markdown(shown)
    u = unrolled.units("cpu")[0]
    save_checkpoint(train.ResultsStore().checkpoint_path("cpu", u["experiment"], u["name"]), {"run": u["name"]},
                    {"step": 3, "done": False})
    got, shown = _show(unrolled, monkeypatch)
    assert got is None
    assert (f"none stored for this chapter yet; in progress: `{short_name(u['name'])}` (step 3 of {cfg.steps}, "
            "checkpoint committed)") in _markdown(shown)


def test_unrolled_cpu_row_and_verdict(cpu_store, monkeypatch):
    cfg = cpu_store(unrolled, datasets=["mnist"])
    res, _ = unrolled.run_one(cfg, "mnist")
    got, shown = _show(unrolled, monkeypatch)
    assert isinstance(got, StoredPaper) and not got.missing
    text = _markdown(shown)
    assert "CPU-scale results (profile `cpu`" in text and "| MNIST | critical |" in text
    acc = dict(zip(res.meta["labels"], res.final["eval_acc"]))
    c, s = 100 * acc["critical"], 100 * acc["standard"]
    assert f"critical {c:.1f}% against standard {s:.1f}%" in text                  # computed, not typed
    best = max(acc.values())
    assert ("above 90%" if best >= 0.9 else "below 90%") in text


def test_sequence_length_partial_cpu_store_names_the_run_in_progress(cpu_store, monkeypatch):
    cfg = cpu_store(sequence_length, ensemble_gib=1e-9)            # one ensemble per length
    units = sequence_length.units("cpu")
    sequence_length.run(cfg)
    gone = [u for u in units if u["args"] == [[max(cfg.Ts)]]][0]
    store = train.ResultsStore()
    path = store.path(gone["profile"], gone["experiment"], gone["name"])
    for p in path.parent.glob(path.name + ".*"):
        p.unlink()
    ck = store.checkpoint_path("cpu", gone["experiment"], gone["name"])
    save_checkpoint(ck, {"run": gone["name"]}, {"step": 2, "done": False})
    got, shown = _show(sequence_length, monkeypatch)
    assert got.missing == [gone["name"]] and got.in_progress == {gone["name"]: 2}
    text = _markdown(shown)
    assert f"`{short_name(gone['name'])}` (in progress: step 2 of {cfg.steps}, checkpoint committed)" in text
    assert "The paper's claim (critical trainable where standard fails)" in text
    assert list(got.results) == [T for T in cfg.Ts if T != max(cfg.Ts)]


def test_cpu_note_forms():
    assert "none stored" in cpu_note("ci", None)
    r = train.RunResult(final={"eval_acc": [0.5]}, meta={"device": "cpu", "finished": "2026-12-04T00:00:00",
                                                        "wall_time_s": 3600.0})
    assert "1 stored runs; device cpu" in cpu_note("ci", StoredPaper({"a": r}, stored=["a-0123456789"]))
