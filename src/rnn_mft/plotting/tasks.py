"""Pictures of what the network sees in each task of Section 5 (chapter "The tasks").

Every function takes a task from :mod:`rnn_mft.data.tasks` and an item index, draws the input
sequence exactly as the task produces it (normalised values, time along the horizontal axis),
and returns the figure. The chapter's settings, data and tables are
:mod:`rnn_mft.experiments.theory_chapters.tasks`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_padded_mnist", "plot_unrolled_mnist", "plot_repeated_pixel_mnist", "plot_concatenated_mnist",
           "plot_unrolled_cifar10"]

_CMAP = "gray"


def _vlim(*arrays):
    v = max(float(np.abs(a).max()) for a in arrays)
    return -v, v


def plot_padded_mnist(task, index: int = 0, n_show: int = 5):
    """Padded MNIST (5.1.1): the first steps and the last step as 28x28 tiles, and the
    per-step second moment of the whole sequence."""
    x, y = task[index]
    x = x.numpy()
    T = len(x)
    steps = list(range(min(n_show, T)))
    if T - 1 not in steps:
        steps.append(T - 1)
    fig = plt.figure(figsize=(1.25 * len(steps) + 0.6, 3.6))
    gs = fig.add_gridspec(2, len(steps), height_ratios=[1.0, 0.8])
    lo, hi = _vlim(x[0])
    for k, t in enumerate(steps):
        ax = fig.add_subplot(gs[0, k])
        ax.imshow(x[t].reshape(28, 28), cmap=_CMAP, vmin=lo, vmax=hi)
        ax.set_xticks([])
        ax.set_yticks([])
        gap = k > 0 and t != steps[k - 1] + 1
        ax.set_title(("... " if gap else "") + f"$t={t + 1}$" + (" (digit)" if t == 0 else ""))
    ax = fig.add_subplot(gs[1, :])
    m2 = (x ** 2).mean(1)
    ax.plot(np.arange(1, T + 1), m2, "o-", ms=3, lw=1, color="tab:red")
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set_xlabel("time step $t$")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(r"$\|z^t\|^2/784$")
    ax.set_title(f"label {int(y)}; this item's per-step second moment (the theory assumes 1)")
    return fig


def plot_unrolled_mnist(task, index: int = 0, permuted=None):
    """Unrolled MNIST (5.2.1): the digit and its 784-step pixel stream (and, if given, the
    same digit in a permuted task)."""
    rows = [task] + ([permuted] if permuted is not None else [])
    fig, axes = plt.subplots(len(rows), 2, figsize=(8.0, 1.9 * len(rows)),
                             gridspec_kw={"width_ratios": [1, 6]}, squeeze=False)
    img = task[index][0].numpy()[:, 0]
    lo, hi = _vlim(img)
    for r, t in enumerate(rows):
        s = t[index][0].numpy()[:, 0]
        axes[r, 0].imshow(img.reshape(28, 28), cmap=_CMAP, vmin=lo, vmax=hi)
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        ax = axes[r, 1]
        ax.plot(np.arange(1, len(s) + 1), s, lw=0.7, color="tab:blue")
        kind = "row-major order" if t.permutation is None else "fixed random permutation"
        ax.set_title(f"input $z^t$, one pixel per step, {kind}")
        ax.set_xlim(1, len(s))
        ax.set_ylabel("$z^t$")
    axes[-1, 1].set_xlabel("time step $t$")
    axes[0, 0].set_title(f"label {int(task[index][1])}")
    return fig


def plot_repeated_pixel_mnist(task, index: int = 0, zoom: int = 12):
    """Repeated-pixel MNIST (5.2.2): the whole (input_size x T) stream and a zoom on its start."""
    x, y = task[index]
    x = x.numpy()
    T, d = x.shape
    lo, hi = _vlim(x)
    fig, axes = plt.subplots(2, 1, figsize=(8.0, 3.4))
    axes[0].imshow(x.T, aspect="auto", cmap=_CMAP, vmin=lo, vmax=hi, interpolation="nearest",
                   extent=(0.5, T + 0.5, d - 0.5, -0.5))
    axes[0].set_title(f"label {int(y)}: {T // task.repeat} steps of {d} pixels, each repeated "
                      f"r = {task.repeat} times, T = {T}")
    axes[0].set_ylabel("input unit")
    # zoom on the first steps that carry ink (the top rows of a digit are blank)
    r = task.repeat
    ink = np.flatnonzero(np.ptp(x, axis=1) > 0)
    start = max(0, (int(ink[0]) // r - 2) * r) if len(ink) else 0
    n = min(T - start, zoom * r)
    axes[1].imshow(x[start:start + n].T, aspect="auto", cmap=_CMAP, vmin=lo, vmax=hi,
                   interpolation="nearest", extent=(start + 0.5, start + n + 0.5, d - 0.5, -0.5))
    for b in np.arange(start + r, start + n, r):
        axes[1].axvline(b + 0.5, color="tab:red", lw=0.5)
    axes[1].set_title(f"zoom on steps {start + 1}..{start + n}: blocks of {r} identical steps")
    axes[1].set_xlabel("time step $t$")
    axes[1].set_ylabel("input unit")
    return fig


def plot_concatenated_mnist(task, index: int = 0):
    """Concatenated MNIST (5.2.2): the digits of one item and its (input_size x T) stream."""
    x, y = task[index]
    x = x.numpy()
    bits, imgs = task.draws(index)
    n = task.n_digits
    per = task.steps_per_digit * task.repeat
    lo, hi = _vlim(x)
    fig = plt.figure(figsize=(8.0, 3.6))
    gs = fig.add_gridspec(2, n, height_ratios=[1.0, 1.3])
    for k in range(n):
        ax = fig.add_subplot(gs[0, k])
        ax.imshow(task._z(task.data.images[imgs[k]]), cmap=_CMAP, vmin=lo, vmax=hi)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"digit {k + 1}: {task.digits[bits[k]]}")
    ax = fig.add_subplot(gs[1, :])
    ax.imshow(x.T, aspect="auto", cmap=_CMAP, vmin=lo, vmax=hi, interpolation="nearest",
              extent=(0.5, len(x) + 0.5, x.shape[1] - 0.5, -0.5))
    for k in range(1, n):
        ax.axvline(k * per + 0.5, color="tab:red", lw=1)
    code = "".join(str(task.digits[b]) for b in bits)
    lab = (f"label {int(y)} = tuple {code} read in binary" if task.label_mode == "tuple"
           else f"label {int(y)} = product of the digits")
    ax.set_title(f"{lab}; {task.steps_per_digit} steps of {task.input_size} pixels per digit, "
                 f"each repeated {task.repeat} times, T = {len(x)}")
    ax.set_xlabel("time step $t$")
    ax.set_ylabel("input unit")
    return fig


def plot_unrolled_cifar10(task, index: int = 0, plain=None):
    """Unrolled CIFAR-10 (5.2.1): the (augmented) image and its 1024-step, 3-channel stream."""
    x, y = task[index]
    x = x.numpy()
    ims = [("augmented" if task.augment else "as fed", x)]
    if plain is not None:
        ims.insert(0, ("original", plain[index][0].numpy()))
    fig = plt.figure(figsize=(8.0, 3.2))
    gs = fig.add_gridspec(2, 1 + len(ims), width_ratios=[1] * len(ims) + [4])
    mean, std = np.array(task.normalization.mean), np.array(task.normalization.std)
    for k, (title, arr) in enumerate(ims):
        ax = fig.add_subplot(gs[:, k])
        img = arr.reshape(32, 32, 3) * std + mean  # back to v/255 for display
        ax.imshow(np.clip(img, 0, 1))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title)
    ax = fig.add_subplot(gs[:, -1])
    for c, col in enumerate(("tab:red", "tab:green", "tab:blue")):
        ax.plot(np.arange(1, 1025), x[:, c], lw=0.5, color=col, label="RGB"[c])
    ax.set_xlim(1, 1024)
    ax.set_xlabel("time step $t$ (pixel, row-major)")
    ax.set_title(f"class {int(y)}: 3 normalised channels per step")
    ax.legend(loc="upper right", ncol=3, fontsize=7)
    return fig
