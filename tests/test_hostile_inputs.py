"""Hostile inputs: each bad value gets a ValueError (on the CLI one line on stderr, exit 2) that
names the value, where before it gave a raw traceback, a misleading message, or was accepted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rnn_mft.cli import main
from rnn_mft.theory import Theta, analyze, solve_for_timescale

ROOT = Path(__file__).resolve().parents[1]
GRU = json.dumps(Theta.standard("gru").to_dict())


def _gru_theta_with(**f):
    d = Theta.standard("gru").to_dict()
    d["f"].update(f)
    return json.dumps(d)


# ------------------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("argv, needle", [
    # a JSON array is not a file name: the message says what --theta takes
    (["theory", "--arch", "gru", "--theta", "[1,2]"], "JSON object"),
    # a text or a bool field: was "could not convert string to float" / silently sigma2 = 1
    (["theory", "--arch", "gru", "--theta", _gru_theta_with(sigma2="abc")], "Theta['f'].sigma2='abc'"),
    (["theory", "--arch", "gru", "--theta", _gru_theta_with(sigma2=True)], "Theta['f'].sigma2=True"),
])
def test_cli_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnn-mft: error: ") and err.count("\n") == 1
    assert needle in err


def test_cli_solve_tiny_xi_no_warnings():
    """xi -> 0 (1 - chi = 1): one line, no numpy RuntimeWarnings before it."""
    p = subprocess.run([sys.executable, "-m", "rnn_mft.cli", "solve", "--arch", "gru", "--xi", "1e-9"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2
    assert "RuntimeWarning" not in p.stderr
    assert p.stderr.count("\n") == 1 and "xi=1e-09" in p.stderr


# ------------------------------------------------------------------------------------- the API

def _uniform(**kw):
    return lambda: Theta.uniform("gru", **kw)


@pytest.mark.parametrize("call, needle", [
    (_uniform(sigma2="abc"), "sigma2='abc'"),
    (_uniform(sigma2="1"), "sigma2='1'"),
    (_uniform(sigma2=True), "sigma2=True"),
    (_uniform(sigma2={"a": 1}), "sigma2={'a': 1}"),
    (_uniform(mu=1 + 2j), "mu=(1+2j)"),
    (_uniform(sigma2=[1, 2], nu2=[1, 2, 3]), "f.nu2: (3,)"),
    (lambda: Theta.uniform("gru", f=5), "f=5"),
    (lambda: Theta.critical("gru", sigma2="x"), "sigma2='x'"),
    (lambda: Theta.from_json("gru", "[1]"), "'[1]': [Errno 2] No such file or directory: '[1]' (text not starting"),
    (lambda: Theta.grid(Theta.standard("gru"), {"f.mu": 3}), "axes['f.mu']=3"),
    (lambda: analyze("gru", Theta.standard("gru"), "a"), "sigma_z='a'"),
    (lambda: solve_for_timescale("gru", xi="a"), "xi='a'"),
    (lambda: solve_for_timescale("gru", chi="a"), "chi='a'"),
    (lambda: solve_for_timescale("gru", xi=True), "xi=True"),
    (lambda: solve_for_timescale("gru", xi=10, bounds=[1, 2]), "bounds=[1, 2]"),
    (lambda: solve_for_timescale("gru", xi=10, tol=-1), "tol=-1"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_theory_api(call, needle):
    with pytest.raises(ValueError) as exc:
        call()
    assert needle in str(exc.value)


def test_theta_from_binary_file(tmp_path):
    p = tmp_path / "bin.json"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="bin.json"):
        Theta.from_json("gru", p)


@pytest.mark.parametrize("kw, needle", [
    (dict(steps=True), "steps=True"),
    (dict(lr=-1), "lr=-1"),
    (dict(lr=float("nan")), "lr=nan"),
    (dict(lr="a"), "lr='a'"),
    (dict(lr=[]), "lr=[]"),
    (dict(lr=[1e-3, -1]), "lr=[0.001, -1]"),
    (dict(clip="a"), "clip='a'"),
    (dict(seed=-1), "seed=-1"),
    (dict(seed=1.5), "seed=1.5"),
    (dict(device="bogus"), "device='bogus'"),
    (dict(eval_batch_size=0), "eval_batch_size=0"),
    (dict(amp="yes"), "amp='yes'"),
    (dict(progress="no"), "progress='no'"),
])
def test_train_config(kw, needle):
    from rnn_mft.train import TrainConfig
    with pytest.raises(ValueError) as exc:
        TrainConfig(**kw)
    assert needle in str(exc.value)


def test_train_config_valid_unchanged():
    from rnn_mft.train import TrainConfig
    TrainConfig(lr=0.0, seed=3, amp=False, progress=None, device="cpu", eval_batch_size=8)
    TrainConfig(lr=[1e-3, 1e-2], progress=False)


def test_train_config_from_dict_not_a_mapping():
    from rnn_mft.train import TrainConfig
    with pytest.raises(ValueError, match="list"):
        TrainConfig.from_dict([1])


@pytest.mark.parametrize("root, needle", [(5, "root=5"), ("", "root=''")])
def test_results_store_root(root, needle):
    from rnn_mft.train import ResultsStore
    with pytest.raises(ValueError) as exc:
        ResultsStore(root)
    assert needle in str(exc.value)


def test_results_store_save_not_a_result(tmp_path):
    from rnn_mft.train import ResultsStore
    with pytest.raises(ValueError, match="dict"):
        ResultsStore(tmp_path).save("ci", "e", "r", {"a": 1})


# ------------------------------------------------------------------------------------- tools

def _tool(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("args, needle", [
    (["--ms-per-step", "inf"], "--ms-per-step=inf"),
    (["--json", "x.json"], "--json='x.json'"),
    (["--only", "Figure 1"], "--only=['Figure 1']"),
])
def test_estimate_paper(args, needle):
    p = _tool("tools/estimate_paper.py", *args)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr


def test_gpu_pack_unpack_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    p = _tool("tools/gpu_pack.py", "unpack", str(f))
    assert p.returncode == 2 and f"{f} is a file" in p.stderr and "Traceback" not in p.stderr
