"""The GPU-session tools run on a CPU: benchmarks/gpu.py (exits 0 without CUDA; --cpu-smoke),
tools/estimate_paper.py --measure at profile smoke, and the budgeted slice driver."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnn_mft import train

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_gpu_benchmark_without_cuda_says_so_and_exits_0():
    p = _run("benchmarks/gpu.py")
    assert p.returncode == 0 and "CUDA is not available" in p.stdout


def test_gpu_benchmark_cpu_smoke_runs_and_reports_targets(tmp_path):
    p = _run("benchmarks/gpu.py", "--cpu-smoke", "--reps", "1", "--json", str(tmp_path / "b.json"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "CPU SMOKE" in p.stdout and "target <= 1.5" in p.stdout and "target >= 20" in p.stdout
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    kinds = {r["kind"] for r in rows}
    assert {"cudnn", "ours", "ensemble"} <= kinds and all(r["us_per_step"] > 0 for r in rows if "us_per_step" in r)


def test_estimate_measures_the_experiments_ensembles_on_cpu(tmp_path):
    p = _run("tools/estimate_paper.py", "--measure", "--profile", "smoke", "--only", "Figure 1", "--only", "Figures 2",
             "--warmup", "0", "--timed", "1", "--json", str(tmp_path / "e.json"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "measured on cpu" in p.stdout and "0.4" not in p.stdout.split("\n")[0]
    rep = json.loads((tmp_path / "e.json").read_text())
    assert set(rep["figures"]) == {"Figure 1 (sequence_length)", "Figures 2 and 6 (trainability)"}
    fig1 = rep["figures"]["Figure 1 (sequence_length)"]["ensembles"]
    assert len(fig1) == 1 and fig1[0]["members"] == 6 and fig1[0]["T_max"] == 6     # both lengths, one ensemble
    assert rep["total_minutes"] > 0
    q = _run("tools/estimate_paper.py")
    assert q.returncode == 0 and "ESTIMATE, not a measurement" in q.stdout
    bad = _run("tools/estimate_paper.py", "--measure", "--profile", "huge")
    assert bad.returncode == 2 and "--profile='huge'; allowed: smoke, ci, paper" in bad.stderr


def test_gpu_slice_driver_at_smoke_size(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gpu_slice
    finally:
        sys.path.pop(0)
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "store"))
    # main() exports RNN_MFT_DEADLINE into os.environ: recorded here so that teardown removes it
    monkeypatch.setenv("RNN_MFT_DEADLINE", "")
    assert gpu_slice.main(["--budget-min", "30", "--profile", "smoke", "--out", str(tmp_path), "--archs", "gru"]) == 0
    rep = json.loads((tmp_path / "slice.json").read_text())
    assert [r["status"] for r in rep] == ["done", "done"]                      # Figure 6 then Figure 2, gru
    assert set(rep[0]["train_acc"]) == {"2", "5"}
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["budget_min"] == 30 and prov["end"] and prov["torch"] == torch.__version__ and "git_commit" in prov
    # a spent budget starts nothing
    assert gpu_slice.main(["--budget-min", "1e-9", "--profile", "smoke", "--out", str(tmp_path / "b"),
                           "--archs", "gru"]) == 0
    rep = json.loads((tmp_path / "b" / "slice.json").read_text())
    assert all(r["status"].startswith("not started") for r in rep)


def test_tf32_option_is_explicit_and_off_by_default():
    assert train.TrainConfig().tf32 is False
    with pytest.raises(ValueError, match="tf32='yes'; allowed: True or False"):
        train.TrainConfig(tf32="yes")
