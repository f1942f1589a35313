"""The chapter "The tasks": the tasks of Section 5 as the network sees them.

``config(profile)`` (sizes of the pictures, whether to download), ``run(cfg)`` loads every task
(CIFAR-10 only where it is available: otherwise ``result["cifar_note"]`` says why and how to
provide it), ``report(cfg, result)`` the numbers of the page's prose. The pictures are
:mod:`rnn_mft.plotting.tasks`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...data import DataUnavailableError, UnrolledCIFAR10, load_task_pair
from ..protocol import Config, doc

__all__ = ["TasksConfig", "config", "run", "report", "data_note", "unavailable_note", "task_table"]


@dataclass(frozen=True)
class TasksConfig(Config):
    """Settings of the chapter "The tasks" (they only change the pictures' sizes); downloads are
    attempted only with the ``paper`` profile, the others use what the cache and the offline
    mirror hold. Defaults are ``ci``."""

    padded_T: int = doc(20, "sequence length of the padded-MNIST picture")
    repeat: int = doc(3, "repetitions per step of the repeated-pixel MNIST picture")
    n_digits: int = doc(3, "digits of the concatenated-MNIST picture")
    index: int = doc(0, "which item of each task is shown")
    download: bool = doc(False, "download missing data sets (needs network access)")
    PROFILES = {"smoke": dict(padded_T=8, repeat=2, n_digits=2), "ci": {},
                "paper": dict(padded_T=100, repeat=5, download=True)}


def config(profile: str) -> TasksConfig:
    """The settings at ``profile`` (smoke, ci or paper)."""
    return TasksConfig.for_profile(profile)


def run(cfg: TasksConfig, store=None) -> dict:
    """The training tasks of the page, by name (``padded``, ``unrolled``, ``permuted``,
    ``repeated``, ``concat``, ``cifar`` and ``cifar_plain`` or None with ``cifar_note``);
    ``store`` is not used."""
    common = dict(download=cfg.download, progressbar=False)
    out = {"padded": load_task_pair("padded_mnist", seq_len=cfg.padded_T, **common)[0],
           "unrolled": load_task_pair("unrolled_mnist", **common)[0],
           "permuted": load_task_pair("unrolled_mnist", permutation="random", **common)[0],
           "repeated": load_task_pair("repeated_pixel_mnist", repeat=cfg.repeat, **common)[0],
           "concat": load_task_pair("concatenated_mnist", n_digits=cfg.n_digits, **common)[0],
           "cifar": None, "cifar_plain": None, "cifar_note": None}
    try:
        cifar = load_task_pair("unrolled_cifar10", **common)[0]
    except DataUnavailableError as exc:
        out["cifar_note"] = unavailable_note("CIFAR-10", exc)
    else:
        out["cifar"] = cifar
        out["cifar_plain"] = UnrolledCIFAR10(cifar.data, augment=False, normalization=cifar.normalization)
    return out


def shown(result: dict) -> list:
    """The tasks of the page's table, in order."""
    names = ["padded", "unrolled", "permuted", "repeated", "concat"] + (["cifar"] if result["cifar"] else [])
    return [result[n] for n in names]


def report(cfg: TasksConfig, result: dict) -> dict:
    """The numbers of the page's prose: per task (by its name in ``run``'s result) its length
    ``T_<name>`` and input size ``size_<name>``, the mean second moment of its inputs per step
    ``m2_<name>``, and the settings (``cfg_<field>``)."""
    out = {f"cfg_{k}": v for k, v in cfg.to_dict().items()}
    for name in ("padded", "unrolled", "permuted", "repeated", "concat", "cifar"):
        t = result.get(name)
        if t is None:
            continue
        d = t.describe()
        out.update({f"T_{name}": d["seq_len"], f"size_{name}": d["input_size"],
                    f"m2_{name}": d["input_second_moment"]["mean"]})
    return out


def data_note(task) -> str:
    """A Markdown sentence saying which data a task was built from."""
    m = task.data.meta
    if m.get("source") == "mnist-test-split":
        return (f"**Data used:** the canonical MNIST *test* set (10,000 digits, offline mirror, "
                f"hash-checked), because the training set was not available here. It was split "
                f"with seed {m['split_seed']} into {m['n_train']:,} training and "
                f"{m['n_heldout']:,} held-out digits; the pictures show the training part.")
    if m.get("source") == "mnist":
        return ("**Data used:** the canonical MNIST training set (60,000 digits) and test set "
                "(10,000 digits), hash-checked.")
    if m.get("source") == "cifar10":
        return "**Data used:** CIFAR-10, binary version (50,000 training images), hash-checked."
    return f"**Data used:** {m.get('source', 'in-memory arrays')} ({len(task.data)} images)."


def unavailable_note(dataset: str, error: Exception) -> str:
    """Markdown saying that ``dataset`` could not be had, why, and how to provide it."""
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return (f"**{dataset} is not available on the machine that built this page**, so no picture "
            "is shown here. With network access the `paper` profile downloads it; offline, put "
            "the canonical file into `<mirror>/cifar10/` and set `RNN_MFT_MIRROR=<mirror>` (see "
            f"`data/README.md`). The loader said: {first}")


def task_table(tasks) -> str:
    """A Markdown table of tasks: section, T, input size, classes, items, second moment."""
    lines = ["| task | section | T | input size | classes | items | second moment per step: "
             "mean (min .. max) |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for t in tasks:
        d = t.describe()
        m = d["input_second_moment"]
        name = f"`{d['task']}`" + (" (permuted)" if d.get("permutation", "none").startswith(
            ("random", "explicit")) else "")
        lines.append(f"| {name} | {d['paper_section']} | {d['seq_len']} | "
                     f"{d['input_size']} | {d['num_classes']} | {d['n']} | "
                     f"{m['mean']:.3f} ({m['min']:.2f} .. {m['max']:.2f}) |")
    return "\n".join(lines)
