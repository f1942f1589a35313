"""Repository-wide pytest configuration.

``pytest`` (``make test``) collects ``tests/`` and, with ``--doctest-modules``, the docstring
examples of every module under ``src/`` (see ``[tool.pytest.ini_options]`` in pyproject.toml).
Modules that need an optional extra are not collected where that extra is not installed, so
a core install (``pip install rnn_mft[test]``, without torch) still collects the docstring
examples of the theory cleanly; every other import error in ``src/`` fails the collection, as it
should.

``RNN_MFT_TEST_ARCH=path/to/module.py pytest ...`` registers that module's architecture before
collection, so that every test parametrized over the registry runs it too
(tests/test_new_architecture.py does this with a copy of the GRU).

The fixture ``script`` imports a script of the repository (``tools/gpu_pack.py``,
``benchmarks/gpu.py``) as a fresh module, for tests that call its functions. The fixture
``profile_store`` gives a stored profile's runs (``paper``, ``cpu``) smoke sizes in a results store
under the test's tmp_path, for the chapters' stored-results sections.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent
_SRC = _ROOT / "src" / "rnn_mft"

#: a path under src/rnn_mft (a module or a folder) -> the modules of the optional extras it needs
_NEEDS_EXTRA = {
    "plotting": ("matplotlib",),              # extra `plot`
    "plotting/stored.py": ("matplotlib", "torch"),   # extras `plot` and `torch` (it reads the training experiments)
    "book.py": ("yaml",),                     # extra `book`
    "cluster": ("submitit", "torch"),         # extras `cluster` and `torch` (it reads rnn_mft.train)
    # extra `torch`: the torch side of the library, and the chapters' experiments that use it
    "sim": ("torch",),
    "nets": ("torch",),
    "data": ("torch",),
    "train": ("torch",),
    "experiments/theory_chapters": ("torch",),
    "experiments/training": ("torch",),
}
#: modules never imported for doctest collection: the Triton kernels (no doctests) are bound to
#: Triton's GPU compiler when first imported unless its interpreter is on (tests/test_triton.py
#: imports them under the interpreter)
_NEVER_COLLECT = {"nets/_triton_kernels.py"}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):   # a blocked or broken module counts as missing
        return False


def pytest_configure(config):
    import os
    extra = os.environ.get("RNN_MFT_TEST_ARCH")      # the test session is this hook's entry point
    if extra:
        from rnn_mft import arch
        spec = importlib.util.spec_from_file_location(Path(extra).stem, extra)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        arch.register(mod)


def pytest_ignore_collect(collection_path, config):
    try:
        rel = Path(collection_path).resolve().relative_to(_SRC)
    except ValueError:
        return None
    if rel.as_posix() in _NEVER_COLLECT:
        return True
    path = rel.as_posix()
    for prefix, needs in _NEEDS_EXTRA.items():
        if (path == prefix or path.startswith(prefix + "/")) and not all(_installed(m) for m in needs):
            return True
    return None


@pytest.fixture
def script():
    """``script("tools/gpu_pack.py")``: that script of the repository, imported as a fresh module."""
    def load(rel: str):
        path = _ROOT / rel
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return load


@pytest.fixture
def profile_store(tmp_path, monkeypatch):
    """A writable results store, checkpoints and figures under tmp_path; returns
    ``patch(exp, profile, **changes)``, which makes ``exp.config(profile)`` the smoke
    settings (with ``changes``) named ``profile``, so that real runs of smoke sizes are stored
    under a stored profile's run names (what a GPU or CPU slice leaves), and returns that config."""
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("RNN_MFT_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("RNN_MFT_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.delenv("RNN_MFT_RESULTS_READONLY", raising=False)
    monkeypatch.delenv("RNN_MFT_STORE_SMOKE", raising=False)

    def patch(exp, profile, **changes):
        real = exp.config

        def config(p):
            if p == profile:
                return real("smoke").replace(profile=profile, **changes)
            return real(p)
        monkeypatch.setattr(exp, "config", config)
        return exp.config(profile)
    return patch
