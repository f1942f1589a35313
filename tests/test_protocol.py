"""The experiment protocol (issue 14, item 3): every chapter module exposes ``config(profile)``
(a frozen dataclass whose fields carry their documentation, so a typo is an error),
``run(cfg, store=None)`` and ``report(cfg, result)``."""
import dataclasses
import importlib
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from rnn_mft.experiments import BOOK_PROFILES, PROFILES, Config, ProfileNotDeclared, doc
from rnn_mft.experiments.theory_chapters import MODULES

THEORY = [importlib.import_module(f"rnn_mft.experiments.theory_chapters.{m}") for m in MODULES]


@pytest.mark.parametrize("exp", THEORY, ids=lambda m: m.__name__.split(".")[-1])
def test_theory_chapter_modules_follow_the_protocol(exp):
    for name in ("config", "run", "report"):
        assert callable(getattr(exp, name)), name
    assert list(inspect.signature(exp.config).parameters) == ["profile"]        # one signature everywhere
    assert list(inspect.signature(exp.run).parameters) == ["cfg", "store"]
    assert inspect.signature(exp.run).parameters["store"].default is None
    params = list(inspect.signature(exp.report).parameters)
    assert len(params) == 2 and params[0] == "cfg", params
    declared = type(exp.config("ci")).profiles()
    assert set(BOOK_PROFILES) <= set(declared) <= set(PROFILES)
    for p in PROFILES:
        if p not in declared:                        # an optional profile (cpu) the chapter does not have
            with pytest.raises(ProfileNotDeclared, match=f"no profile '{p}'.*allowed here: smoke, ci, paper"):
                exp.config(p)
            continue
        cfg = exp.config(p)
        assert isinstance(cfg, Config) and dataclasses.is_dataclass(cfg)
        assert cfg.profile == p and cfg.to_dict()["profile"] == p
        for f in dataclasses.fields(cfg):
            assert f.metadata.get("doc"), f"{exp.__name__}: field {f.name} has no documentation"
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.profile = "ci"
    with pytest.raises(ValueError, match="unknown profile='huge'.*smoke, ci, cpu, paper"):
        exp.config("huge")


@pytest.mark.parametrize("exp", THEORY, ids=lambda m: m.__name__.split(".")[-1])
def test_a_misspelt_setting_is_an_error_that_names_the_allowed_ones(exp):
    cfg = exp.config("smoke")
    first = [f.name for f in dataclasses.fields(cfg)][1]
    with pytest.raises(KeyError, match=f"no field 'nope'; allowed: profile, {first}"):
        cfg.replace(nope=1)
    with pytest.raises(KeyError, match="no field 'nope'"):
        cfg | {"nope": 1}
    with pytest.raises(TypeError, match="not subscriptable"):          # settings are read as attributes only
        cfg["nope"]
    # a valid change gives a new object and leaves the original alone
    new = cfg.replace(**{first: getattr(cfg, first)})
    assert new == cfg and new is not cfg


def test_config_reads_by_attribute_and_is_not_a_mapping():
    """Issue 26: the migration from dictionaries ended; a config is read as ``cfg.N`` only (key
    access, iteration and ``**cfg`` are errors, so they cannot come back), and ``to_dict()``
    gives its fields, in order, where they are serialized or hashed."""
    @dataclasses.dataclass(frozen=True)
    class Demo(Config):
        N: int = doc(16, "width")
        mu: list = doc([1.0, 2.0], "means")
        PROFILES = {"smoke": dict(N=8)}

    a, b = Demo.for_profile("smoke"), Demo.for_profile("smoke")
    assert a.to_dict() == {"profile": "smoke", "N": 8, "mu": [1.0, 2.0]}
    assert list(a.to_dict()) == ["profile", "N", "mu"] == Demo.field_names()
    assert a.to_dict()["mu"] is a.mu                                   # the config's own values
    for access in (lambda: a["N"], lambda: dict(a), lambda: {**a}, lambda: list(a)):
        with pytest.raises(TypeError):
            access()
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


@pytest.mark.parametrize("profile", BOOK_PROFILES)          # the profiles the record was made of
def test_run_names_are_those_of_the_old_dict_configs(profile):
    """The stored results and checkpoints are found by hashes of the settings: the dataclass
    configs give every run of every profile the name the old dictionaries gave it."""
    from rnn_mft.cluster import collect_runs

    names = sorted(u.id for u in collect_runs(profile))
    assert names == BEFORE["names"][profile]
    assert {u.module for u in collect_runs(profile)} == {e.__name__ for e in TRAINING}


def test_to_dict_of_a_training_config_is_the_old_dict():
    mods = {m.__name__.split(".")[-1]: m for m in TRAINING}
    for key, old in BEFORE["configs"].items():
        name, profile, *tied = key.split(":")
        cfg = mods[name].config(profile)
        if tied:
            cfg = cfg.replace(tied=tied[0] == "True")
        assert json.loads(json.dumps(cfg.to_dict())) == old, key
    assert len(BEFORE["configs"]) == 4 * 3 + 2 * 3


def test_training_experiments_old_import_paths_still_work():
    from rnn_mft.experiments import trainability
    from rnn_mft.experiments.training import trainability as new

    assert trainability is new
    assert trainability.config("smoke").tied is False                  # Figure 2's; Figure 6's:
    assert trainability.config("smoke").replace(tied=True).tied is True


def _rr(acc):
    from rnn_mft import train
    return train.RunResult({}, {"eval_acc": list(acc), "train_loss": [1.0] * len(acc)}, {}, {})


def test_trainability_report_reads_verdicts_off_the_regions():
    """xi = 1 and 10 at the two alphas: T = 2 lies below 3 xi for both, T = 8 beyond 6 xi for the
    first alpha only. High accuracy below, chance beyond: every architecture 'agrees'."""
    from rnn_mft.experiments.training import trainability as exp

    cfg = exp.config("smoke").replace(Ts=[2, 8])
    maps = {2: _rr([0.9, 0.9]), 8: _rr([0.1, 0.9])}
    ov = {"xi": np.array([1.0, 10.0])}
    result = {"untied": {a: maps for a in cfg.archs}, "tied": {a: {2: _rr([0.9, 0.9]), 8: _rr([0.5, 0.9])}
                                                             for a in cfg.archs},
              "overlays": {a: ov for a in cfg.archs}}
    rep = exp.report(cfg, result)
    assert rep["n_agree_untied"] == rep["n_archs"] == len(cfg.archs)
    # means and ratios of a few exact inputs: approx's default rel 1e-6 >> their float64 rounding
    assert rep["acc_below_3xi_untied"] == pytest.approx(0.9) and rep["acc_beyond_6xi_untied"] == pytest.approx(0.1)
    assert rep["verdicts_untied"] == "; ".join(f"{a}: *agrees*" for a in cfg.archs)
    assert rep["n_agree_tied"] == 0 and "same direction, softer" in rep["verdicts_tied"]   # 0.9 against 0.5
    assert rep["xi_growth_min"] == pytest.approx(10.0)
    assert exp.verdict({"T <= 3xi": (0.9, 3), "T >= 6xi": (0.8, 2)}) == "does not show the transition"
    assert exp.verdict({"T <= 3xi": (0.9, 3), "T >= 6xi": (float("nan"), 0)}) == "no verdict"


def test_sequence_length_report_reads_the_accuracies():
    from rnn_mft.experiments.training import sequence_length as exp

    cfg = exp.config("smoke")                                # Ts = [3, 6]; members: standard, critical, chrono
    rep = exp.report(cfg, {3: _rr([0.8, 0.7, 0.6]), 6: _rr([0.2, 0.55, float("nan")])})
    assert (rep["T_min"], rep["T_max"]) == (3, 6)
    # read off the inputs (at most a mean of a few): approx's default rel 1e-6 >> float64 rounding
    assert rep["acc_critical_longest"] == pytest.approx(0.55) and rep["acc_standard_shortest"] == pytest.approx(0.8)
    assert rep["reach_standard"] == "$T = 3$" and rep["reach_critical"] == "$T = 6$"
    assert rep["order_longest"] == "the critical initialization is ahead"


def test_unrolled_report_says_what_did_not_run():
    from rnn_mft.experiments.training import unrolled as exp

    cfg = exp.config("ci")
    res = _rr([0.5, 0.6, float("nan"), 0.4])
    res.meta["labels"] = exp.members("mnist", cfg)
    rep = exp.report(cfg, {"mnist": (res, None), "cifar10": (None, "no network")})
    assert rep["mnist_accuracy"] == "standard 50.0%, critical 60.0%, chrono diverged, h-detach 40.0%"
    assert rep["mnist_best"] == "critical"
    assert rep["cifar10_accuracy"] == "not run (no network)" and rep["cifar10_best"] == "none"
    res.final["eval_acc"] = [0.5, 0.5, 0.1, 0.2]
    assert exp.report(cfg, {"mnist": (res, None)})["mnist_best"] == "none, standard and critical are level"
    res.final["eval_acc"] = [0.5] * 4
    assert exp.report(cfg, {"mnist": (res, None)})["mnist_best"] == "none, all are level"
