"""rnn_mft.cluster: the runs a profile needs, executed inline, by local worker processes and on a
real SLURM cluster (through submitit), meeting only in the results store.

The SLURM tests run when a cluster answers (``sinfo``) and submitit is installed, e.g. after
``tools/slurm_localcluster.sh start`` (what ``.ci/run`` does); otherwise they are skipped.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import time

import numpy as np
import torch
import pytest

from rnn_mft import train
from rnn_mft.cluster import collect_runs, execute, run_states
from rnn_mft.cluster.runs import TRAINING_EXPERIMENTS, RunUnit, read_status, write_status

SMALL = "trainability"          # the fastest training experiment at profile smoke: 4 runs, seconds


@pytest.fixture
def where(tmp_path, monkeypatch):
    """A fresh results store and jobs folder, visible to worker processes through the environment."""
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("RNN_MFT_JOBS", str(tmp_path / "jobs"))
    monkeypatch.setenv("RNN_MFT_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("RNN_MFT_RESULTS_READONLY", raising=False)
    monkeypatch.delenv("RNN_MFT_STORE_SMOKE", raising=False)
    return tmp_path


def _final_and_curves(store, u):
    r = store.load(u.profile, u.experiment, u.name)
    return json.dumps(r.final, sort_keys=True), r.curves


def assert_same_results(store_a, store_b, units):
    """Byte-identical final metrics (their JSON text) and identical curves, run by run."""
    for u in units:
        fa, ca = _final_and_curves(store_a, u)
        fb, cb = _final_and_curves(store_b, u)
        assert fa == fb, f"{u.id}: final metrics differ"
        assert sorted(ca) == sorted(cb)
        for k in ca:
            assert np.array_equal(ca[k], cb[k], equal_nan=True), f"{u.name}: curve {k} differs"


def _bad_unit(profile="smoke"):
    """A run whose job raises (KeyError: no such data set)."""
    from rnn_mft.experiments.training import unrolled
    return RunUnit(profile, "unrolled", "no_such_dataset-0", fn=unrolled.run_one, config_fn=unrolled.config,
                   args=("no_such_dataset",))


# ----------------------------------------------------------------------------- enumeration

class _Recorder(train.ResultsStore):
    """A store that records which runs are asked for and returns a stub instead of training."""

    def __init__(self, root):
        super().__init__(root, readonly=False)
        self.asked = []

    def load_or_run(self, profile, experiment, run, fn, rerun=False, checkpoint=None):
        self.asked.append(f"{experiment}/{run}")
        M = 4096                                          # more members than any ensemble of any profile
        return train.RunResult({}, {"eval_acc": [0.0] * M, "train_loss": [0.0] * M}, {},
                               {"members": M, "task": {"num_classes": 2}, "diverged": [False] * M})


@pytest.mark.parametrize("profile", ["smoke", "ci", "paper"])
def test_collected_runs_are_exactly_the_runs_the_chapters_load(where, monkeypatch, profile):
    """What the chapters' code paths (each experiment's run(), as the chapters call it) ask the
    store for is exactly the set of collected runs, each once: nothing submitted in vain, no hole."""
    monkeypatch.setenv("RNN_MFT_STORE_SMOKE", "1")
    units = collect_runs(profile)
    ids = [u.id for u in units]
    assert len(ids) == len(set(ids)) and {u.experiment for u in units} == set(TRAINING_EXPERIMENTS)
    rec = _Recorder(where / "rec")
    E = {e: importlib.import_module(f"rnn_mft.experiments.training.{e}") for e in TRAINING_EXPERIMENTS}
    E["sequence_length"].run(E["sequence_length"].config(profile), rec)
    E["trainability"].run(E["trainability"].config(profile), rec)          # Figures 2 and 6
    E["training_curves"].run(E["training_curves"].config(profile), rec)
    E["unrolled"].run(E["unrolled"].config(profile), rec)
    ci = E["critical_init_your_model"]
    ci.run_models(ci.config(profile), {m: None for m in ci.MODELS}, task=None, store=rec)
    assert sorted(rec.asked) == sorted(ids)
    # and each unit's own call asks for its own name
    for u in units:
        rec.asked.clear()
        assert u.fn is getattr(E[u.experiment], u.call) and u.module == E[u.experiment].__name__
        if u.call == "run_model":
            continue                       # builds the modules; covered by the inline test below
        u.run(rec)
        assert rec.asked == [u.id]


def test_collect_runs_rejects_unknown_names():
    with pytest.raises(ValueError, match="experiment 'nope'; allowed"):
        collect_runs("smoke", ["nope"])
    with pytest.raises(ValueError, match="profile='big'"):
        collect_runs("big")
    with pytest.raises(ValueError, match="executor='cloud'; allowed: inline, local, slurm"):
        execute("smoke", "cloud", units=[])


# ----------------------------------------------------------------------------- inline and local

def test_inline_executor_fills_the_store_the_chapter_reads(where, monkeypatch):
    """Inline runs land in the store under the names the chapter loads: the chapter's code with a
    read-only store finds them (no training), and they equal what the chapter computes itself
    without any store (the smoke profile trains in place)."""
    from rnn_mft.experiments.training import trainability as exp
    units = collect_runs("smoke", [SMALL])
    assert {s["state"] for s in run_states("smoke", units=units)} == {"missing"}
    rep = execute("smoke", "inline", units=units, log=lambda *a, **k: None)
    assert rep.ok and {s["state"] for s in rep.states} == {"done"} and rep.submitted == len(units) == 4
    cfg = exp.config("smoke").replace(tied=True)
    arch = cfg.archs[0]
    direct = exp.run_arch(cfg, arch)                                  # smoke: trained here, no store
    monkeypatch.setenv("RNN_MFT_STORE_SMOKE", "1")
    loaded = exp.run_arch(cfg, arch, store=train.ResultsStore(readonly=True))   # raises if anything is missing
    for T in cfg.Ts:
        assert json.dumps(loaded[T].final, sort_keys=True) == json.dumps(direct[T].final, sort_keys=True)
        np.testing.assert_array_equal(loaded[T].curves["train_loss"], direct[T].curves["train_loss"])
    again = execute("smoke", "inline", units=units, log=lambda *a, **k: None)
    assert again.stored_before == 4 and again.submitted == 0


def test_local_executor_two_processes_equals_inline_and_reports_a_raising_run(where, monkeypatch):
    """Bitwise equality needs the same arithmetic: one torch thread inline and in every worker
    (another thread count splits the products' reductions differently, e.g. under AVX-512)."""
    units = collect_runs("smoke", [SMALL])
    monkeypatch.setenv("RNN_MFT_RESULTS", str(where / "inline"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")                  # the workers (the executor keeps a set value)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        execute("smoke", "inline", units=units, log=lambda *a, **k: None)
    finally:
        torch.set_num_threads(threads)
    inline = train.ResultsStore(where / "inline", readonly=True)
    monkeypatch.setenv("RNN_MFT_RESULTS", str(where / "local"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")          # a CPU machine: N processes
    lines = []
    rep = execute("smoke", "local", jobs=2, units=units + [_bad_unit()], log=lambda *a, **k: lines.append(a[0]),
                  poll_s=0.2)
    st = {s["name"]: s for s in rep.states}
    assert [st[u.name]["state"] for u in units] == ["done"] * len(units)
    bad = st["no_such_dataset-0"]
    # a worker runs only the runs of the profile, found again by name (nothing is unpickled): it refuses
    # this one, and the run is reported failed, with the worker's reason in the named log
    assert bad["state"] == "failed" and "exited with status 2" in bad["detail"] and bad["log"]
    assert "no_such_dataset-0 is not a run of profile 'smoke'" in open(bad["log"]).read()
    assert not rep.ok and "FAILED" in rep.summary()
    recs = [read_status(u, train.ResultsStore()) for u in units]
    assert {r["worker"] for r in recs} == {"0", "1"} and os.getpid() not in {r["pid"] for r in recs}
    assert_same_results(inline, train.ResultsStore(where / "local"), units)


def test_local_executor_one_worker_per_visible_gpu(where, monkeypatch):
    """With GPUs visible, each worker sees exactly one of them (its own CUDA_VISIBLE_DEVICES). On a
    CPU machine the ids name no device and training falls back to the CPU, which is all we need
    to check the assignment."""
    from rnn_mft.cluster import visible_gpus
    from rnn_mft.cluster.executors import _local_slots
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpus() == ["3", "5"] and _local_slots(None) == ["3", "5"] and _local_slots(1) == ["3"]
    units = [u for u in collect_runs("smoke", [SMALL]) if u.name.startswith("tied-")]
    rep = execute("smoke", "local", units=units, log=lambda *a, **k: None, poll_s=0.2)
    assert rep.ok and {s["state"] for s in rep.states} == {"done"}
    recs = [read_status(u, train.ResultsStore()) for u in units]
    assert sorted(r["cuda_visible_devices"] for r in recs) == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _local_slots(3) == [None] * 3


def test_run_states_a_dead_job_without_result_is_failed_with_its_log(where):
    u = collect_runs("smoke", [SMALL])[0]
    p = subprocess.Popen(["true"])
    p.wait()                                                          # a pid that is gone
    write_status(u, "running", train.ResultsStore(), host=os.uname().nodename, pid=p.pid, log="/x/job.log")
    import socket
    write_status(u, "running", train.ResultsStore(), host=socket.gethostname(), pid=p.pid, log="/x/job.log")
    s = run_states("smoke", units=[u])[0]
    assert s["state"] == "failed" and "/x/job.log" in s["detail"] and "resume" in s["detail"]
    write_status(u, "running", train.ResultsStore(), host=socket.gethostname(), pid=os.getpid(), log="/x/job.log")
    assert run_states("smoke", units=[u])[0]["state"] == "running"
    rep = execute("smoke", "inline", units=[u], log=lambda *a, **k: None)     # alive elsewhere: not run twice
    assert rep.submitted == 0 and rep.states[0]["state"] == "running"


def test_two_jobs_never_write_the_same_run(where):
    """While one job holds a run's lock, another job for the same run trains nothing and says so."""
    import fcntl

    from rnn_mft.cluster import run_unit
    from rnn_mft.cluster.runs import _lock_path
    u = collect_runs("smoke", [SMALL])[0]
    lock = _lock_path(u)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        assert run_unit(u) == {"state": "busy", "run": u.id}
        assert not train.ResultsStore().exists("smoke", u.experiment, u.name)
        assert run_states("smoke", units=[u])[0]["state"] == "missing"
    assert run_unit(u)["state"] == "done" and run_unit(u)["state"] == "stored"


def test_cli_runs_lists_states(where, capsys):
    from rnn_mft.cli import main
    assert main(["runs", "--profile", "smoke", "--state", "missing"]) == 0
    out = capsys.readouterr().out
    assert "missing  critical_init_your_model/default-" in out and "0 done" in out and "11 missing" in out
    assert main(["runs", "--profile", "huge"]) == 2


def test_slurm_settings_from_env_and_errors(monkeypatch):
    from rnn_mft.cluster import SlurmSettings
    monkeypatch.setenv("RNN_MFT_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("RNN_MFT_SLURM_TIME_MIN", "120")
    s = SlurmSettings.from_env(gpus=1)
    p = s.submitit_parameters()
    assert p["slurm_partition"] == "gpu" and p["timeout_min"] == 120 and p["gpus_per_node"] == 1
    assert s.budget_s() == 120 * 60 - 300
    monkeypatch.setenv("RNN_MFT_SLURM_GPUS", "two")
    with pytest.raises(ValueError, match="RNN_MFT_SLURM_GPUS='two' must be a int"):
        SlurmSettings.from_env()
    monkeypatch.delenv("RNN_MFT_SLURM_GPUS")
    with pytest.raises(ValueError, match="time_min=0 must be at least 1"):
        SlurmSettings.from_env(time_min=0)


def test_submitit_is_imported_only_by_the_slurm_executor():
    code = ("import sys, rnn_mft, rnn_mft.cluster, rnn_mft.train, rnn_mft.experiments.training.trainability;"
            "from rnn_mft.cluster import collect_runs; collect_runs('smoke');"
            "assert 'submitit' not in sys.modules, 'submitit imported'")
    subprocess.run([__import__("sys").executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- a real SLURM cluster

def _slurm_up() -> bool:
    if shutil.which("sinfo") is None or importlib.util.find_spec("submitit") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(s.strip() in ("idle", "mixed", "allocated") for s in out.stdout.split())


# .ci/run sets RNN_MFT_REQUIRE_SLURM=1 after starting the cluster: there the tests fail instead of skipping
slurm = pytest.mark.skipif(not _slurm_up() and not os.environ.get("RNN_MFT_REQUIRE_SLURM"), reason="no SLURM cluster answers here (tools/slurm_localcluster.sh "
                                                   "start) or submitit is not installed")


@slurm
def test_slurm_smoke_profile_equals_inline_and_a_raising_job_is_reported(where, monkeypatch):
    """The whole smoke profile as one SLURM job array: every run stored, byte-identical to inline;
    a job that raises is reported failed with its log, the others are unaffected."""
    units = collect_runs("smoke")
    monkeypatch.setenv("RNN_MFT_RESULTS", str(where / "inline"))
    assert execute("smoke", "inline", units=units, log=lambda *a, **k: None).ok
    monkeypatch.setenv("RNN_MFT_RESULTS", str(where / "slurm"))
    rep = execute("smoke", "slurm", units=units + [_bad_unit()], poll_s=1.0)
    print(rep.summary())
    st = {s["name"]: s for s in rep.states}
    assert all(st[u.name]["state"] == "done" for u in units), rep.summary()
    bad = st["no_such_dataset-0"]
    assert bad["state"] == "failed" and "KeyError" in bad["detail"], rep.summary()
    assert os.path.exists(bad["log"]) and "no_such_dataset" in open(bad["log"]).read()
    rec = read_status(units[0], train.ResultsStore())
    assert rec["slurm_job_id"] and rec["host"]                       # it ran as a SLURM job
    assert_same_results(train.ResultsStore(where / "inline"), train.ResultsStore(where / "slurm"), units)


def _slow_slurm_job_with_a_checkpoint(where, monkeypatch):
    """One smoke run trained inline (the reference), then submitted to SLURM as a slow job that
    checkpoints every step; returns ``(units, store, checkpoint, job id)`` once it has checkpointed."""
    u = [x for x in collect_runs("smoke", [SMALL]) if x.name.startswith("tied-gru")]
    monkeypatch.setenv("RNN_MFT_RESULTS", str(where / "inline"))
    assert execute("smoke", "inline", units=u, log=lambda *a, **k: None).ok
    monkeypatch.setenv("RNN_MFT_RESULTS", str(where / "slurm"))
    store = train.ResultsStore(where / "slurm")
    monkeypatch.setenv("RNN_MFT_CHECKPOINT_EVERY", "1")              # the jobs see these (the unit's settings)
    monkeypatch.setenv("RNN_MFT_TEST_STEP_DELAY_S", "4")             # 3 steps: about 12 s of training
    execute("smoke", "slurm", units=u, wait=False, log=lambda *a, **k: None)
    ck = store.checkpoint_path("smoke", u[0].experiment, u[0].name)
    t0 = time.time()
    while not ck.exists():
        assert time.time() - t0 < 180, "the job never wrote a checkpoint"
        time.sleep(0.2)
    return u, store, ck, read_status(u[0], store)["slurm_job_id"]


@slurm
def test_slurm_job_cancelled_mid_run_resumes_from_its_checkpoint_and_ends_equal(where, monkeypatch):
    u, store, ck, job = _slow_slurm_job_with_a_checkpoint(where, monkeypatch)
    subprocess.run(["scancel", job], check=True)
    t0 = time.time()
    while (s := run_states("smoke", units=u)[0])["state"] == "running":
        assert time.time() - t0 < 60, "scancel did not end the job"
        time.sleep(0.5)
    assert s["state"] == "failed" and "ended without a result" in s["detail"], s
    assert ck.exists() and not store.exists("smoke", u[0].experiment, u[0].name)
    monkeypatch.setenv("RNN_MFT_TEST_STEP_DELAY_S", "0")
    rep = execute("smoke", "slurm", units=u, poll_s=0.5, log=lambda *a, **k: None)   # resubmitted
    assert rep.ok and rep.states[0]["state"] == "done", rep.summary()
    rec = read_status(u[0], store)
    assert rec["resumed_from"] == str(ck) and rec["slurm_job_id"] != job     # a new job, from the checkpoint
    assert not ck.exists()
    assert_same_results(train.ResultsStore(where / "inline"), store, u)


@slurm
def test_slurm_preempted_job_is_requeued_and_ends_equal(where, monkeypatch):
    """A running job gets the signal SLURM sends on preemption (submitit's --signal, USR2): submitit
    checkpoints the callable (cluster.executors.Job), requeues the same job, and the run resumes
    from its last checkpoint and ends byte-identical to an uninterrupted inline run."""
    u, store, ck, job = _slow_slurm_job_with_a_checkpoint(where, monkeypatch)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)    # what a preemption sends first
    t0 = time.time()
    while not store.exists("smoke", u[0].experiment, u[0].name):
        assert time.time() - t0 < 240, f"the requeued job did not finish: {run_states('smoke', units=u)}"
        time.sleep(0.5)
    rec = read_status(u[0], store)
    assert rec["slurm_job_id"] == job and rec["resumed_from"] == str(ck), rec    # the same job, requeued
    logs = "".join(p.read_text() for p in (where / "jobs" / "smoke" / "submitit").glob(f"{job}*_log.*"))
    assert "is requeued" in logs, logs[-3000:]
    assert not ck.exists()
    assert_same_results(train.ResultsStore(where / "inline"), store, u)


@slurm
def test_slurm_budgeted_run_resubmits_itself_until_done_and_ends_equal(where, monkeypatch):
    """A job whose budget is shorter than its run checkpoints, submits its own continuation, and
    the chain ends with the result an uninterrupted inline run gives."""
    from rnn_mft.cluster import SlurmSettings
    u = [x for x in collect_runs("smoke", [SMALL]) if x.name.startswith("tied-gru")]
    monkeypatch.setenv("RNN_MFT_RESULTS", str(where / "inline"))
    assert execute("smoke", "inline", units=u, log=lambda *a, **k: None).ok
    monkeypatch.setenv("RNN_MFT_RESULTS", str(where / "slurm"))
    monkeypatch.setenv("RNN_MFT_TEST_STEP_DELAY_S", "10")            # 3 steps of 10 s, budget 18 s per job
    rep = execute("smoke", "slurm", units=u, slurm=SlurmSettings(time_min=5, budget_min=0.3), poll_s=0.5,
                  log=lambda *a, **k: None)
    assert rep.ok and rep.states[0]["state"] == "done", rep.summary()
    rec = read_status(u[0], train.ResultsStore())
    assert rec.get("resumed_from"), rec                              # the last job continued a checkpoint
    logs = sorted((where / "jobs" / "smoke" / "submitit").glob("*_log.out"))
    assert sum("continues in job" in p.read_text() for p in logs) >= 1
    assert_same_results(train.ResultsStore(where / "inline"), train.ResultsStore(where / "slurm"), u)
