"""The results store knows a complete run, read-only means read-only, bad paths are named.

* a run is done only when its files are complete and agree with each other and with the run's
  name; ``rnn-mft runs``, ``tools/reproduce.py`` (``run_states``) and the book (``load``,
  ``load_or_run``) go by the same verdict, list a broken run with the reason, and retrain it on
  request; results stored before manifests existed (the committed paper run) still load;
* a checkpoint path that cannot hold a checkpoint is a ``ValueError`` before any training step;
* ``$RNN_MFT_RESULTS_READONLY`` holds for reproduce and its jobs;
* ``$RNN_MFT_RESULTS`` / ``$RNN_MFT_JOBS`` pointing at a file is an error naming the path.

Each test of a defect fails on the code before these changes (see the report of the change).
The store-level tests use hand-made results (milliseconds); one test trains the smoke profile's
trainability runs (4 small ensembles, seconds).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_mft import nets, train
from rnn_mft.cluster import collect_runs, execute, run_states, run_unit
from rnn_mft.cluster.runs import RunUnit, UnitFailed
from rnn_mft.experiments.training._common import run_key
from rnn_mft.theory import Theta

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
#: the run trained on a lent H200 and committed before manifests existed
PAPER_RUN = ("paper", "trainability", "tied-gru-T2_4_6_8_12_16_24_32_48_64_96_128_192_256-3aa042d210")
SETTINGS = {"width": 4, "lr": 0.01, "steps": 3, "seed": 0}
NAME = f"r-{run_key(SETTINGS)}"                    # a name made from its settings, as the experiments make them


@pytest.fixture
def where(tmp_path, monkeypatch):
    """A fresh, writable results store, jobs and checkpoint folder (also for worker processes)."""
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("RNN_MFT_JOBS", str(tmp_path / "jobs"))
    monkeypatch.setenv("RNN_MFT_CHECKPOINTS", str(tmp_path / "checkpoints"))
    # set (empty: off), not deleted: tools/reproduce.py's main() writes RNN_MFT_STORE_SMOKE (and
    # RNN_MFT_RESTART) into os.environ, and only a variable monkeypatch has set is restored after
    # the test (a deleted, absent one would stay set and make later smoke runs use a store)
    for var in ("RNN_MFT_RESULTS_READONLY", "RNN_MFT_STORE_SMOKE", "RNN_MFT_RESTART", "RNN_MFT_DEADLINE"):
        monkeypatch.setenv(var, "")
    return tmp_path


def _result(settings=SETTINGS, **config) -> train.RunResult:
    """A small hand-made result of two members whose config and settings agree."""
    cfg = {"lr": settings["lr"], "steps": settings["steps"], "seed": 0, **config}
    return train.RunResult({"train_loss": np.arange(6.0).reshape(3, 2), "eval_step": np.array([3])},
                           {"eval_acc": [0.5, 0.25]}, cfg, {"members": 2, "settings": dict(settings)})


def _write_legacy(store, profile, experiment, run, result):
    """The files of a run as the store wrote them before manifests: ``.npz``, then ``.json``."""
    base = store.path(profile, experiment, run)
    base.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **result.curves)
    base.with_suffix(".npz").write_bytes(buf.getvalue())
    base.with_suffix(".json").write_text(json.dumps(result.to_json_dict(), indent=1, sort_keys=True) + "\n")
    return base.with_suffix(".json"), base.with_suffix(".npz")


def _state(store, run=NAME, profile="ci", experiment="exp") -> dict:
    """What ``run_states`` (``rnn-mft runs``, reproduce) says of one run."""
    return run_states(profile, store, units=[RunUnit(profile, experiment, run)])[0]


def _edit_json(path: Path, edit) -> None:
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d, indent=1, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- 1. a complete run

def test_truncated_json_is_broken_not_done(where):
    store = train.ResultsStore()
    js = store.save("ci", "exp", NAME, _result())
    js.write_bytes(js.read_bytes()[:40])
    s = _state(store)
    assert s["state"] == "broken" and str(js) in s["detail"] and "not valid JSON" in s["detail"], s
    assert not store.exists("ci", "exp", NAME)


def test_missing_curves_are_broken_not_done(where):
    store = train.ResultsStore()
    npz = store.save("ci", "exp", NAME, _result()).with_suffix(".npz")
    npz.unlink()
    s = _state(store)
    assert s["state"] == "broken" and str(npz) in s["detail"] and "missing" in s["detail"], s
    assert not store.exists("ci", "exp", NAME)


def test_curves_changed_after_writing_fail_the_manifest(where):
    """A valid .npz with the right arrays but other values: only the manifest's hash tells."""
    store = train.ResultsStore()
    npz = store.save("ci", "exp", NAME, _result()).with_suffix(".npz")
    buf = io.BytesIO()
    np.savez_compressed(buf, train_loss=np.zeros((3, 2)), eval_step=np.array([3]))
    npz.write_bytes(buf.getvalue())
    with pytest.raises(train.StoredResultError, match="does not match its manifest") as err:
        store.load("ci", "exp", NAME)
    assert str(npz) in str(err.value)
    assert _state(store)["state"] == "broken"


def test_the_manifest_is_written_last(where, monkeypatch):
    """A save interrupted before its manifest leaves a broken run, never a done one."""
    from rnn_mft.train import results
    real = results.atomic_write_bytes

    def dies_before_the_manifest(path, data):
        if Path(path).suffix == ".manifest":
            raise OSError("disk full (simulated)")
        return real(path, data)
    monkeypatch.setattr(results, "atomic_write_bytes", dies_before_the_manifest)
    store = train.ResultsStore()
    with pytest.raises(OSError, match="simulated"):
        store.save("ci", "exp", NAME, _result())
    s = _state(store)
    assert s["state"] == "broken" and ".manifest" in s["detail"] and "interrupted" in s["detail"], s


def test_settings_or_config_disagreeing_with_the_name_are_refused(where):
    store = train.ResultsStore()
    with pytest.raises(ValueError, match=r"not storing ci/exp/r-.*hash to"):      # refused before writing
        store.save("ci", "exp", NAME, _result(settings=dict(SETTINGS, width=5)))
    assert not list(store.root.rglob("*.*"))
    # a result stored before manifests, whose config was edited: the file and what disagrees
    js, _ = _write_legacy(store, "ci", "exp", NAME, _result(lr=0.02))
    with pytest.raises(train.StoredResultError, match=r"config.lr=0.02 disagrees .* \(lr=0.01\)") as err:
        store.load("ci", "exp", NAME)
    assert str(js) in str(err.value)
    assert _state(store)["state"] == "broken"
    # ... whose settings were edited
    _write_legacy(store, "ci", "exp", NAME, _result())
    _edit_json(js, lambda d: d["meta"]["settings"].update(width=5))
    s = _state(store)
    assert s["state"] == "broken" and str(js) in s["detail"] and "hash to" in s["detail"], s
    # a stored run's files copied under another run's name
    store.save("ci", "exp", NAME, _result())
    other = f"r2-{run_key(SETTINGS)}"
    for suffix in (".json", ".npz", ".manifest"):
        dst = store.path("ci", "exp", other).with_suffix(suffix)
        dst.write_bytes(store.path("ci", "exp", NAME).with_suffix(suffix).read_bytes())
    s = _state(store, run=other)
    assert s["state"] == "broken" and f"manifest of 'ci/exp/{NAME}'" in s["detail"], s


def test_results_stored_before_manifests_still_load(where):
    store = train.ResultsStore()
    _write_legacy(store, "ci", "exp", NAME, _result())
    assert store.exists("ci", "exp", NAME) and _state(store)["state"] == "done"
    assert store.load("ci", "exp", NAME).final == {"eval_acc": [0.5, 0.25]}
    committed = train.ResultsStore(ROOT / "data" / "results", readonly=True)
    assert committed.exists(*PAPER_RUN)
    r = committed.load(*PAPER_RUN)
    assert r.curves["train_loss"].shape == (1000, 224) and r.meta["settings"]["arch"] == "gru"


def test_load_or_run_retrains_a_broken_run_unless_read_only(where):
    store = train.ResultsStore()
    npz = store.save("ci", "exp", NAME, _result()).with_suffix(".npz")
    npz.unlink()
    with pytest.raises(train.StoredResultError, match="missing") as err:
        train.ResultsStore(readonly=True).load_or_run("ci", "exp", NAME, lambda: pytest.fail("trained read-only"))
    assert str(npz) in str(err.value)
    calls = []
    again = store.load_or_run("ci", "exp", NAME, lambda: calls.append(1) or _result())
    assert calls == [1] and again.final == {"eval_acc": [0.5, 0.25]}
    assert store.exists("ci", "exp", NAME) and _state(store)["state"] == "done"


# ----------------------------------------------------------------------------- 2. checkpoint paths

TASK = train.CopyMemoryTask(T=6, n_symbols=4, n_eval=16)


def _fit_steps(ck, **kw):
    """Train 5 steps with checkpoint ``ck``; returns (the exception raised, steps trained)."""
    g = torch.Generator().manual_seed(0)
    model = nets.make_classifier("gru", TASK.n_in, 4, TASK.n_out)
    nets.init_(model, Theta.uniform("gru", sigma2=1.0, nu2=1.0, rho2=0.1), g)
    steps = []
    cfg = train.TrainConfig(steps=5, batch_size=4, optimizer="adam", lr=1e-3, checkpoint_every=2,
                            progress=False, device="cpu")
    try:
        train.fit(model, TASK, cfg, checkpoint=ck, hook=lambda step, info: steps.append(step), **kw)
    except Exception as exc:  # noqa: BLE001 - which exception is what the tests check
        return exc, len(steps)
    return None, len(steps)


def test_checkpoint_under_a_file_is_a_clear_error_before_training(where):
    f = where / "a-file"
    f.write_text("x")
    exc, steps = _fit_steps(f / "run.pt")
    assert isinstance(exc, ValueError) and str(f) in str(exc) and "is a file" in str(exc), repr(exc)
    assert steps == 0


def test_checkpoint_that_is_a_folder_is_a_clear_error_with_restart(where, monkeypatch):
    monkeypatch.setenv("RNN_MFT_RESTART", "1")
    ck = where / "run.pt"
    ck.mkdir()
    exc, steps = _fit_steps(ck)
    assert isinstance(exc, ValueError) and str(ck) in str(exc) and "is a folder" in str(exc), repr(exc)
    assert steps == 0 and ck.is_dir()


# ----------------------------------------------------------------------------- 3. read-only

def test_read_only_store_is_not_written_by_jobs_or_reproduce(where, monkeypatch, capsys, script):
    monkeypatch.setenv("RNN_MFT_RESULTS_READONLY", "1")
    u = collect_runs("smoke", ["trainability"])[:1]
    with pytest.raises(UnitFailed, match="read-only"):
        run_unit(u[0])
    results = where / "results"
    assert not results.exists() or not [p for p in results.rglob("*") if p.is_file()]
    monkeypatch.setattr("rnn_mft.cluster.runs.collect_runs", lambda profile, experiments=None: u)
    monkeypatch.setattr("rnn_mft.cluster.executors.collect_runs", lambda profile, experiments=None: u)
    capsys.readouterr()
    assert script("tools/reproduce.py").main(["--profile", "smoke", "--no-book"]) == 2
    err = capsys.readouterr().err
    assert "read-only" in err and "nothing was trained" in err and u[0].name in err
    assert not results.exists() or not [p for p in results.rglob("*") if p.is_file()]


# ----------------------------------------------------------------------------- 4. paths checked

@pytest.mark.parametrize("var", ["RNN_MFT_RESULTS", "RNN_MFT_JOBS"])
@pytest.mark.parametrize("under", [False, True])
def test_results_or_jobs_path_that_is_a_file_is_named(where, monkeypatch, capsys, var, under):
    from rnn_mft.cli import main
    f = where / "not-a-folder"
    f.write_text("x")
    bad = f / "sub" if under else f
    monkeypatch.setenv(var, str(bad))
    assert main(["runs", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert var in err and str(bad) in err and "file" in err, err


# ----------------------------------------------------------------------------- 5. end to end

def test_smoke_store_damaged_three_ways_is_listed_broken_and_retrained(where, monkeypatch, capsys, script):
    """The smoke profile's trainability runs, stored; then a truncated .json, a deleted .npz and a
    config edited inside a .json: ``run_states`` and ``rnn-mft runs`` list exactly these three as
    broken, each with its reason and file; reproduce trains them again, to the same results."""
    from rnn_mft.cli import main
    units = collect_runs("smoke", ["trainability"])
    assert execute("smoke", "inline", units=units, log=lambda *a, **k: None).ok
    store = train.ResultsStore()
    before = [json.dumps(store.load(u.profile, u.experiment, u.name).final, sort_keys=True) for u in units]
    paths = [store.path(u.profile, u.experiment, u.name) for u in units]
    js0, npz1, js2 = paths[0].with_suffix(".json"), paths[1].with_suffix(".npz"), paths[2].with_suffix(".json")
    js0.write_bytes(js0.read_bytes()[:100])
    npz1.unlink()
    _edit_json(js2, lambda d: d["config"].update(lr=0.5))
    st = run_states("smoke", store, units)
    assert [s["state"] for s in st] == ["broken", "broken", "broken", "done"], st
    assert str(js0) in st[0]["detail"] and "not valid JSON" in st[0]["detail"]
    assert str(npz1) in st[1]["detail"] and "missing" in st[1]["detail"]
    assert str(js2) in st[2]["detail"] and "does not match its manifest" in st[2]["detail"]
    assert "config.lr=0.5 disagrees" in st[2]["detail"]

    monkeypatch.setattr("rnn_mft.cluster.runs.collect_runs", lambda profile, experiments=None: units)
    monkeypatch.setattr("rnn_mft.cluster.executors.collect_runs", lambda profile, experiments=None: units)
    capsys.readouterr()
    assert main(["runs", "--profile", "smoke"]) == 1                     # broken runs: exit 1
    out = capsys.readouterr().out
    for u, why in zip(units[:3], ("not valid JSON", "missing", "config.lr")):
        line = next(x for x in out.splitlines() if u.name in x)
        assert line.startswith("broken ") and why in line, line
    assert "1 done" in out and "3 broken" in out

    assert script("tools/reproduce.py").main(["--profile", "smoke", "--no-book"]) == 0
    out = capsys.readouterr().out
    assert "3 submitted" in out and "4 done" in out, out
    assert [s["state"] for s in run_states("smoke", store, units)] == ["done"] * 4
    after = [json.dumps(store.load(u.profile, u.experiment, u.name).final, sort_keys=True) for u in units]
    assert after == before
