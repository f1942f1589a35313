"""The GPU-session tools run on a CPU: benchmarks/gpu.py (exits 0 without CUDA; --cpu-smoke),
tools/estimate_paper.py --measure at profile smoke, and the budgeted slice driver."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["complete"] is True and rep["cpu_smoke"] is True
    rows = rep["rows"]
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
    assert bad.returncode == 2 and "--profile='huge'; allowed: smoke, ci, cpu, paper" in bad.stderr


def test_gpu_slice_driver_at_smoke_size(tmp_path, monkeypatch, script):
    gpu_slice = script("tools/gpu_slice.py")
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "store"))
    # main() exports RNN_MFT_DEADLINE into os.environ: recorded here so that teardown removes it
    monkeypatch.setenv("RNN_MFT_DEADLINE", "")
    assert gpu_slice.main(["--budget-min", "30", "--profile", "smoke", "--out", str(tmp_path), "--archs", "gru",
                           "--experiments", "trainability"]) == 0
    rep = json.loads((tmp_path / "slice.json").read_text())
    assert [r["status"] for r in rep] == ["done", "done"]                      # Figure 6 then Figure 2, gru
    assert [r["ensemble"] for r in rep] == ["tied gru T=2,5", "untied gru T=2,5"]
    assert set(rep[0]["final_acc"]) == {"2", "5"}
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["budget_min"] == 30 and prov["end"] and prov["torch"] == torch.__version__ and "git_commit" in prov
    assert isinstance(prov["git_changed_files"], list) or prov["git_changed_files"] == "unknown"
    # a spent budget starts nothing
    assert gpu_slice.main(["--budget-min", "1e-9", "--profile", "smoke", "--out", str(tmp_path / "b"),
                           "--archs", "gru", "--experiments", "trainability"]) == 0
    rep = json.loads((tmp_path / "b" / "slice.json").read_text())
    assert all(r["status"].startswith("not started") for r in rep)
    with pytest.raises(SystemExit):
        gpu_slice.main(["--budget-min", "1", "--experiments", "figure9"])


def test_gpu_slice_runs_every_experiment_in_the_issue_order_and_continues_where_the_store_stops(
        tmp_path, monkeypatch, script):
    """Figures 6, 2, 1, Table 2, Figure 4 in that order; what the store holds is not trained
    again, so a second slice (the next GPU session) goes on with the rest."""
    from rnn_mft.cluster import collect_runs
    gpu_slice = script("tools/gpu_slice.py")
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "store"))
    monkeypatch.setenv("RNN_MFT_STORE_SMOKE", "1")
    monkeypatch.setenv("RNN_MFT_DEADLINE", "")
    plan = gpu_slice.plan("smoke")
    exps = [u["experiment"] for _, u, _ in plan]
    assert exps == sorted(exps, key=["trainability", "sequence_length", "unrolled", "training_curves"].index)
    trainab = [e["tied"] for _, u, e in plan if u["experiment"] == "trainability"]
    assert trainab == sorted(trainab, reverse=True)                          # tied (Figure 6) first
    every = {u.name for u in collect_runs("smoke") if u.experiment != "critical_init_your_model"}
    assert {u["name"] for _, u, _ in plan} == every                          # nothing left out, nothing twice
    assert len(plan) == len(every)

    # the first session trains Figures 6 and 2 only
    assert gpu_slice.main(["--budget-min", "30", "--profile", "smoke", "--out", str(tmp_path / "s1"),
                           "--experiments", "trainability"]) == 0
    assert gpu_slice.main(["--budget-min", "30", "--profile", "smoke", "--out", str(tmp_path / "s2")]) == 0
    rep = json.loads((tmp_path / "s2" / "slice.json").read_text())
    assert [r["run"] for r in rep] == [u["name"] for _, u, _ in plan]
    status = {r["experiment"]: set() for r in rep}
    for r in rep:
        status[r["experiment"]].add(r["status"].split(":")[0])
    assert status == {"trainability": {"stored"}, "sequence_length": {"done"}, "unrolled": {"done"},
                      "training_curves": {"done"}}
    prov = json.loads((tmp_path / "s2" / "provenance.json").read_text())
    assert prov["runs_stored_before"] == sum(e == "trainability" for e in exps)
    assert prov["runs_done"] == len(plan) - prov["runs_stored_before"]


def test_gpu_slice_skips_without_starting_a_run_measured_too_slow_on_this_gpu(tmp_path, monkeypatch, script):
    gpu_slice = script("tools/gpu_slice.py")
    plan = gpu_slice.plan("smoke", ["sequence_length"])
    name = plan[0][1]["name"]
    sessions = tmp_path / "sessions"
    for folder, gpu, sps in (("2026-01-01T000000Z", "NVIDIA H200", 1e6), ("2026-01-02T000000Z", "NVIDIA A100", 1e-6)):
        (sessions / folder).mkdir(parents=True)
        (sessions / folder / "provenance.json").write_text(json.dumps({"gpu": gpu}))
        (sessions / folder / "slice.json").write_text(json.dumps([{"run": name, "s_per_step": sps}]))
    assert gpu_slice.measured_speeds(sessions, "NVIDIA H200") == {name: (1e6, "2026-01-01T000000Z")}
    assert gpu_slice.measured_speeds(sessions, None) == {}                  # no GPU: nothing is known
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    monkeypatch.setattr(gpu_slice, "_outcome", lambda res: pytest.fail("a run measured too slow was started"))
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "store"))
    monkeypatch.setenv("RNN_MFT_DEADLINE", "")
    monkeypatch.setenv("RNN_MFT_FINISH_BY_DEADLINE", "")
    assert gpu_slice.main(["--budget-min", "5", "--profile", "smoke", "--out", str(tmp_path / "o"),
                           "--experiments", "sequence_length", "--finish-or-skip", "--sessions", str(sessions)]) == 0
    rep = json.loads((tmp_path / "o" / "slice.json").read_text())
    assert rep[0]["run"] == name and rep[0]["status"].startswith("skipped: measured earlier (1e+06 s per step on "
                                                                 "NVIDIA H200, session 2026-01-01T000000Z)")
    assert rep[0]["projected_s"] == pytest.approx(1.15 * 1e6 * plan[0][2]["steps"])   # 2 products: rel 1e-6 >> u64


def test_tf32_option_is_explicit_and_off_by_default():
    assert train.TrainConfig().tf32 is False
    with pytest.raises(ValueError, match="tf32='yes'; allowed: True or False"):
        train.TrainConfig(tf32="yes")


# =============================================================================== what comes back from a lent GPU
def _within_device_limits(out: Path, gp) -> list:
    """The device tool returns at most 8 files of at most 16 MiB (64 MiB in all), named in
    letters, digits, '.', '_', '-'; here everything lies at the top of ``out``."""
    files = sorted(out.iterdir())
    assert all(p.is_file() for p in files), files
    assert len(files) <= gp.MAX_FILES
    assert all(gp.NAME_OK.match(p.name) for p in files)
    assert all(p.stat().st_size <= gp.MAX_FILE_MIB * 2**20 for p in files)
    assert sum(p.stat().st_size for p in files) <= gp.MAX_TOTAL_MIB * 2**20
    return files


def _mirror() -> Path | None:
    for d in (ROOT / "shared" / "data", ROOT.parent / "shared" / "data"):
        if (d / "mnist").is_dir():
            return d
    return None


@pytest.mark.skipif(_mirror() is None, reason="needs the MNIST mirror (shared/data or ../shared/data)")
def test_gpu_run_smoke_returns_everything_within_the_device_limits_and_unpacks(tmp_path, script):
    gp = script("tools/gpu_pack.py")
    env = dict(os.environ, OUT=str(tmp_path / "out"), STAGE=str(tmp_path / "stage"),
               RNN_MFT_RESULTS=str(tmp_path / "store" / "results"), RNN_MFT_STORE_SMOKE="1", PYTHON=sys.executable)
    env.pop("RNN_MFT_DEADLINE", None)
    p = subprocess.run(["bash", "tools/gpu_run.sh", "--smoke", "--budget-min", "5"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    names = {f.name for f in _within_device_limits(tmp_path / "out", gp)}
    assert {"summary.txt", "logs.tgz", "manifest.json", "payload.tgz.00"} <= names
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "bench rc=0" in summary and "slice rc=0" in summary and "estimate rc=0" in summary
    stored = sorted((tmp_path / "store" / "results").rglob("*.*"))
    from rnn_mft.cluster import collect_runs
    n_runs = sum(u.experiment != "critical_init_your_model" for u in collect_runs("smoke"))
    assert len(stored) == 3 * n_runs      # every run of Figures 6, 2, 1, Table 2, 4: .json, .npz, .manifest
    repo = tmp_path / "repo"
    written = gp.unpack(tmp_path / "out", repo)
    for f in stored:
        rel = f.relative_to(tmp_path / "store")
        assert (repo / "data" / rel).read_bytes() == f.read_bytes(), rel
    session = [w for w in written if w.startswith("data/gpu_sessions/")]
    assert {Path(w).name for w in session} >= {"provenance.json", "slice.json", "bench.json", "steps.txt",
                                               "manifest.json"}
    slice_rep = json.loads((repo / session[0]).parent.joinpath("slice.json").read_text())
    assert all(r["status"] == "done" and r["s_per_step"] > 0 for r in slice_rep)
    assert gp.unpack(tmp_path / "out", repo) == []       # again: everything is already there


def sound_result(root: Path, run: str = "run-a", seed: int = 0) -> list[Path]:
    """Store a result of ``paper/exp/<run>`` under ``root`` (what unpack verifies); its files."""
    curves = {"train_loss": np.random.default_rng(seed).random((50, 2))}
    train.ResultsStore(root, readonly=False).save("paper", "exp", run, train.RunResult(curves, {"seed": seed}))
    return sorted((root / "paper" / "exp").glob(f"{run}.*"))


def sound_checkpoint(path: Path, step: int, nbytes: int = 1000, settings: dict | None = None, seed: int = 0) -> bytes:
    """Write a checkpoint (rnn_mft.train.checkpoint) at ``step`` holding ``nbytes`` random bytes; its bytes."""
    from rnn_mft.train.checkpoint import save_checkpoint
    blob = torch.from_numpy(np.frombuffer(np.random.default_rng(seed).bytes(nbytes), dtype=np.uint8).copy())
    save_checkpoint(path, settings or {"run": "b"}, {"step": step, "blob": blob})
    return path.read_bytes()


def _stage(tmp_path, ckpt_sizes=(1000, 200_000, 3_000_000)):
    stage = tmp_path / "stage"
    (stage / "results" / "paper" / "exp").mkdir(parents=True)
    (stage / "checkpoints" / "paper" / "exp").mkdir(parents=True)
    (stage / "steps.txt").write_text("bench rc=0 wall_s=1\n")
    (stage / "provenance.json").write_text(json.dumps({"start": "2026-01-02T03:04:05Z"}))
    sound_result(stage / "results")
    for i, n in enumerate(ckpt_sizes):
        sound_checkpoint(stage / "checkpoints" / "paper" / "exp" / f"c{i}.pt", 1, n, seed=i)
    return stage


def test_pack_keeps_to_the_limits_splits_the_payload_and_lists_what_stays_behind(tmp_path, script):
    gp = script("tools/gpu_pack.py")
    stage = _stage(tmp_path)
    man = gp.pack(stage, tmp_path / "out", part_mib=0.1, total_mib=1.0)
    files = _within_device_limits(tmp_path / "out", gp)
    assert all(f.stat().st_size <= 0.1 * 2**20 for f in files if f.name.startswith("payload"))
    assert len(man["payload_parts"]) >= 2                # the 200 kB checkpoint needs more than one part
    assert [x["file"] for x in man["left_behind"]] == ["checkpoints/paper/exp/c2.pt"]
    stored = {f"results/paper/exp/{p.name}" for p in (stage / "results" / "paper" / "exp").iterdir()}
    assert {x["file"] for x in man["payload"]} == stored | {f"checkpoints/paper/exp/c{i}.pt" for i in (0, 1)}
    repo = tmp_path / "repo"
    gp.unpack(tmp_path / "out", repo)
    for rel in ("results/paper/exp/run-a.npz", "checkpoints/paper/exp/c1.pt"):
        assert (repo / "data" / rel).read_bytes() == (stage / rel).read_bytes()
    assert (repo / "data" / "gpu_sessions" / "20260102T030405Z" / "steps.txt").exists()
    # a smaller pack into the same folder removes the parts it no longer needs
    (stage / "checkpoints" / "paper" / "exp" / "c1.pt").unlink()
    man2 = gp.pack(stage, tmp_path / "out", part_mib=0.1, total_mib=1.0)
    assert sorted(p.name for p in (tmp_path / "out").glob("payload*")) == man2["payload_parts"]
    # --since: only files written during the session
    old = stage / "results" / "paper" / "exp" / "run-a.json"
    os.utime(old, (1000, 1000))
    man3 = gp.pack(stage, tmp_path / "out3", since=2000)
    assert "results/paper/exp/run-a.json" not in {x["file"] for x in man3["payload"]}
    with pytest.raises(ValueError, match="part_mib=20; allowed: 0 < part_mib <= 16"):
        gp.pack(stage, tmp_path / "o", part_mib=20)


def test_unpack_refuses_tampered_mixed_or_escaping_packs(tmp_path, script):
    import hashlib
    import io
    import tarfile
    gp = script("tools/gpu_pack.py")
    stage = _stage(tmp_path, ckpt_sizes=(1000,))
    out = tmp_path / "out"
    gp.pack(stage, out)
    part = out / "payload.tgz.00"
    good = part.read_bytes()
    part.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ValueError, match="SHA-256 differs from the manifest"):
        gp.unpack(out, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()              # nothing written
    part.write_bytes(good)

    def forge(member: tarfile.TarInfo, data: bytes = b"x"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            tf.addfile(member, io.BytesIO(data) if member.isfile() else None)
        blob = buf.getvalue()
        part.write_bytes(blob)
        man = json.loads((out / "manifest.json").read_text())
        man["files"]["payload.tgz.00"] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
        man["payload_parts"] = ["payload.tgz.00"]
        (out / "manifest.json").write_text(json.dumps(man))

    for name in ("../evil.json", "results/../../evil.json", "/tmp/evil.json", "elsewhere/x.json"):
        info = tarfile.TarInfo(name)
        info.size = 1
        forge(info)
        with pytest.raises(ValueError, match="refused payload member"):
            gp.unpack(out, tmp_path / "repo")
    link = tarfile.TarInfo("results/paper/exp/link.json")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    forge(link)
    with pytest.raises(ValueError, match="not a regular file"):
        gp.unpack(out, tmp_path / "repo")
    # an existing file with other contents is not overwritten without --force
    gp.pack(stage, out)
    target = tmp_path / "repo" / "data" / "results" / "paper" / "exp" / "run-a.json"
    target.parent.mkdir(parents=True)
    target.write_text('{"a": 2}')
    with pytest.raises(FileExistsError, match="pass --force"):
        gp.unpack(out, tmp_path / "repo")
    gp.unpack(out, tmp_path / "repo", force=True)
    assert target.read_bytes() == (stage / "results" / "paper" / "exp" / "run-a.json").read_bytes()


def test_unpack_lets_a_later_checkpoint_replace_an_earlier_and_deletes_it_when_the_run_finishes(tmp_path,
                                                                                                 script):
    """Session 1 stops run-b at the budget (its checkpoint comes back), session 2 goes on from
    it and stops again (a newer checkpoint), session 3 finishes it (its result comes back and
    the checkpoint, spent, is deleted here)."""
    gp = script("tools/gpu_pack.py")
    repo = tmp_path / "repo"
    ck = repo / "data" / "checkpoints" / "paper" / "exp" / "run-b.pt"
    for i, what in enumerate(("checkpoint", "checkpoint", "result")):
        stage = tmp_path / f"stage{i}"
        (stage / "results" / "paper" / "exp").mkdir(parents=True)
        (stage / "checkpoints" / "paper" / "exp").mkdir(parents=True)
        (stage / "provenance.json").write_text(json.dumps({"start": f"2026-01-0{i + 1}T00:00:00Z"}))
        if what == "checkpoint":
            data = sound_checkpoint(stage / "checkpoints" / "paper" / "exp" / "run-b.pt", step=10 * (i + 1), seed=i)
        else:
            files = sound_result(stage / "results", "run-b", seed=1)
        gp.pack(stage, tmp_path / f"out{i}")
        done = gp.unpack(tmp_path / f"out{i}", repo)       # no --force needed for a newer checkpoint
        if what == "checkpoint":
            assert ck.read_bytes() == data and "data/checkpoints/paper/exp/run-b.pt" in done
    assert not ck.exists() and "deleted data/checkpoints/paper/exp/run-b.pt (its run finished)" in done
    for f in files:
        assert (repo / "data" / "results" / "paper" / "exp" / f.name).read_bytes() == f.read_bytes()
    # a result that differs from the committed one still needs --force
    stage = tmp_path / "stage3"
    sound_result(stage / "results", "run-b", seed=2)
    gp.pack(stage, tmp_path / "out3")
    with pytest.raises(FileExistsError, match="run-b.json"):
        gp.unpack(tmp_path / "out3", repo)


def test_gpu_slice_checkpoints_at_the_deadline_a_run_whose_checkpoint_can_come_back(tmp_path, monkeypatch,
                                                                                  script):
    """With --finish-or-skip, a run whose checkpoint fits --checkpoint-mib is not skipped: it
    stops at the deadline with its checkpoint (what gpu_pack brings back), and the same command
    later resumes it and finishes."""
    import time

    from rnn_mft.train import engine
    from rnn_mft.train.ensembles import checkpoint_bytes_of
    gpu_slice = script("tools/gpu_slice.py")

    class Clock:                                          # 20 s per reading, starting now
        def __init__(self):
            self.t = time.time()

        def __call__(self):
            self.t += 20.0
            return self.t

    monkeypatch.setattr(engine, "PROBE_WARMUP", 0)
    monkeypatch.setattr(engine, "PROBE_STEPS", 1)
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "store" / "results"))
    monkeypatch.setenv("RNN_MFT_CHECKPOINTS", str(tmp_path / "store" / "checkpoints"))
    monkeypatch.setenv("RNN_MFT_STORE_SMOKE", "1")
    monkeypatch.setenv("RNN_MFT_DEADLINE", "")
    monkeypatch.setenv("RNN_MFT_FINISH_BY_DEADLINE", "")
    args = ["--budget-min", "1", "--profile", "smoke", "--experiments", "training_curves", "--finish-or-skip"]
    plan = gpu_slice.plan("smoke", ["training_curves"])
    ck_mib = max(checkpoint_bytes_of(e) for _, _, e in plan) / 2**20
    # too small a limit: finish or skip, nothing saved
    monkeypatch.setattr(engine, "_clock", Clock())
    assert gpu_slice.main(args + ["--out", str(tmp_path / "a"), "--checkpoint-mib", str(ck_mib / 2)]) == 0
    rep = json.loads((tmp_path / "a" / "slice.json").read_text())
    assert rep[0]["mode"] == "finish or skip" and rep[0]["status"].startswith("skipped: would not finish")
    assert not list((tmp_path / "store").rglob("*.pt"))
    # a limit the checkpoint fits: stopped at the budget with its checkpoint
    monkeypatch.setattr(engine, "_clock", Clock())
    assert gpu_slice.main(args + ["--out", str(tmp_path / "b"), "--checkpoint-mib", str(2 * ck_mib)]) == 0
    rep = json.loads((tmp_path / "b" / "slice.json").read_text())
    assert rep[0]["mode"] == "checkpoint at the deadline" and rep[0]["status"].startswith("stopped at the budget")
    first = plan[0][1]
    ck = tmp_path / "store" / "checkpoints" / "smoke" / first["experiment"] / f"{first['name']}.pt"
    # the estimate is the tensors at the last step; a file adds a few kB of fixed overhead
    assert ck.is_file() and ck.stat().st_size <= rep[0]["checkpoint_bytes"] + 64 * 1024
    # later, with time enough (the real clock): resumed from the checkpoint and finished
    monkeypatch.setattr(engine, "_clock", time.time)
    assert gpu_slice.main(["--budget-min", "30", "--profile", "smoke", "--experiments", "training_curves",
                           "--finish-or-skip", "--checkpoint-mib", str(2 * ck_mib),
                           "--out", str(tmp_path / "c")]) == 0
    rep = json.loads((tmp_path / "c" / "slice.json").read_text())
    assert rep[0]["status"] == "done" and not ck.exists()
    from rnn_mft.train import ResultsStore
    assert ResultsStore().load("smoke", first["experiment"], first["name"]).meta["resumed_from"] > 0


def test_gpu_slice_finish_or_skip_skips_what_would_not_finish_and_records_its_speed(tmp_path, monkeypatch,
                                                                                  script):
    import time

    from rnn_mft.train import engine
    gpu_slice = script("tools/gpu_slice.py")

    class Clock:                                          # 20 s per reading, starting now
        t = time.time()

        def __call__(self):
            self.t += 20.0
            return self.t

    monkeypatch.setattr(engine, "_clock", Clock())
    monkeypatch.setattr(engine, "PROBE_WARMUP", 0)
    monkeypatch.setattr(engine, "PROBE_STEPS", 1)
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "store"))
    monkeypatch.setenv("RNN_MFT_DEADLINE", "")
    monkeypatch.setenv("RNN_MFT_FINISH_BY_DEADLINE", "")
    assert gpu_slice.main(["--budget-min", "1", "--profile", "smoke", "--out", str(tmp_path), "--archs", "gru",
                           "--experiments", "trainability", "--finish-or-skip"]) == 0
    rep = json.loads((tmp_path / "slice.json").read_text())
    # tied gru: 3 steps of 20 s projected past the 60 s budget after its first step: skipped
    # (a counter clock and two products: approx's default rel 1e-6 >> float64 rounding)
    assert rep[0]["status"].startswith("skipped: would not finish before the deadline")
    assert rep[0]["s_per_step"] == pytest.approx(20.0) and rep[0]["projected_s"] == pytest.approx(2 * 20 * 1.15)
    assert rep[1]["status"].startswith("stopped at the budget") and "no checkpoint" in rep[1]["status"]
    assert not list(tmp_path.rglob("*.pt"))
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["finish_or_skip"] is True and prov["runs_skipped"] == 1


# =============================================================================== CUDA graphs of the training step
def test_cuda_graphs_switch_is_explicit_about_where_it_cannot_run(monkeypatch):
    from rnn_mft import nets
    from rnn_mft.train import graphs
    from rnn_mft.train.synthetic import TensorTask
    g = torch.Generator().manual_seed(0)
    task = TensorTask(torch.randn(64, 6, 3, generator=g), torch.randint(4, (64,), generator=g),
                      torch.randn(16, 6, 3, generator=g), torch.randint(4, (16,), generator=g), n_out=4)
    cfg = train.TrainConfig(steps=3, batch_size=8, progress=False, device="cpu")
    torch.manual_seed(0)
    ref = train.fit(nets.make_classifier("lstm", 3, 5, 4, members=2, lengths=[4, 6]), task, cfg)
    assert ref.meta["cuda_graphs"] == "off"
    monkeypatch.setenv("RNN_MFT_CUDA_GRAPHS", "1")            # the environment switch: ignored on a CPU, and said so
    torch.manual_seed(0)
    res = train.fit(nets.make_classifier("lstm", 3, 5, 4, members=2, lengths=[4, 6]), task, cfg)
    assert res.meta["cuda_graphs"] == "off: needs CUDA (this run is on cpu)"
    for k in ref.curves:
        np.testing.assert_array_equal(res.curves[k], ref.curves[k], err_msg=k)
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device; this run is on cpu"):
        train.fit(nets.make_classifier("lstm", 3, 5, 4), task, cfg, cuda_graphs=True)
    cuda = torch.device("cuda")                               # the plan only (nothing runs on the device)
    assert graphs.plan(nets.make_classifier("gru", 3, 5, 4), cuda, True)["want"] is True
    plan = graphs.plan(nets.make_classifier("lstm", 3, 5, 4, h_detach=0.25), cuda, True)
    assert plan == {"want": False, "note": "off: h-detach draws its mask on the host every step"}
    assert graphs.plan(nets.make_classifier("gru", 3, 5, 4), cuda, False)["want"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_graphs_check_without_cuda_exits_3():
    p = _run("tools/gpu_speed_check.py")
    assert p.returncode == 3 and "CUDA is not available" in p.stdout


def _sessions(tmp_path, name, reports):
    """``reports``: {session folder: report} written as ``<tmp>/sessions/<folder>/<name>``."""
    root = tmp_path / "sessions"
    for folder, rep in reports.items():
        (root / folder).mkdir(parents=True)
        (root / folder / name).write_text(json.dumps(rep))
    return root


def _fake_gpu(monkeypatch, name="NVIDIA H200"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)


def test_benchmark_is_skipped_where_a_committed_session_benchmarked_this_gpu(tmp_path, monkeypatch, script,
                                                                           capsys):
    bench = script("benchmarks/gpu.py")
    root = _sessions(tmp_path, "bench.json", {
        "2026-01-01T000000Z": {"device": "NVIDIA H200", "complete": True, "cpu_smoke": False, "rows": []},
        "2026-01-02T000000Z": {"device": "NVIDIA H200", "complete": False, "cpu_smoke": False, "rows": []},
        "2026-01-03T000000Z": {"device": "NVIDIA A100", "complete": True, "cpu_smoke": False, "rows": []},
        "2026-01-04T000000Z": {"device": "cpu", "complete": True, "cpu_smoke": True, "rows": []}})
    assert bench.measured_before(root, "NVIDIA H200") == root / "2026-01-01T000000Z" / "bench.json"
    assert bench.measured_before(root, "NVIDIA A100").parent.name == "2026-01-03T000000Z"
    assert bench.measured_before(root, "NVIDIA H100") is None       # another model: measure
    assert bench.measured_before(tmp_path / "none", "NVIDIA H200") is None
    _fake_gpu(monkeypatch)
    monkeypatch.setattr(bench, "Timer", lambda *a: pytest.fail("measured although benchmarked before"))
    assert bench.main(["--quick", "--skip-if-measured", str(root), "--json", str(tmp_path / "b.json")]) == 0
    assert "2026-01-01T000000Z/bench.json already holds a complete benchmark of NVIDIA H200" in capsys.readouterr().out
    assert not (tmp_path / "b.json").exists()


def test_speed_check_is_reused_only_for_the_same_gpu_torch_and_library_code(tmp_path, monkeypatch, script):
    gc = script("tools/gpu_speed_check.py")
    lib = gc.library_hash()
    assert len(lib) == 64 and gc.library_hash() == lib
    same = {"device": "NVIDIA H200", "torch": torch.__version__, "library_hash": lib, "ran": True,
            "chosen": ["graphs"]}
    root = _sessions(tmp_path, "speed.json", {
        "2026-01-01T000000Z": same,
        "2026-01-02T000000Z": dict(same, library_hash="0" * 64, chosen=["graphs", "triton"]),   # other code
        "2026-01-03T000000Z": dict(same, ran=False, chosen=[])})                             # a check failed
    assert gc.earlier_check(root, "NVIDIA H200", torch.__version__, lib)[0].parent.name == "2026-01-01T000000Z"
    assert gc.earlier_check(root, "NVIDIA H200", "0.0", lib) is None
    assert gc.earlier_check(root, "NVIDIA A100", torch.__version__, lib) is None
    _fake_gpu(monkeypatch)
    monkeypatch.setattr(gc, "_fit_pair", lambda *a, **k: pytest.fail("checked although checked before"))
    env, out = tmp_path / "speed.env", tmp_path / "speed.json"
    assert gc.main(["--reuse", str(root), "--env-file", str(env), "--json", str(out)]) == 0
    assert env.read_text() == "export RNN_MFT_CUDA_GRAPHS=1\n"
    assert json.loads(out.read_text())["reused_from"].endswith("2026-01-01T000000Z/speed.json")


def test_graphs_agreement_check_detects_a_difference(monkeypatch, script):
    """The harness of tools/gpu_speed_check.py on the CPU: two identical runs agree bitwise; a
    graphed run that computed anything else (here: another learning rate) fails the check."""
    gc = script("tools/gpu_speed_check.py")
    fit = train.fit

    def fake(model, task, cfg, *a, cuda_graphs=None, lr_shift=0.0, **k):
        if cuda_graphs:
            cfg = train.TrainConfig(**dict(cfg.to_dict(), lr=cfg.lr + lr_shift))
        r = fit(model, task, cfg, *a, **k)
        r.meta["cuda_graphs"] = "on" if cuda_graphs else "off"
        return r

    monkeypatch.setattr(train, "fit", fake)
    r = gc._fit_pair("lstm", False, torch.device("cpu"), 3, 1e-5)
    assert r["ok"] and r["bitwise"] and r["note"] == "on"
    monkeypatch.setattr(train, "fit", lambda *a, **k: fake(*a, lr_shift=1e-4, **k))
    r = gc._fit_pair("gru", True, torch.device("cpu"), 3, 1e-5)
    assert not r["ok"] and r["max_rel_diff"]["parameters"] > 1e-5


def test_gpu_benchmark_graph_and_fused_rows_run_their_code_on_the_cpu(tmp_path, monkeypatch, script):
    """The CUDA-only branches of benchmarks/gpu.py, run on the CPU: a capture that 'succeeds'
    (make_graphed_callables replaced by the identity, synchronize by nothing) gives graphed rows, single and ensemble,
    each with a ratio or a throughput, and the targets name every variant."""
    bench = script("benchmarks/gpu.py")
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", lambda m, args: m)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    out = tmp_path / "b.json"
    args = ["--cpu-smoke", "--reps", "1", "--graphs", "--json", str(out)]
    if importlib.util.find_spec("triton") is not None:       # the fused rows too, in Triton's interpreter
        from rnn_mft.nets import _triton
        monkeypatch.setenv("TRITON_INTERPRET", "1")          # (restored afterwards; the script sets it)
        monkeypatch.setattr(_triton, "_kernels", None)
        monkeypatch.delitem(sys.modules, "rnn_mft.nets._triton_kernels", raising=False)
        args.append("--triton")
    assert bench.main(args) == 0
    all_rows = json.loads(out.read_text())["rows"]
    rows = [r for r in all_rows if r["kind"] == "graphed"]
    assert {(r["arch"], r["members"]) for r in rows if not r.get("fused")} == {("lstm", 1), ("lstm", 4), ("gru", 1),
                                                                               ("gru", 4)}
    assert all(r["us_per_step"] > 0 and r["throughput_vs_sequential_cudnn"] > 0 for r in rows)
    assert all(r["ratio"] > 0 for r in rows if r["members"] == 1)
    if "--triton" in args:
        fused = {(r["kind"], r["arch"], r["members"]) for r in all_rows if r.get("fused")}
        assert {("ours", "lstm", 1), ("ensemble", "peephole_lstm", 4), ("graphed", "lstm", 4)} <= fused
        _triton._kernels = None
        sys.modules.pop("rnn_mft.nets._triton_kernels", None)


def test_pack_filled_to_its_budget_with_incompressible_bytes_stays_within_8_files(tmp_path, script):
    gp = script("tools/gpu_pack.py")
    stage = _stage(tmp_path, ckpt_sizes=[7000] * 90)         # 630 kB of random bytes, more than fits
    man = gp.pack(stage, tmp_path / "out", part_mib=0.1, total_mib=1.0)
    files = _within_device_limits(tmp_path / "out", gp)
    assert len(files) <= 8 and man["left_behind"] and len(man["payload_parts"]) == len(files) - 3
    assert all(f.stat().st_size <= 0.1 * 2**20 for f in files if f.name.startswith("payload"))
