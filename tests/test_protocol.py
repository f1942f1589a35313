"""The experiment protocol (issue 14, item 3): every chapter module exposes ``config(profile)``
(a frozen dataclass whose fields carry their documentation, so a typo is an error),
``run(cfg, store=None)`` and ``report(cfg, result)``."""
import dataclasses
import importlib
import inspect
import json
from pathlib import Path

import pytest

from rnn_mft.experiments import PROFILES, Config, doc
from rnn_mft.experiments.theory_chapters import MODULES

THEORY = [importlib.import_module(f"rnn_mft.experiments.theory_chapters.{m}") for m in MODULES]


@pytest.mark.parametrize("exp", THEORY, ids=lambda m: m.__name__.split(".")[-1])
def test_theory_chapter_modules_follow_the_protocol(exp):
    for name in ("config", "run", "report"):
        assert callable(getattr(exp, name)), name
    assert list(inspect.signature(exp.run).parameters) == ["cfg", "store"]
    assert inspect.signature(exp.run).parameters["store"].default is None
    params = list(inspect.signature(exp.report).parameters)
    assert len(params) == 2 and params[0] == "cfg", params
    for p in PROFILES:
        cfg = exp.config(p)
        assert isinstance(cfg, Config) and dataclasses.is_dataclass(cfg)
        assert cfg.profile == p and cfg["profile"] == p
        for f in dataclasses.fields(cfg):
            assert f.metadata.get("doc"), f"{exp.__name__}: field {f.name} has no documentation"
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.profile = "ci"
    with pytest.raises(ValueError, match="unknown profile='huge'.*smoke, ci, paper"):
        exp.config("huge")


@pytest.mark.parametrize("exp", THEORY, ids=lambda m: m.__name__.split(".")[-1])
def test_a_misspelt_setting_is_an_error_that_names_the_allowed_ones(exp):
    cfg = exp.config("smoke")
    first = [f.name for f in dataclasses.fields(cfg)][1]
    with pytest.raises(KeyError, match=f"no field 'nope'; allowed: profile, {first}"):
        cfg.replace(nope=1)
    with pytest.raises(KeyError, match="no field 'nope'"):
        cfg | {"nope": 1}
    with pytest.raises(KeyError, match="no field 'nope'"):
        cfg["nope"]
    # a valid change gives a new object and leaves the original alone
    new = cfg.replace(**{first: cfg[first]})
    assert new == cfg and new is not cfg


def test_config_reads_as_the_mapping_it_replaced():
    @dataclasses.dataclass(frozen=True)
    class Demo(Config):
        N: int = doc(16, "width")
        mu: list = doc([1.0, 2.0], "means")
        PROFILES = {"smoke": dict(N=8)}

    a, b = Demo.for_profile("smoke"), Demo.for_profile("smoke")
    assert dict(a) == {"profile": "smoke", "N": 8, "mu": [1.0, 2.0]}
    assert len(a) == 3 and list(a) == ["profile", "N", "mu"]
    assert Demo.for_profile("ci").N == 16                               # defaults where a profile says nothing
    assert a.mu is not b.mu                                             # mutable defaults are not shared
    assert "| `N` | `8` | width |" in a.describe()
    with pytest.raises(ValueError, match="unknown profile='fast'"):
        Demo(profile="fast")


def test_old_import_paths_still_work():
    from rnn_mft import experiments
    from rnn_mft.experiments import jacobian
    from rnn_mft.experiments.theory_chapters import jacobian as new

    assert jacobian is new
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        experiments.nonexistent


def test_glue_report_returns_numbers_as_plain_python():
    from rnn_mft.experiments.protocol import _plain
    import numpy as np

    assert type(_plain(np.float64(0.25))) is float and repr(_plain(np.float64(0.25))) == "0.25"
    assert type(_plain(np.int64(3))) is int
    assert _plain(np.bool_(True)) == "True"
    assert _plain("ci").data == "ci"                                   # text becomes Markdown for {glue:md}


# ----------------------------------------------------------------------------- training experiments
from rnn_mft.experiments.training import MODULES as TRAINING_MODULES  # noqa: E402

TRAINING = [importlib.import_module(f"rnn_mft.experiments.training.{m}") for m in TRAINING_MODULES]
#: recorded from the dict configs of the code before issue 14 (commit 8640216): every stored run's
#: name (its settings' hash inside) and every config as a plain dict
BEFORE = json.loads((Path(__file__).parent / "data" / "training_runs_before_issue14.json").read_text())


@pytest.mark.parametrize("exp", TRAINING, ids=lambda m: m.__name__.split(".")[-1])
def test_training_modules_follow_the_protocol(exp):
    test_theory_chapter_modules_follow_the_protocol(exp)


@pytest.mark.parametrize("exp", TRAINING, ids=lambda m: m.__name__.split(".")[-1])
def test_training_configs_reject_misspelt_settings(exp):
    test_a_misspelt_setting_is_an_error_that_names_the_allowed_ones(exp)


@pytest.mark.parametrize("profile", PROFILES)
def test_run_names_are_those_of_the_old_dict_configs(profile):
    """The stored results and checkpoints are found by hashes of the settings: the dataclass
    configs give every run of every profile the name the old dictionaries gave it."""
    from rnn_mft.cluster import collect_runs

    names = sorted(f"{u['experiment']}/{u['name']}" for u in collect_runs(profile))
    assert names == BEFORE["names"][profile]
    assert {u["module"] for u in collect_runs(profile)} == {e.__name__ for e in TRAINING}


def test_dict_of_a_training_config_is_the_old_dict():
    mods = {m.__name__.split(".")[-1]: m for m in TRAINING}
    for key, old in BEFORE["configs"].items():
        name, profile, *tied = key.split(":")
        cfg = mods[name].config(profile, tied=tied[0] == "True") if tied else mods[name].config(profile)
        assert json.loads(json.dumps(dict(cfg))) == old, key
    assert len(BEFORE["configs"]) == 4 * 3 + 2 * 3


def test_training_experiments_old_import_paths_still_work():
    from rnn_mft.experiments import trainability
    from rnn_mft.experiments.training import trainability as new
    from rnn_mft.cluster.runs import _module

    assert trainability is new
    assert _module("rnn_mft.experiments.unrolled").__name__ == "rnn_mft.experiments.training.unrolled"
    assert trainability.config("smoke", tied=True).tied is True
