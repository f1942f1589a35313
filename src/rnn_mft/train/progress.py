"""Progress of a training run (:func:`rnn_mft.train.fit`): whether to draw a bar, and the bar.

Bars are ``tqdm.auto`` (a widget in Jupyter when ipywidgets is installed, text otherwise), on by
default on a terminal and inside a Jupyter kernel (a notebook, papermill, the book's build), off
when stderr is not a terminal outside Jupyter (CI logs, job workers); the ``progress`` setting
(``RNN_MFT_PROGRESS=0/1``) or ``TrainConfig(progress=...)`` decides instead when given.
"""
from __future__ import annotations

import sys
import warnings

from ..settings import Settings, current as current_settings

__all__ = ["progress_enabled", "progress_bar", "NoBar"]


def _in_jupyter_kernel() -> bool:
    """This process is a Jupyter kernel (IPython's ZMQ shell: a notebook, papermill, Colab)."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    try:
        from ipykernel.zmqshell import ZMQInteractiveShell

        return isinstance(sys.modules["IPython"].get_ipython(), ZMQInteractiveShell)
    except Exception:                # a half-imported or unusual IPython: not a kernel we know
        return False


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_enabled(flag: bool | None = None, settings: Settings | None = None) -> bool:
    """Whether to draw progress bars (see the module docstring): ``flag`` when given, else the
    ``progress`` setting (``$RNN_MFT_PROGRESS``) of ``settings`` (default: the current ones), else
    whether this is a Jupyter kernel or stderr is a terminal."""
    if flag is not None:
        return bool(flag)
    env = (settings if settings is not None else current_settings()).progress
    if env is not None:
        return env
    return _in_jupyter_kernel() or _stderr_is_terminal()


def progress_bar(total: int, initial: int, desc: str | None, enabled: bool):
    """A ``tqdm.auto`` bar (:func:`progress_enabled` says whether), cleared when closed; off a
    terminal it redraws at most every 5 s (a widget: every second), so that a notebook executed by
    papermill does not fill with redraws. Without tqdm: no bar."""
    if not enabled:
        return NoBar()
    try:
        with warnings.catch_warnings():
            # tqdm.auto in a kernel without ipywidgets warns "IProgress not found" and draws text
            warnings.simplefilter("ignore")
            from tqdm.auto import tqdm
    except ImportError:              # tqdm is only for progress bars; machines without it train without them
        return NoBar()
    widget = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)
    every = 0.1 if _stderr_is_terminal() else 1.0 if widget else 5.0
    return tqdm(total=total, initial=initial, desc=desc, leave=False, mininterval=every)


class NoBar:
    """What :func:`progress_bar` returns when bars are off: a bar that draws nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass
