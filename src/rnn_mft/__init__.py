"""rnn_mft: the mean-field theory of gated RNNs (Gilboa et al. 2019), initializers and experiments.

Subpackages: :mod:`rnn_mft.theory` (mean-field theory), :mod:`rnn_mft.sim` (finite-width
simulations), :mod:`rnn_mft.nets` (PyTorch cells and initializers), :mod:`rnn_mft.data` (data
sets and tasks), :mod:`rnn_mft.train` (training engine and results store). They need only the
core dependencies; :mod:`rnn_mft.plotting` and :mod:`rnn_mft.experiments` need the ``plot``
extra, :mod:`rnn_mft.book` the ``book`` extra.
"""


def _version() -> str:
    """The installed distribution's version: ``version`` in pyproject.toml, its one source."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rnn_mft")
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        import re
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        m = re.search(r'(?m)^version\s*=\s*"([^"]+)"', pyproject.read_text()) if pyproject.is_file() else None
        return m.group(1) if m else "0+unknown"


__version__ = _version()

__all__ = ["__version__"]
