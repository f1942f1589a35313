"""The chapters' "Paper-scale results" sections with a results store that holds only part of the
paper profile (what a lent GPU leaves after a budgeted slice): what is stored is drawn, what is
missing is named, and nothing is trained.

The stored runs are real ones, trained here at the smoke profile's sizes under the paper
profile's names (each experiment's ``config("paper")`` is patched to the smoke settings for the
whole test), so every drawing path the ci book will take once a GPU has stored results runs
against results of the real layout.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib", reason="the chapters' drawing needs the plot extra")
pytest.importorskip("IPython", reason="the chapters' sections display through IPython (the book extra)")

from rnn_mft import train  # noqa: E402
from rnn_mft.experiments.training import sequence_length, trainability, training_curves, unrolled  # noqa: E402
from rnn_mft.experiments.training.common import StoredPaper, paper_note, short_name  # noqa: E402
from rnn_mft.plotting.stored import show_stored_paper  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def paper_store(profile_store):
    """``paper_store(exp, **changes)``: ``exp.config("paper")`` patched to the smoke settings
    named ``paper``, in a store under tmp_path (conftest's ``profile_store``)."""
    return lambda exp, **changes: profile_store(exp, "paper", **changes)


def _drop(unit_):
    """Remove one stored run from the store (as if the GPU session had not reached it)."""
    store = train.ResultsStore()
    path = store.path(unit_["profile"], unit_["experiment"], unit_["name"])
    for p in path.parent.glob(path.name + ".*"):
        p.unlink()
    assert not store.exists(unit_["profile"], unit_["experiment"], unit_["name"])


def _show(exp, monkeypatch):
    """show_stored_paper at profile ci, with training forbidden; returns (StoredPaper, what was displayed)."""
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))

    def no_training(*a, **k):
        raise AssertionError("the Paper-scale section trained a network")
    monkeypatch.setattr(train, "fit", no_training)
    paper = show_stored_paper(exp, "ci")
    return paper, shown


def _markdown(shown):
    return "\n".join(o.data for o in shown if hasattr(o, "data") and isinstance(o.data, str))


def _figures(shown):
    import matplotlib.figure
    return [o for o in shown if isinstance(o, matplotlib.figure.Figure)]


def test_nothing_stored_shows_the_note_only(paper_store, monkeypatch):
    paper_store(sequence_length)
    paper, shown = _show(sequence_length, monkeypatch)
    assert paper is None
    assert "none stored for this chapter yet" in _markdown(shown) and not _figures(shown)


def test_trainability_partial_store_draws_the_stored_lengths_and_names_the_missing(paper_store, monkeypatch,
                                                                                   tmp_path):
    # one length per ensemble (a tiny memory budget), so that a map can lack a row
    cfg = paper_store(trainability, ensemble_gib=1e-9)
    units = trainability.units("paper")
    assert len(units) == 2 * 2 * 2            # (untied, tied) x 2 archs x 2 lengths
    trainability.run(cfg)                      # trains and stores every unit (smoke sizes, paper names)
    full = trainability.stored_paper_results()
    assert isinstance(full, StoredPaper) and not full.missing and len(full.stored) == len(units)

    gone = [u for u in units if not u["config"]["tied"] and u["args"] == ["gru", [max(cfg.Ts)]]]
    gone += [u for u in units if u["config"]["tied"] and u["args"][0] == "peephole_lstm"]
    assert len(gone) == 3
    for u in gone:
        _drop(u)

    paper, shown = _show(trainability, monkeypatch)
    assert sorted(paper.missing) == sorted(u["name"] for u in gone)
    assert len(paper.stored) == len(units) - 3
    res = paper.results
    assert list(res["untied"]["gru"]) == [min(cfg.Ts)]          # the stored length only
    assert set(res["tied"]) == {"gru"} and set(res["overlays"]) == {"gru", "peephole_lstm"}
    m = trainability.accuracy_map(res["untied"]["gru"], cfg.Ts)
    assert m.shape == (len(cfg.Ts), cfg.n_alpha)
    assert np.isnan(m[cfg.Ts.index(max(cfg.Ts))]).all()      # the missing length: a blank row
    stored_row = m[cfg.Ts.index(min(cfg.Ts))]
    np.testing.assert_array_equal(stored_row, res["untied"]["gru"][min(cfg.Ts)].final["eval_acc"])

    text = _markdown(shown)
    assert f"Of the paper profile's {len(units)} ensemble runs, {len(units) - 3} are stored" in text
    for u in gone:
        assert f"`{short_name(u['name'])}`" in text
    assert "| gru, untied (Fig. 2) |" in text and "| peephole_lstm, tied (Fig. 6) |" not in text
    assert len(_figures(shown)) == 2
    names = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert names == ["fig2_trainability_untied_paper.png", "fig6_trainability_tied_paper.png"]


def test_sequence_length_partial_store(paper_store, monkeypatch):
    cfg = paper_store(sequence_length, ensemble_gib=1e-9)
    units = sequence_length.units("paper")
    assert len(units) == len(cfg.Ts) >= 2
    sequence_length.run(cfg)
    gone = [u for u in units if u["args"] == [[max(cfg.Ts)]]]
    _drop(gone[0])
    paper, shown = _show(sequence_length, monkeypatch)
    assert list(paper.results) == [T for T in cfg.Ts if T != max(cfg.Ts)]
    assert paper.missing == [gone[0]["name"]]
    text = _markdown(shown)
    assert "| critical |" in text and f"`{short_name(gone[0]['name'])}`" in text
    assert len(_figures(shown)) == 1


def test_training_curves_partial_store(paper_store, monkeypatch):
    cfg = paper_store(training_curves)
    units = training_curves.units("paper")
    training_curves.run(cfg)
    gone = units[-1]
    _drop(gone)
    paper, shown = _show(training_curves, monkeypatch)
    task, L = gone["args"]
    assert (task, L) not in paper.results and len(paper.results) == len(units) - 1
    text = _markdown(shown)
    assert f"| {task} | {training_curves.TASKS[task]} = {L} | | " in text and "not stored yet" in text
    assert len(_figures(shown)) == 1


def test_unrolled_partial_store_says_why_cifar_is_missing(paper_store, monkeypatch):
    cfg = paper_store(unrolled, datasets=["mnist", "cifar10"])
    unrolled.run_one(cfg, "mnist")             # what a GPU machine can do: MNIST only
    paper, shown = _show(unrolled, monkeypatch)
    assert paper.results["mnist"][0] is not None
    assert paper.results["cifar10"][0] is None and "offline GPU machines" in paper.results["cifar10"][1]
    text = _markdown(shown)
    assert "| MNIST | critical |" in text and (f"| CIFAR-10 | critical | {unrolled.PAPER['cifar10']['critical']:.1f} | not run | "
                                                 "no stored paper-scale run yet") in text
    assert not _figures(shown)


def test_paper_note_forms():
    assert "ran at profile `paper`" in paper_note("paper", None)
    assert "none stored" in paper_note("ci", None)
    r = train.RunResult(final={"eval_acc": [0.5]}, meta={"device": "cuda (H200)", "finished": "2026-01-01T00:00:00",
                                                        "wall_time_s": 60.0})
    whole = paper_note("ci", StoredPaper({"a": r}, stored=["a-0123456789"]))
    assert "1 stored runs; device cuda (H200)" in whole and "not yet" not in whole
    part = paper_note("ci", StoredPaper({"a": r}, stored=["a-0123456789"], missing=["b-T8_16-abcdef0123"]))
    assert "Of the paper profile's 2 ensemble runs, 1 are stored; not yet: `b-T8_16`" in part
    assert short_name("tied-gru-T2_5-0123456789") == "tied-gru-T2_5" and short_name("mnist") == "mnist"


def test_provenance_counts_a_split_ensemble_once():
    from rnn_mft.experiments.training._common import provenance
    r = train.RunResult(final={"eval_acc": [0.5, 0.6, 0.7, 0.8]},
                        meta={"members": 4, "device": "cpu", "finished": "2026-01-01T00:00:00", "wall_time_s": 3600.0})
    parts = {}
    for j, T in enumerate((2, 4)):                 # what run_group does with a whole-figure ensemble
        parts[T] = r.select([2 * j, 2 * j + 1])
        parts[T].meta["settings"] = {"ensemble": "tied-gru-T2_4-0123456789"}
    text = provenance(parts)
    assert text.startswith("1 stored runs;") and "1.0 h of training in total" in text
    assert provenance({"a": r, "b": train.RunResult(meta=dict(r.meta))}).startswith("2 stored runs;")
