"""Optional dependencies: a clear error where a subpackage needs one that is not installed.

The core install (``pip install rnn_mft``: numpy, scipy, pooch, tqdm) covers :mod:`rnn_mft.theory`,
:mod:`rnn_mft.arch` and the ``rnn-mft theory`` / ``rnn-mft solve`` commands. The torch side,
:mod:`rnn_mft.sim`, :mod:`rnn_mft.nets`, :mod:`rnn_mft.data` and :mod:`rnn_mft.train`, needs the
``torch`` extra; each of them calls :func:`require_torch` first, so that importing it without
torch says what to install instead of failing somewhere inside.
"""
from __future__ import annotations

__all__ = ["TORCH_EXTRA", "require_torch"]

#: what installs the torch side
TORCH_EXTRA = "pip install 'rnn_mft[torch]'"


def require_torch(package: str) -> None:
    """Import torch, or raise :class:`ModuleNotFoundError` (an :class:`ImportError`, with
    ``name="torch"``) naming ``package`` and the extra that installs it. Any other error from
    importing an installed torch (a broken build, a missing shared library) is raised as it is."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        raise ModuleNotFoundError(
            f"{package} needs PyTorch, which the core install of rnn_mft does not include: "
            f"{TORCH_EXTRA} (rnn_mft.theory, rnn_mft.arch and the rnn-mft theory and solve commands "
            "work without it)", name="torch") from exc
