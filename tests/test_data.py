"""Data files: registry, parsers, cache/mirror/download with hash checks, offline MNIST split.

Everything runs on tiny IDX and CIFAR-10 files that the tests write into ``tmp_path``; downloads
go to a throw-away HTTP server on 127.0.0.1 (no traffic leaves the machine). One test reads the
real offline mirror ``../shared/data`` and is skipped when it is absent.
"""
from __future__ import annotations

import gzip
import http.server
import io
import json
import tarfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from rnn_mft import data as D
from rnn_mft.data import datasets as ds_mod
from rnn_mft.data import sources as fetch_mod

REPO = Path(__file__).resolve().parents[1]
REAL_MIRROR = REPO.parent / "shared" / "data"


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No environment mirrors/caches, no default mirror, a fresh failure memory."""
    for var in ("RNN_MFT_MIRROR", "RNN_MFT_DATA", "RNN_MFT_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(fetch_mod, "default_mirrors", lambda: [])
    monkeypatch.setattr(fetch_mod, "_FAILED", {})
    return tmp_path


def tiny_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def entry_for(path: Path, name=None, subdir="tiny", urls=()):
    return D.FileEntry(dataset="tiny", name=name or path.name, subdir=subdir,
                       hash="sha256:" + D.file_hash(path), urls=tuple(urls))


@pytest.fixture
def tiny_file(tmp_path):
    """A tiny gzip IDX file outside any mirror, and its registry entry."""
    src = tmp_path / "src"
    src.mkdir()
    imgs, _ = tiny_images(5)
    p = D.write_idx(src / "tiny-images-idx3-ubyte.gz", imgs)
    return p, entry_for(p)


class _Server:
    """Serve ``routes[path] = bytes`` on 127.0.0.1; ``short[path] = n`` lies about the length."""

    def __init__(self):
        self.routes, self.short = {}, {}
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = outer.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) + outer.short.get(self.path, 0)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def leftovers(folder: Path):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ------------------------------------------------------------------------------ registry
def test_registry_json_matches_package():
    on_disk = json.loads((REPO / "data" / "registry.json").read_text())
    assert on_disk == json.loads(D.registry_json())


def test_registry_entries_are_canonical():
    mnist = {e.name: e for e in D.dataset_files("mnist")}
    assert set(mnist) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
    # the offline mirror's README states these (../shared/data/README.md)
    assert mnist["t10k-images-idx3-ubyte.gz"].hash == (
        "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6")
    assert mnist["t10k-labels-idx1-ubyte.gz"].hash == (
        "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")
    (cifar,) = D.dataset_files("cifar10")
    assert cifar.name == "cifar-10-binary.tar.gz" and cifar.urls[0].startswith("https://www.cs.toronto.edu/")
    for e in [*mnist.values(), cifar]:
        assert e.urls and all(u.startswith(("http://", "https://")) for u in e.urls)
        assert e.hash.startswith("sha256:") and len(e.hash) == 7 + 64
    with pytest.raises(ValueError, match="allowed: mnist, cifar10"):
        D.get_entry("imagenet", "x")
    with pytest.raises(ValueError, match="must be 'sha256"):
        D.FileEntry("x", "a.gz", "x", "crc32:1234")


# ------------------------------------------------------------------------------- parsers
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (4, 28, 28)), (np.int32, (3, 5)),
                                         (np.float32, (7,)), (np.int16, (2, 2, 2, 2))])
def test_idx_roundtrip(tmp_path, dtype, shape):
    arr = (np.arange(np.prod(shape)) % 100).astype(dtype).reshape(shape)
    assert np.array_equal(D.parse_idx(D.encode_idx(arr)), arr)
    for name in ("a-idx.gz", "a-idx"):
        p = D.write_idx(tmp_path / name, arr)
        got = D.read_idx(p)
        assert got.dtype == np.dtype(dtype) and np.array_equal(got, arr)
    assert gzip.decompress((tmp_path / "a-idx.gz").read_bytes())[:2] == b"\0\0"


def test_idx_malformed_gives_clear_errors(tmp_path):
    good = D.encode_idx(np.zeros((3, 28, 28), np.uint8))
    cases = {
        b"": "too short",
        b"\x01\x00\x08\x03" + good[4:]: "magic",
        b"\x00\x00\x07\x03" + good[4:]: "type code 0x07",
        b"\x00\x00\x08\x00": "0 dimensions",
        good[:9]: "truncated IDX header",
        good[:-1]: "truncated",
        good + b"\0": "trailing bytes",
    }
    for data, msg in cases.items():
        with pytest.raises(D.DataFormatError, match=msg) as err:
            D.parse_idx(data, name="some-file")
        assert isinstance(err.value, ValueError) and "some-file" in str(err.value)
    # truncated on disk: the gzip stream and the IDX payload
    p = tmp_path / "trunc-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(D.DataFormatError, match="truncated gzip") as err:
        D.read_idx(p)
    assert str(p) in str(err.value)
    p.write_bytes(gzip.compress(good[:-100]))
    with pytest.raises(D.DataFormatError, match=r"header says shape \(3, 28, 28\)"):
        D.read_idx(p)
    p.write_bytes(b"not gzip at all")
    with pytest.raises(D.DataFormatError, match="not a gzip file"):
        D.read_idx(p)


def _cifar_arrays(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def test_cifar_batch_roundtrip_and_layout():
    imgs, labs = _cifar_arrays(6)
    raw = D.encode_cifar10_batch(imgs, labs)
    assert len(raw) == 6 * 3073
    # canonical layout: label byte, then 1024 R, 1024 G, 1024 B, row-major
    rec = np.frombuffer(raw, np.uint8).reshape(6, 3073)
    assert rec[2, 0] == labs[2] and rec[2, 1 + 33] == imgs[2, 1, 1, 0]
    assert rec[2, 1 + 1024 + 5] == imgs[2, 0, 5, 1] and rec[2, 1 + 2048 + 32] == imgs[2, 1, 0, 2]
    got_i, got_l = D.parse_cifar10_batch(raw)
    assert np.array_equal(got_i, imgs) and np.array_equal(got_l, labs)


def test_cifar_batch_malformed():
    imgs, labs = _cifar_arrays(3)
    raw = D.encode_cifar10_batch(imgs, labs)
    with pytest.raises(D.DataFormatError, match="b.bin.*not a whole number"):
        D.parse_cifar10_batch(raw[:-5], name="b.bin")
    with pytest.raises(D.DataFormatError, match="empty"):
        D.parse_cifar10_batch(b"")
    with pytest.raises(D.DataFormatError, match="3 CIFAR-10 records, expected 10000"):
        D.parse_cifar10_batch(raw, expected_records=10000)
    bad = bytearray(raw)
    bad[3073] = 57
    with pytest.raises(D.DataFormatError, match="record 1 has label 57"):
        D.parse_cifar10_batch(bytes(bad))


def _cifar_archive(path: Path, n_per_batch=4, members=None):
    members = members or [*D.formats.CIFAR10_TRAIN_MEMBERS, *D.formats.CIFAR10_TEST_MEMBERS]
    arrays = {}
    with tarfile.open(path, "w:gz") as tar:
        for k, m in enumerate(members):
            imgs, labs = _cifar_arrays(n_per_batch, seed=k)
            arrays[m] = (imgs, labs)
            raw = D.encode_cifar10_batch(imgs, labs)
            info = tarfile.TarInfo(m)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return arrays


def test_cifar_archive(tmp_path):
    p = tmp_path / "cifar-10-binary.tar.gz"
    arrays = _cifar_archive(p)
    tr_i, tr_l = D.read_cifar10_archive(p, "train", expected_records=4)
    assert tr_i.shape == (20, 32, 32, 3) and tr_l.shape == (20,)
    assert np.array_equal(tr_i[4:8], arrays[D.formats.CIFAR10_TRAIN_MEMBERS[1]][0])
    te_i, te_l = D.read_cifar10_archive(p, "test", expected_records=None)
    assert np.array_equal(te_l, arrays[D.formats.CIFAR10_TEST_MEMBERS[0]][1])
    with pytest.raises(D.DataFormatError, match="4 CIFAR-10 records, expected 10000"):
        D.read_cifar10_archive(p, "test")
    with pytest.raises(ValueError, match="split='valid'"):
        D.read_cifar10_archive(p, "valid")
    # a member missing (e.g. the python version of the archive)
    q = tmp_path / "other.tar.gz"
    _cifar_archive(q, members=["cifar-10-batches-py/data_batch_1"])
    with pytest.raises(D.DataFormatError, match="no member 'cifar-10-batches-bin/data_batch_1.bin'"):
        D.read_cifar10_archive(q, "train")
    # truncated archive
    t = tmp_path / "trunc.tar.gz"
    t.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(D.DataFormatError, match="trunc.tar.gz") as err:
        D.read_cifar10_archive(t, "test", expected_records=None)
    assert isinstance(err.value, ValueError)


# ---------------------------------------------------------------- cache, mirror, download
def test_cache_hit_and_corrupt_cache_is_deleted(tmp_path, tiny_file):
    path, entry = tiny_file
    cache = tmp_path / "cache"
    (cache / "tiny").mkdir(parents=True)
    target = cache / "tiny" / entry.name
    target.write_bytes(path.read_bytes())
    assert D.fetch(entry, data_dir=cache, download=False) == target
    target.write_bytes(b"corrupt")
    mirror = tmp_path / "mirror"
    (mirror / "tiny").mkdir(parents=True)
    (mirror / "tiny" / entry.name).write_bytes(path.read_bytes())
    with pytest.warns(RuntimeWarning, match="does not match"):
        got = D.fetch(entry, data_dir=cache, mirror=mirror, download=False)
    assert got == mirror / "tiny" / entry.name and not target.exists()


def test_data_dir_env_and_argument(monkeypatch, tmp_path, tiny_file):
    path, entry = tiny_file
    for d in ("env", "arg"):
        (tmp_path / d / "tiny").mkdir(parents=True)
        (tmp_path / d / "tiny" / entry.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("RNN_MFT_DATA", str(tmp_path / "env"))
    assert D.data_dir() == tmp_path / "env"
    assert D.fetch(entry, download=False).parent.parent == tmp_path / "env"
    assert D.fetch(entry, data_dir=tmp_path / "arg", download=False).parent.parent == tmp_path / "arg"


def test_mirror_lookup_order(monkeypatch, tmp_path, tiny_file):
    path, entry = tiny_file
    names = ("explicit", "env1", "env2", "default")
    for n in names:
        (tmp_path / n / "tiny").mkdir(parents=True)
        (tmp_path / n / "tiny" / entry.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(fetch_mod, "default_mirrors", lambda: [tmp_path / "default"])
    monkeypatch.setenv("RNN_MFT_MIRROR", f"{tmp_path / 'env1'}:{tmp_path / 'env2'}")
    assert D.mirror_dirs(tmp_path / "explicit") == [tmp_path / n for n in names]
    assert D.mirror_dirs(False) == []
    cache = tmp_path / "cache"

    def where(**kw):
        return D.fetch(entry, data_dir=cache, download=False, **kw).parents[1].name

    assert where(mirror=tmp_path / "explicit") == "explicit"
    assert where() == "env1"
    (tmp_path / "env1" / "tiny" / entry.name).unlink()
    assert where() == "env2"
    monkeypatch.delenv("RNN_MFT_MIRROR")
    assert where() == "default"
    # a corrupt mirror file is skipped (with a warning), never used
    (tmp_path / "explicit" / "tiny" / entry.name).write_bytes(b"bad")
    with pytest.warns(RuntimeWarning, match="skipping"):
        assert where(mirror=tmp_path / "explicit") == "default"
    with pytest.raises(D.DataUnavailableError):
        where(mirror=False)
    assert leftovers(cache) == []  # mirror files are used in place, never copied


def test_default_mirror_is_beside_the_repository(monkeypatch):
    monkeypatch.undo()  # the real default_mirrors
    mirrors = fetch_mod.default_mirrors()
    assert REPO.parent / "shared" / "data" in mirrors


def test_download_success_hash_mismatch_and_partial(tmp_path, tiny_file, server):
    path, entry = tiny_file
    body = path.read_bytes()
    server.routes["/good/" + entry.name] = body
    server.routes["/bad/" + entry.name] = body[:-3] + b"xyz"
    server.routes["/short/" + entry.name] = body[: len(body) // 2]
    server.short["/short/" + entry.name] = len(body) - len(body) // 2
    cache = tmp_path / "cache"

    # hash mismatch: an error, and nothing kept anywhere in the cache
    bad = D.FileEntry(**{**entry.__dict__, "urls": (f"{server.url}/bad/{entry.name}",)})
    with pytest.raises(D.HashMismatchError, match=entry.name) as err:
        D.fetch(bad, data_dir=cache, mirror=False, progressbar=False)
    assert isinstance(err.value, ValueError) and entry.hash in str(err.value)
    assert leftovers(cache) == ["tiny"]

    # a connection that dies half-way: an error, and no partial file
    short = D.FileEntry(**{**entry.__dict__, "urls": (f"{server.url}/short/{entry.name}",)})
    with pytest.raises((D.DataUnavailableError, D.HashMismatchError)):
        D.fetch(short, data_dir=cache, mirror=False, progressbar=False)
    assert leftovers(cache) == ["tiny"]

    # unreachable URL first, then a good one: falls through to the good one
    good = D.FileEntry(**{**entry.__dict__, "urls": ("http://127.0.0.1:9/" + entry.name,
                                                     f"{server.url}/good/{entry.name}")})
    got = D.fetch(good, data_dir=cache, mirror=False, progressbar=True)
    assert got == cache / "tiny" / entry.name and got.read_bytes() == body
    assert leftovers(cache) == ["tiny", entry.name]  # no staging folders left behind


def test_unavailable_error_names_file_hash_and_places(monkeypatch, tmp_path, tiny_file):
    path, entry = tiny_file
    monkeypatch.setattr(fetch_mod, "default_mirrors", lambda: [tmp_path / "shared" / "data"])
    e = D.FileEntry(**{**entry.__dict__, "urls": ("http://127.0.0.1:9/" + entry.name,)})
    cache = tmp_path / "cache"
    with pytest.raises(D.DataUnavailableError) as err:
        D.fetch(e, data_dir=cache, progressbar=False)
    msg = str(err.value)
    for needed in (entry.name, entry.hash, str(cache / "tiny" / entry.name),
                   str(tmp_path / "shared" / "data" / "tiny"), "RNN_MFT_MIRROR",
                   "http://127.0.0.1:9/", "ConnectionError"):
        assert needed in msg, needed
    assert isinstance(err.value, FileNotFoundError)
    assert not (cache / "tiny" / entry.name).exists()
    monkeypatch.setenv("RNN_MFT_OFFLINE", "1")
    with pytest.raises(D.DataUnavailableError, match="downloading disabled"):
        D.fetch(e, data_dir=cache)


# ---------------------------------------------------------------- MNIST and offline split
@pytest.fixture
def tiny_mnist(monkeypatch, tmp_path):
    """A mirror with a 40-digit 'test set' registered as MNIST (train set written on demand)."""
    mirror = tmp_path / "mirror"
    (mirror / "mnist").mkdir(parents=True)
    monkeypatch.setattr(ds_mod, "_MNIST_SIZES", {"train": 60, "test": 40})
    files = D.REGISTRY["mnist"]["files"]

    def add(split, n, seed):
        imgs, labs = tiny_images(n, seed)
        for (name, arr) in zip(ds_mod.MNIST_FILES[split], (imgs, labs)):
            p = D.write_idx(mirror / "mnist" / name, arr)
            monkeypatch.setitem(files, name, {**files[name], "hash": "sha256:" + D.file_hash(p),
                                              "urls": ["http://127.0.0.1:9/" + name]})
        return imgs, labs

    # training files registered but absent: their hashes must still be valid-looking
    for name in ds_mod.MNIST_FILES["train"]:
        monkeypatch.setitem(files, name, {**files[name], "urls": ["http://127.0.0.1:9/" + name]})
    test_imgs, test_labs = add("test", 40, 1)
    return mirror, add, test_imgs, test_labs


def test_offline_split_disjoint_seeded_recorded(tmp_path, tiny_mnist):
    mirror, add, imgs, labs = tiny_mnist
    kw = dict(mirror=mirror, data_dir=tmp_path / "cache", progressbar=False, n_heldout=10)
    tr, te = D.mnist_splits(**kw)
    assert (len(tr), len(te)) == (30, 10)
    for s in (tr, te):
        m = s.meta
        assert m["source"] == "mnist-test-split" and m["split_seed"] == 0
        assert (m["n_train"], m["n_heldout"]) == (30, 10) and "test set" in m["note"]
        assert set(m["files"]) == set(ds_mod.MNIST_FILES["test"])
        assert all(f["found_in"] == "mirror" for f in m["files"].values())
        json.dumps(m)
    # disjoint, and together exactly the test set
    key = lambda s: {im.tobytes() for im in s.images}  # noqa: E731
    assert not key(tr) & key(te) and key(tr) | key(te) == {im.tobytes() for im in imgs}
    # seeded: same seed same split, other seed other split; load_mnist agrees with mnist_splits
    tr2 = D.load_mnist("train", **kw)
    assert np.array_equal(tr2.images, tr.images) and tr2.meta == tr.meta
    te2 = D.load_mnist("test", **kw)
    assert np.array_equal(te2.labels, te.labels)
    tr3 = D.load_mnist("train", split_seed=1, **kw)
    assert tr3.meta["indices_sha256"] != tr.meta["indices_sha256"]
    # refusing the split: the training set is required, and "test" is the whole test set
    with pytest.raises(D.DataUnavailableError, match="train-images-idx3-ubyte.gz"):
        D.load_mnist("train", allow_test_split=False, **kw)
    full = D.load_mnist("test", allow_test_split=False, **kw)
    assert full.meta["source"] == "mnist" and np.array_equal(full.images, imgs)
    # once the training set is available, the canonical splits are used
    add("train", 60, 2)
    tr4, te4 = D.mnist_splits(**kw)
    assert tr4.meta["source"] == te4.meta["source"] == "mnist"
    assert (len(tr4), len(te4)) == (60, 40)
    with pytest.raises(ValueError, match="split='val'"):
        D.load_mnist("val", **kw)


def test_mnist_wrong_shape_is_rejected(monkeypatch, tmp_path, tiny_mnist):
    mirror, add, *_ = tiny_mnist
    monkeypatch.setattr(ds_mod, "_MNIST_SIZES", {"train": 60, "test": 41})
    with pytest.raises(D.DataFormatError, match=r"expected uint8 images of shape \(41, 28, 28\)"):
        D.load_mnist("test", allow_test_split=False, mirror=mirror, data_dir=tmp_path / "c")


def test_cifar_loader_from_mirror(monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "cifar10").mkdir(parents=True)
    p = mirror / "cifar10" / "cifar-10-binary.tar.gz"
    arrays = _cifar_archive(p, n_per_batch=3)
    files = D.REGISTRY["cifar10"]["files"]
    monkeypatch.setitem(files, p.name, {**files[p.name], "hash": "sha256:" + D.file_hash(p)})
    monkeypatch.setattr(ds_mod, "read_cifar10_archive",
                        lambda path, split: D.read_cifar10_archive(path, split, expected_records=3))
    tr = D.load_cifar10("train", mirror=mirror, data_dir=tmp_path / "c", download=False)
    te = D.load_cifar10("test", mirror=mirror, data_dir=tmp_path / "c", download=False)
    assert tr.images.shape == (15, 32, 32, 3) and len(te) == 3
    assert tr.meta["source"] == "cifar10" and te.meta["split"] == "test"
    assert np.array_equal(te.labels, arrays[D.formats.CIFAR10_TEST_MEMBERS[0]][1])


@pytest.mark.skipif(not (REAL_MIRROR / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="the offline mirror ../shared/data is not present")
def test_real_mirror(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        te = D.load_mnist("test", allow_test_split=False, mirror=REAL_MIRROR,
                          data_dir=tmp_path / "c", download=False)
    assert te.images.shape == (10000, 28, 28) and te.images.dtype == np.uint8
    # label counts stated in ../shared/data/README.md
    assert np.bincount(te.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                               974, 1009]
    for name in ds_mod.MNIST_FILES["test"]:
        assert D.file_hash(REAL_MIRROR / "mnist" / name, "md5") == \
            D.REGISTRY["mnist"]["files"][name]["md5"]
