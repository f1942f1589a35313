"""rnn_mft.settings: every RNN_MFT_* variable read once, into one typed record; overrides in code;
the package reads the environment nowhere else; the cluster's runs are typed, picklable records."""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest

from rnn_mft import settings
from rnn_mft.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_from_env_reads_every_variable_as_documented():
    env = {"RNN_MFT_RESULTS": "/r", "RNN_MFT_RESULTS_READONLY": "no", "RNN_MFT_CHECKPOINTS": "",
           "RNN_MFT_JOBS": "", "RNN_MFT_DEADLINE": " 12.5 ", "RNN_MFT_FINISH_BY_DEADLINE": "no",
           "RNN_MFT_CHECKPOINT_EVERY": "7", "RNN_MFT_RESTART": "1", "RNN_MFT_STORE_SMOKE": "False",
           "RNN_MFT_PROGRESS": "0", "RNN_MFT_CUDA_GRAPHS": "yes", "RNN_MFT_TRITON": " interpret ",
           "RNN_MFT_DATA": " /d ", "RNN_MFT_MIRROR": f"/m1{os.pathsep}{os.pathsep}/m2",
           "RNN_MFT_OFFLINE": "ON", "RNN_MFT_WORKER": "", "RNN_MFT_SLURM_TIME_MIN": " 90 ",
           "RNN_MFT_SLURM_QOS": " ", "RNN_MFT_TEST_STEP_DELAY_S": "0.5"}
    s = Settings.from_env(env)
    assert s == Settings(results="/r", results_readonly=True, checkpoints="", jobs=None, deadline=12.5,
                         finish_by_deadline=False, checkpoint_every=7, restart=True, store_smoke=False,
                         progress=False, cuda_graphs=True, triton="interpret", data="/d", mirror=("/m1", "/m2"),
                         offline=True, worker="", slurm=(("time_min", "90"),), test_step_delay_s=0.5)
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"RNN_MFT_TRITON": "1"}).triton == "on"
    assert Settings.from_env({"RNN_MFT_PROGRESS": ""}).progress is None


@pytest.mark.parametrize("var,value,msg", [
    ("RNN_MFT_DEADLINE", "soon", "must be a time in seconds since the epoch"),
    ("RNN_MFT_DEADLINE", "inf", "must be finite"),
    ("RNN_MFT_CHECKPOINT_EVERY", "0", "must be a positive whole number of steps"),
    ("RNN_MFT_TEST_STEP_DELAY_S", "x", "must be a number of seconds"),
])
def test_a_malformed_variable_is_an_error_naming_it(var, value, msg):
    with pytest.raises(ValueError, match=f"{var}={value!r} {msg}"):
        Settings.from_env({var: value})


def test_read_once_then_kept_until_reload(monkeypatch):
    monkeypatch.setenv("RNN_MFT_RESTART", "1")            # tests/conftest.py: setenv reloads
    assert settings.current().restart is True
    os.environ["RNN_MFT_RESTART"] = "0"                   # behind the cache's back: not seen
    assert settings.current().restart is True
    settings.reload()
    assert settings.current().restart is False


def test_override_stacks_and_restores_without_touching_the_environment(monkeypatch):
    monkeypatch.delenv("RNN_MFT_DEADLINE", raising=False)
    base = settings.current()
    with settings.override(deadline=5, store_smoke=True) as s:
        assert s is settings.current() and s.deadline == 5.0 and s.store_smoke
        with settings.override(Settings(triton="on")) as t:
            assert t.triton == "on" and t.deadline is None          # a whole Settings replaces all
        assert settings.current().deadline == 5.0
        assert "RNN_MFT_DEADLINE" not in os.environ
    assert settings.current() == base
    with pytest.raises(ValueError, match="unknown setting 'dedline'; allowed: "):
        with settings.override(dedline=1):
            pass
    with pytest.raises(ValueError, match="settings triton='yes'; allowed: off, on, interpret"):
        with settings.override(triton="yes"):
            pass


def test_export_env_sets_the_variables_and_restores_them(monkeypatch):
    monkeypatch.setenv("RNN_MFT_FIGURES_DIR", "before")
    monkeypatch.delenv("RNN_MFT_RESTART", raising=False)
    restore = settings.export_env(figures_dir="/f", restart=True, deadline=3.25)
    assert (os.environ["RNN_MFT_FIGURES_DIR"], os.environ["RNN_MFT_RESTART"]) == ("/f", "1")
    assert float(os.environ["RNN_MFT_DEADLINE"]) == 3.25
    assert settings.current().figures_dir == "/f" and settings.current().restart
    restore()
    assert os.environ["RNN_MFT_FIGURES_DIR"] == "before" and "RNN_MFT_RESTART" not in os.environ
    assert settings.current().figures_dir == "before" and not settings.current().restart


def test_fit_takes_settings_explicitly(monkeypatch):
    import torch

    from rnn_mft import nets, train
    monkeypatch.delenv("RNN_MFT_DEADLINE", raising=False)
    task = train.CopyMemoryTask(T=4, n_symbols=3)
    cfg = train.TrainConfig(steps=3, batch_size=4, progress=False, device="cpu")
    torch.manual_seed(0)
    with pytest.raises(train.BudgetExhausted):                      # a deadline long past
        train.fit(nets.make_classifier("gru", task.n_in, 4, task.n_out), task, cfg, settings=Settings(deadline=1.0))
    assert settings.current().deadline is None                      # only for that call


def test_the_package_reads_rnn_mft_variables_only_in_settings():
    """No module of src/ but rnn_mft/settings.py reads os.environ for an RNN_MFT_* variable."""
    bad = []
    for f in sorted((ROOT / "src" / "rnn_mft").rglob("*.py")):
        if f.name == "settings.py" and f.parent.name == "rnn_mft":
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"(os\.environ|getenv)\S*\(?\s*\[?[\"']RNN_MFT_", line):
                bad.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert bad == []


def test_run_units_are_typed_picklable_records():
    from rnn_mft.cluster import RunUnit, collect_runs, run_unit
    units = collect_runs("smoke")
    u = units[0]
    assert isinstance(u, RunUnit) and u.id == f"{u.experiment}/{u.name}" and callable(u.fn)
    v = u.with_settings(Settings(store_smoke=True))
    w = pickle.loads(pickle.dumps(v))
    assert w == v and w.fn is u.fn and w.settings.store_smoke
    with pytest.raises(ValueError, match="allowed: a RunUnit"):
        run_unit({"profile": "smoke", "experiment": u.experiment, "name": u.name})
    with pytest.raises(ValueError, match="allowed: a RunUnit"):
        run_unit(RunUnit("smoke", u.experiment, u.name))               # names a run only
