"""The sequence tasks of Section 5: shapes, lengths, labels, normalisation, determinism.

Built on small synthetic image sets (no files needed); one test uses the real offline mirror
``../shared/data`` and is skipped when it is absent.

Tolerances: inputs are float32 (u32 = 2**-24) normalised pixels, |z| <= ~4; against the float64
reference z_of they differ by the float32 rounding of the look-up value, ~u32 |z| < 3e-7 (atol
1e-5). The normalisation is fitted in float64 so that the mean second moment is 1; in float32
batches z^2 rounds by ~3 u32 and torch's cascaded sum adds ~log2(n) u32 per value: < 2e-6
(abs 1e-4, 1e-5 for the mean); moments the library computes in float64 are 1 to ~n u64 (abs
1e-6). Noise statistics are Monte Carlo, 5 standard errors.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rnn_mft import data as D

REPO = Path(__file__).resolve().parents[1]
REAL_MIRROR = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def mnist():
    rng = np.random.default_rng(0)
    n = 60
    imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    imgs[:, :2] = 0  # constant border rows, as in MNIST
    return D.ImageSet.from_arrays(imgs, np.arange(n) % 10)


@pytest.fixture(scope="module")
def mnist_test():
    rng = np.random.default_rng(1)
    return D.ImageSet.from_arrays(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
                                  np.arange(20) % 10, split="test")


@pytest.fixture(scope="module")
def cifar():
    rng = np.random.default_rng(2)
    return D.ImageSet.from_arrays(rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8),
                                  np.arange(12) % 10, dataset="cifar10")


def z_of(task, images):
    """Independent reference for the normalisation: (v/255 - mean)/std per channel."""
    m, s = np.array(task.normalization.mean), np.array(task.normalization.std)
    return ((images.astype(np.float64) / 255 - (m if images.ndim == 4 else m[0]))
            / (s if images.ndim == 4 else s[0]))


def check_common(task, n, seq_len, input_size, num_classes):
    assert len(task) == n
    assert (task.seq_len, task.input_size, task.num_classes) == (seq_len, input_size, num_classes)
    x, y = task[0]
    assert x.shape == (seq_len, input_size) and x.dtype == torch.float32
    assert y.shape == () and y.dtype == torch.int64 and 0 <= int(y) < num_classes
    X, Y = task.batch([3, 0, 1])
    assert X.shape == (3, seq_len, input_size) and Y.shape == (3,)
    # an item is the same whichever way it is produced
    assert torch.equal(X[1], x) and int(Y[1]) == int(y)
    assert torch.equal(task.batch([0])[0][0], x)
    x2, y2 = task[-n]
    assert torch.equal(x2, x)
    with pytest.raises(IndexError):
        task[n]
    d = task.describe()
    json.dumps(d)
    assert d["task"] == task.name and d["paper_section"].startswith("5.")
    assert d["seq_len"] == seq_len and d["data"]["source"] == task.data.meta["source"]
    return x, y


# -------------------------------------------------------------------------------- padded
def test_padded_mnist(mnist):
    t = D.PaddedMNIST(mnist, seq_len=6, seed=3)
    x, y = check_common(t, 60, 6, 784, 10)
    assert int(y) == mnist.labels[0]
    assert np.allclose(x[0].numpy(), z_of(t, mnist.images[0]).ravel(), atol=1e-5)
    # normalisation: the digit step has second moment exactly 1 over the data set
    X, _ = t.batch(range(60))
    assert float((X[:, 0] ** 2).mean()) == pytest.approx(1.0, abs=1e-4)
    assert float(X[:, 0].mean()) == pytest.approx(0.0, abs=1e-5)
    # noise: N(0,1) (60*5*784 = 235,200 draws: 5 sigma on the mean is 0.01, on the var 0.015)
    noise = X[:, 1:]
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.var()) - 1) < 0.015
    m2 = t.describe()["input_second_moment"]
    assert m2["mean"] == pytest.approx(1.0, abs=1e-4) and m2["first_step"] == pytest.approx(1, abs=1e-4)
    # different items have different noise; T = 1 is the bare digit
    assert not torch.equal(X[0, 1:], X[1, 1:])
    assert D.PaddedMNIST(mnist, seq_len=1)[0][0].shape == (1, 784)
    assert D.PaddedMNIST(mnist, seq_len=4, noise_std=0.0)[0][0][1:].abs().max() == 0


def test_padded_mnist_determinism(mnist, mnist_test):
    a = D.PaddedMNIST(mnist, seq_len=5, seed=7)
    b = D.PaddedMNIST(mnist, seq_len=5, seed=7)
    assert torch.equal(a[4][0], b[4][0])
    assert torch.equal(a.batch([4, 9])[0][0], b.batch([9, 4])[0][1])  # order-independent
    assert not torch.equal(a[4][0], D.PaddedMNIST(mnist, seq_len=5, seed=8)[4][0])
    b.set_epoch(1)
    assert not torch.equal(a[4][0][1:], b[4][0][1:]) and torch.equal(a[4][0][0], b[4][0][0])
    b.set_epoch(0)
    assert torch.equal(a[4][0], b[4][0])
    # the test split draws other noise than the training split at the same index and seed
    c = D.PaddedMNIST(mnist_test, seq_len=5, seed=7, normalization=a.normalization)
    assert not torch.equal(a[0][0][1:], c[0][0][1:])
    assert c.normalization == a.normalization


# ------------------------------------------------------------------------------ unrolled
def test_unrolled_mnist(mnist):
    t = D.UnrolledMNIST(mnist)
    x, y = check_common(t, 60, 784, 1, 10)
    assert np.allclose(x[:, 0].numpy(), z_of(t, mnist.images[0]).ravel(), atol=1e-5)
    m2 = t.input_second_moments()
    assert m2.shape == (784,) and m2.mean() == pytest.approx(1.0, abs=1e-6)
    assert m2[0] == pytest.approx(t.normalization.mean[0] ** 2 / t.normalization.std[0] ** 2)
    p = D.UnrolledMNIST(mnist, permutation="random", permutation_seed=5)
    q = D.UnrolledMNIST(mnist, permutation="random", permutation_seed=5)
    assert np.array_equal(p.permutation, q.permutation)
    assert not np.array_equal(p.permutation, np.arange(784))
    for i in (0, 7):  # one fixed permutation for every item
        assert torch.equal(p[i][0][:, 0], t[i][0][p.permutation, 0])
    e = D.UnrolledMNIST(mnist, permutation=np.arange(784)[::-1])
    assert torch.equal(e[2][0][:, 0], t[2][0].flip(0)[:, 0])
    assert p.describe()["permutation"] == "random, seed 5"
    for bad in ("sorted", np.arange(783), np.zeros(784, int)):
        with pytest.raises(ValueError, match="permutation"):
            D.UnrolledMNIST(mnist, permutation=bad)


# ------------------------------------------------------------------------------ repeated
@pytest.mark.parametrize("r", [1, 3])
def test_repeated_pixel_mnist(mnist, r):
    t = D.RepeatedPixelMNIST(mnist, repeat=r)
    x, _ = check_common(t, 60, 112 * r, 7, 10)
    pix = z_of(t, mnist.images[0]).ravel()
    xs = x.numpy()
    for k in (0, 50, 111):
        for j in range(r):
            assert np.allclose(xs[k * r + j], pix[7 * k:7 * k + 7], atol=1e-5)
    assert t.input_second_moments().mean() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="repeat=0"):
        D.RepeatedPixelMNIST(mnist, repeat=0)
    with pytest.raises(ValueError, match="input_size=5.*divisor of 784"):
        D.RepeatedPixelMNIST(mnist, repeat=2, input_size=5)


# -------------------------------------------------------------------------- concatenated
def test_concatenated_mnist(mnist):
    t = D.ConcatenatedMNIST(mnist, n_digits=3, seed=1)
    n01 = int(np.isin(mnist.labels, (0, 1)).sum())
    x, y = check_common(t, n01, 3 * 7 * 10, 112, 8)
    X, Y = t.batch(range(len(t)))
    for i in range(len(t)):
        bits, imgs = t.draws(i)
        assert np.array_equal(mnist.labels[imgs], np.array((0, 1))[bits])
        assert int(Y[i]) == int("".join(map(str, bits)), 2)  # first digit most significant
    bits, imgs = t.draws(0)
    xs = X[0].numpy()
    for d in range(3):
        z = z_of(t, mnist.images[imgs[d]]).ravel().reshape(7, 112)
        block = xs[d * 70:(d + 1) * 70]
        for s in range(7):
            for j in range(10):
                assert np.allclose(block[s * 10 + j], z[s], atol=1e-5)
    # classes are fair coins: every label shows up, and the normalisation is fitted on the two
    # classes weighted equally, so the average second moment is 1
    big = D.ConcatenatedMNIST(mnist, n_digits=3, seed=1, length=800)
    counts = np.bincount(big.batch(range(800))[1].numpy(), minlength=8)
    assert counts.min() > 60  # 100 expected per class; 4 sigma is ~37
    assert t.input_second_moments().mean() == pytest.approx(1.0, abs=1e-6)
    # deterministic under the seed
    assert torch.equal(D.ConcatenatedMNIST(mnist, n_digits=3, seed=1)[5][0], t[5][0])
    assert not torch.equal(D.ConcatenatedMNIST(mnist, n_digits=3, seed=2)[5][0], t[5][0])
    prod = D.ConcatenatedMNIST(mnist, n_digits=3, seed=1, label_mode="product", length=50)
    assert prod.num_classes == 2 and len(prod) == 50
    P = prod.batch(range(50))[1]
    assert all(int(P[i]) == int(prod.draws(i)[0].all()) for i in range(50))
    with pytest.raises(ValueError, match="label_mode"):
        D.ConcatenatedMNIST(mnist, label_mode="sum")
    with pytest.raises(ValueError, match="n_digits=0"):
        D.ConcatenatedMNIST(mnist, n_digits=0)


# --------------------------------------------------------------------------------- CIFAR
def test_unrolled_cifar10_plain(cifar):
    t = D.UnrolledCIFAR10(cifar, augment=False)
    x, _ = check_common(t, 12, 1024, 3, 10)
    assert np.allclose(x.numpy(), z_of(t, cifar.images[:1])[0].reshape(1024, 3), atol=1e-5)
    X, _ = t.batch(range(12))
    assert np.allclose((X ** 2).mean((0, 1)).numpy(), 1.0, atol=1e-4)  # per channel
    assert D.UnrolledCIFAR10(cifar).augment  # training split: augmented by default
    te = D.ImageSet.from_arrays(cifar.images, cifar.labels, dataset="cifar10", split="test")
    assert not D.UnrolledCIFAR10(te).augment


def test_unrolled_cifar10_augmentation(cifar):
    t = D.UnrolledCIFAR10(cifar, augment=True, seed=4)
    plain = D.UnrolledCIFAR10(cifar, augment=False, normalization=t.normalization)
    lut_inv = lambda x: x.numpy().reshape(32, 32, 3)  # noqa: E731
    pad_val = (0 - np.array(t.normalization.mean)) / np.array(t.normalization.std)
    flips = 0
    for i in range(12):
        got = lut_inv(t[i][0])
        img = lut_inv(plain[i][0])
        padded = np.broadcast_to(pad_val, (40, 40, 3)).copy()
        padded[4:36, 4:36] = img
        hits = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (0, 1)
                if np.allclose((padded[dy:dy + 32, dx:dx + 32])[:, ::-1 if f else 1], got,
                               atol=1e-5)]
        assert hits, f"item {i} is not a flipped/unflipped crop of the padded image"
        flips += any(f for *_, f in hits)
    assert 0 < flips < 12
    t2 = D.UnrolledCIFAR10(cifar, augment=True, seed=4)
    assert torch.equal(t[3][0], t2[3][0])
    t2.set_epoch(1)
    assert any(not torch.equal(t[i][0], t2[i][0]) for i in range(12))


# ------------------------------------------------------------------ batching and loaders
def test_batches_and_dataloader(mnist):
    t = D.RepeatedPixelMNIST(mnist, repeat=2, seed=0)
    seen = torch.cat([y for _, y in t.batches(16, shuffle=False)])
    assert torch.equal(seen, torch.as_tensor(mnist.labels))
    e1 = [y for _, y in t.batches(16, seed=3)]
    e2 = [y for _, y in t.batches(16, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(e1, e2))
    assert sorted(torch.cat(e1).tolist()) == sorted(mnist.labels.tolist())
    assert [len(y) for _, y in t.batches(16, drop_last=True)] == [16, 16, 16]
    with pytest.raises(ValueError, match="batch_size=0"):
        next(t.batches(0))
    xs, ys = next(iter(DataLoader(t, batch_size=8, shuffle=False)))
    X, Y = t.batch(range(8))
    assert torch.equal(xs, X) and torch.equal(ys, Y)
    # the batched loader: same batches, whole batches per call
    xl, yl = next(iter(t.loader(8, shuffle=False)))
    assert torch.equal(xl, X) and torch.equal(yl, Y)
    assert torch.equal(t[[0, 1]][0], X[:2]) and torch.equal(t[np.array([5])][1], Y[5:6])
    order = torch.cat([y for _, y in t.loader(16, seed=1)])
    assert sorted(order.tolist()) == sorted(mnist.labels.tolist())
    assert torch.equal(order, torch.cat([y for _, y in t.loader(16, seed=1)]))
    # worker processes get identical items (the dataset pickles, items depend on indices only)
    p = D.PaddedMNIST(mnist, seq_len=3, seed=2)
    xw, yw = next(iter(DataLoader(p, batch_size=4, num_workers=1)))
    assert torch.equal(xw, p.batch(range(4))[0]) and torch.equal(yw, p.batch(range(4))[1])
    xw, yw = next(iter(p.loader(4, shuffle=False, num_workers=1)))
    assert torch.equal(xw, p.batch(range(4))[0])


def test_bad_arguments(mnist, cifar):
    with pytest.raises(ValueError, match="seq_len=0"):
        D.PaddedMNIST(mnist, seq_len=0)
    with pytest.raises(ValueError, match="noise_std"):
        D.PaddedMNIST(mnist, seq_len=2, noise_std=-1)
    with pytest.raises(ValueError, match="seed=-1"):
        D.PaddedMNIST(mnist, seq_len=2, seed=-1)
    with pytest.raises(ValueError, match=r"images of shape \(n, 28, 28\)"):
        D.PaddedMNIST(cifar, seq_len=2)
    with pytest.raises(ValueError, match=r"images of shape \(n, 32, 32, 3\)"):
        D.UnrolledCIFAR10(mnist)
    with pytest.raises(ValueError, match="normalization="):
        D.UnrolledMNIST(mnist, normalization="zscore")
    with pytest.raises(ValueError, match="unknown task 'mnist'"):
        D.load_task_pair("mnist")
    with pytest.raises(ValueError, match="split='dev'"):
        D.load_task("padded_mnist", split="dev")


def test_normalization_none_and_fit():
    imgs = np.zeros((2, 28, 28), np.uint8)
    imgs[0] = 255
    n = D.Normalization.fit(imgs)
    assert n.mean == (0.5,) and n.std == (0.5,)
    assert np.allclose(n.lut()[[0, 255], 0], [-1, 1])
    ident = D.Normalization.identity()
    assert np.allclose(ident.lut()[[0, 255], 0], [0, 1])
    t = D.UnrolledMNIST(D.ImageSet.from_arrays(imgs, [0, 1]), normalization=None)
    assert float(t[0][0].min()) == 1.0


@pytest.mark.skipif(not (REAL_MIRROR / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="the offline mirror ../shared/data is not present")
def test_tasks_on_the_real_mirror(tmp_path):
    tr, te = D.load_task_pair("padded_mnist", seq_len=3, mirror=REAL_MIRROR,
                              data_dir=tmp_path / "cache", download=False)
    assert te.normalization == tr.normalization
    d = tr.describe()
    assert d["data"]["source"] in ("mnist", "mnist-test-split")
    if d["data"]["source"] == "mnist-test-split":
        assert (len(tr), len(te)) == (8000, 2000)
    assert d["input_second_moment"]["first_step"] == pytest.approx(1.0, abs=1e-6)
    x, y = tr[0]
    assert x.shape == (3, 784) and 0 <= int(y) <= 9
