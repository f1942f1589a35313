"""Hostile packs for ``tools/gpu_pack.py unpack``: each is refused (nothing written), or leaves the
better state in place. Every pack here has a consistent manifest (sizes and SHA-256 of its files),
as a pack forged or garbled on the GPU machine would: only unpack's own checks stand in the way."""
import hashlib
import io
import json
import tarfile

import pytest

from test_gpu_tools import sound_checkpoint, sound_result

START = "2026-02-03T04:05:06Z"


def _tgz(members) -> bytes:
    """A gzip'd tar of ``members``: ``(TarInfo or name, bytes or a stream with .read)``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for info, data in members:
            if isinstance(info, str):
                info = tarfile.TarInfo(info)
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if isinstance(data, bytes) else data)
    return buf.getvalue()


def _forge(out, members, declared=None, logs=((("steps.txt", b"ok\n"),))):
    """Write a pack into ``out`` whose manifest agrees with its files; ``declared``: the payload
    list of the manifest (default: the members' names and sizes)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"summary.txt": b"forged\n", "logs.tgz": _tgz(logs), "payload.tgz.00": _tgz(members)}
    if declared is None:
        declared = [{"file": (i.name if isinstance(i, tarfile.TarInfo) else i),
                     "bytes": (i.size if isinstance(i, tarfile.TarInfo) else len(d))} for i, d in members]
    for name, data in files.items():
        (out / name).write_bytes(data)
    man = {"format": "rnn_mft-gpu-pack", "version": 1, "packed": START, "session_start": START,
           "files": {k: {"bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()} for k, v in files.items()},
           "payload_parts": ["payload.tgz.00"], "payload": declared,
           "logs": [n if isinstance(n, str) else n.name for n, _ in logs], "left_behind": []}
    (out / "manifest.json").write_text(json.dumps(man))
    return out


class _Zeros:
    """``n`` zero bytes as a stream (a size bomb without holding it in memory here)."""

    def __init__(self, n):
        self.left = n

    def read(self, k=-1):
        k = self.left if k is None or k < 0 else min(k, self.left)
        self.left -= k
        return bytes(k)


def _files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _bomb(gp, kind):
    big = gp.MAX_TOTAL_MIB * 2**20 + 2**20                     # one MiB over the most a pack may hold
    if kind == "pax header":                                   # tarfile would read this header whole
        info = tarfile.TarInfo("results/paper/exp/run-a.json")
        info.size, info.pax_headers = 2, {"comment": "x" * big}
        return [(info, b"{}")], None
    info = tarfile.TarInfo("results/paper/exp/run-a.npz")
    info.size = big
    declared = None if kind == "declared" else [{"file": info.name, "bytes": 1000}]
    return [(info, _Zeros(big))], declared


@pytest.mark.parametrize("kind", ["declared", "undeclared", "pax header"])
def test_a_size_bomb_is_refused_before_it_is_expanded(tmp_path, script, kind):
    """A ~70 kB part that expands past the payload's limit: declared so in the manifest, declared
    smaller than it is, or hidden in a tar header. Refused, nothing written."""
    gp = script("tools/gpu_pack.py")
    members, declared = _bomb(gp, kind)
    out = _forge(tmp_path / "out", members, declared)
    assert (out / "payload.tgz.00").stat().st_size < gp.MAX_FILE_MIB * 2**20
    with pytest.raises(ValueError, match=r"declares|expands to more than"):
        gp.unpack(out, tmp_path / "repo")
    assert _files_under(tmp_path / "repo") == []


def test_a_file_in_place_of_a_folder_and_a_folder_in_place_of_a_file_are_refused(tmp_path, script):
    gp = script("tools/gpu_pack.py")
    repo = tmp_path / "repo"
    committed = sound_result(repo / "data" / "results")        # data/results/paper/exp/run-a.*
    before = {p: p.read_bytes() for p in committed}
    # a member results/paper (a file) where results/paper is a folder of committed results
    out = _forge(tmp_path / "o1", [("results/paper", b"{}")])
    with pytest.raises(ValueError, match="refused payload member 'results/paper'"):
        gp.unpack(out, repo)
    # a member whose path is a folder here
    (repo / "data" / "results" / "paper" / "exp" / "run-z.json").mkdir()
    out = _forge(tmp_path / "o2", [("results/paper/exp/run-z.json", b"{}")])
    with pytest.raises(ValueError, match="run-z.json is a folder here"):
        gp.unpack(out, repo)
    # a member under a path that is a file here
    (repo / "data" / "results" / "smoke").write_text("a file")
    out = _forge(tmp_path / "o3", [("results/smoke/exp/run-a.json", b"{}")])
    with pytest.raises(ValueError, match="smoke is a file here, not a folder"):
        gp.unpack(out, repo)
    assert {p: p.read_bytes() for p in committed} == before
    assert (repo / "data" / "results" / "smoke").read_text() == "a file"
    assert not (repo / "data" / "gpu_sessions").exists()


@pytest.mark.parametrize("where", ["payload", "logs"])
def test_a_member_twice_is_refused(tmp_path, script, where):
    """Two members of one path (the last one would win, unseen): refused, whichever tar holds them."""
    gp = script("tools/gpu_pack.py")
    stage = tmp_path / "stage"
    files = sound_result(stage / "results")
    members = [(f"results/paper/exp/{p.name}", p.read_bytes()) for p in files]
    logs = [("steps.txt", b"ok\n")]
    if where == "payload":
        js = next(m for m in members if m[0].endswith(".json"))
        members.append((js[0], js[1].replace(b'"seed"', b'"SEED"')))         # same size, other contents
        declared = [{"file": n, "bytes": len(d)} for n, d in members[:-1]]
    else:
        logs.append(("steps.txt", b"no\n"))
        declared = None
    out = _forge(tmp_path / "out", members, declared, logs=logs)
    with pytest.raises(ValueError, match=f"refused {where} member .* appears twice"):
        gp.unpack(out, tmp_path / "repo")
    assert _files_under(tmp_path / "repo") == []


def _session(tmp_path, i, step=None, settings=None, result=None):
    """A session's stage (``stage<i>``) with run-b's checkpoint at ``step`` and/or ``result``
    (``{file name: bytes}`` under results/paper/exp)."""
    stage = tmp_path / f"stage{i}"
    (stage / "results" / "paper" / "exp").mkdir(parents=True)
    (stage / "checkpoints" / "paper" / "exp").mkdir(parents=True)
    (stage / "provenance.json").write_text(json.dumps({"start": f"2026-01-0{i}T00:00:00Z"}))
    if step is not None:
        sound_checkpoint(stage / "checkpoints" / "paper" / "exp" / "run-b.pt", step, settings=settings, seed=i)
    for name, data in (result or {}).items():
        (stage / "results" / "paper" / "exp" / name).write_bytes(data)
    return stage


def test_an_earlier_checkpoint_never_replaces_a_later_one(tmp_path, script):
    """Sessions unpacked out of order: the committed checkpoint at step 30 stays when one at step
    10 (or 30 again) arrives, with or without --force, and the report says so; a later one (40)
    replaces it; one of other settings is a clash that only --force resolves."""
    gp = script("tools/gpu_pack.py")
    repo = tmp_path / "repo"
    ck = repo / "data" / "checkpoints" / "paper" / "exp" / "run-b.pt"
    committed = sound_checkpoint(ck, 30, seed=99)
    for i, (step, force) in enumerate([(10, False), (10, True), (30, False)], start=1):
        stage = _session(tmp_path, i, step)
        gp.pack(stage, tmp_path / f"out{i}")
        done = gp.unpack(tmp_path / f"out{i}", repo, force=force)
        assert ck.read_bytes() == committed, (step, force)
        assert any(d.startswith("kept data/checkpoints/paper/exp/run-b.pt (step 30;") for d in done), done
    stage = _session(tmp_path, 4, 40)
    gp.pack(stage, tmp_path / "out4")
    assert "data/checkpoints/paper/exp/run-b.pt" in gp.unpack(tmp_path / "out4", repo)
    later = ck.read_bytes()
    assert later == (stage / "checkpoints" / "paper" / "exp" / "run-b.pt").read_bytes()
    stage = _session(tmp_path, 5, 50, settings={"run": "other"})
    gp.pack(stage, tmp_path / "out5")
    with pytest.raises(FileExistsError, match="a checkpoint of other settings: run differ"):
        gp.unpack(tmp_path / "out5", repo)
    assert ck.read_bytes() == later
    gp.unpack(tmp_path / "out5", repo, force=True)
    assert ck.read_bytes() == (stage / "checkpoints" / "paper" / "exp" / "run-b.pt").read_bytes()


def test_a_checkpoint_that_is_not_sound_is_refused_and_replaces_nothing(tmp_path, script):
    gp = script("tools/gpu_pack.py")
    repo = tmp_path / "repo"
    ck = repo / "data" / "checkpoints" / "paper" / "exp" / "run-b.pt"
    committed = sound_checkpoint(ck, 30)
    stage = _session(tmp_path, 1, 40)
    bad = stage / "checkpoints" / "paper" / "exp" / "run-b.pt"
    bad.write_bytes(bad.read_bytes()[:-100])                                  # truncated
    gp.pack(stage, tmp_path / "out1")
    with pytest.raises(ValueError, match="refused payload member 'checkpoints/paper/exp/run-b.pt': not a sound"):
        gp.unpack(tmp_path / "out1", repo)
    assert ck.read_bytes() == committed
    # the other way round: a sound checkpoint replaces one here that cannot be resumed
    ck.write_bytes(b"garbage")
    stage = _session(tmp_path, 2, 5)
    gp.pack(stage, tmp_path / "out2")
    gp.unpack(tmp_path / "out2", repo)
    assert ck.read_bytes() == (stage / "checkpoints" / "paper" / "exp" / "run-b.pt").read_bytes()


@pytest.mark.parametrize("fault", ["json not JSON", "npz not an archive", "npz missing", "npz of a pickle"])
def test_a_result_that_does_not_load_is_refused_and_the_checkpoint_survives(tmp_path, script, fault):
    """The result of run-b arrives but does not load: the committed checkpoint of run-b (the
    only state of the run) stays, and nothing is written."""
    gp = script("tools/gpu_pack.py")
    repo = tmp_path / "repo"
    ck = repo / "data" / "checkpoints" / "paper" / "exp" / "run-b.pt"
    committed = sound_checkpoint(ck, 30)
    good = {p.name: p.read_bytes() for p in sound_result(tmp_path / "good", "run-b")}
    result = {"run-b.json": good["run-b.json"], "run-b.npz": good["run-b.npz"]}
    if fault == "json not JSON":
        result["run-b.json"] = b"{not json"
    elif fault == "npz not an archive":
        result["run-b.npz"] = b"PK\x03\x04 not a zip at all"
    elif fault == "npz missing":
        del result["run-b.npz"]
    else:
        import numpy as np
        buf = io.BytesIO()
        np.savez(buf, train_loss=np.array([{"a": 1}], dtype=object))          # an object array: a pickle
        result["run-b.npz"] = buf.getvalue()
    stage = _session(tmp_path, 1, result=result)
    gp.pack(stage, tmp_path / "out1")
    with pytest.raises(ValueError, match="the result paper/exp/run-b does not load"):
        gp.unpack(tmp_path / "out1", repo)
    assert ck.read_bytes() == committed
    assert _files_under(repo / "data") == ["checkpoints/paper/exp/run-b.pt"]
    # the same run's result, sound, finishes it: the checkpoint is spent and deleted
    stage = _session(tmp_path, 2, result=good)
    gp.pack(stage, tmp_path / "out2")
    assert "deleted data/checkpoints/paper/exp/run-b.pt (its run finished)" in gp.unpack(tmp_path / "out2", repo)
    assert not ck.exists()


def test_the_limits_leave_room_for_every_pack_that_pack_makes(tmp_path, script):
    """A pack filled to its budget, with names long enough for tar's extended headers, unpacks."""
    gp = script("tools/gpu_pack.py")
    stage = tmp_path / "stage"
    sound_result(stage / "results", "r" * 150)
    for i in range(4):
        sound_checkpoint(stage / "checkpoints" / "paper" / "exp" / f"c{i}-{'x' * 150}.pt", 1, 300_000, seed=i)
    man = gp.pack(stage, tmp_path / "out", part_mib=0.2, total_mib=1.0)
    assert man["left_behind"]                                   # filled to the budget
    done = gp.unpack(tmp_path / "out", tmp_path / "repo")
    assert {f"data/{x['file']}" for x in man["payload"]} <= set(done)
