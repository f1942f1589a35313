"""The top-level package: `import rnn_mft` is cheap, re-exports the public API lazily, and the
theory names never pull in torch (nor the plotting extra)."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "scipy", "torch", "matplotlib")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY modules in sys.modules after running ``code`` in a fresh interpreter."""
    probe = code + f"\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    return [m for m in proc.stdout.strip().split(",") if m]


def test_import_is_cheap():
    """`import rnn_mft` imports none of numpy, scipy, torch, matplotlib."""
    assert _loaded_after("import rnn_mft; rnn_mft.__version__") == []


def test_theory_names_do_not_import_torch():
    code = ("import rnn_mft\nth = rnn_mft.Theta.standard('gru')\n"
            "r = rnn_mft.analyze('gru', th, sigma_z=1.0)\nassert 0 < float(r.xi) < float('inf')\n"
            "rnn_mft.solve_for_timescale, rnn_mft.AnalysisResult, rnn_mft.reference_step")
    loaded = _loaded_after(code)
    assert "numpy" in loaded and "torch" not in loaded and "matplotlib" not in loaded, loaded


def test_torch_side_names_load_torch():
    """The probe can fail: a torch-side name does import torch (the check above is not vacuous)."""
    assert "torch" in _loaded_after("import rnn_mft; rnn_mft.critical_init_")


def test_every_export_is_the_subpackage_object():
    import rnn_mft

    for name, pkg in rnn_mft._EXPORTS.items():
        mod = importlib.import_module(f"rnn_mft.{pkg}")
        assert name in mod.__all__, f"rnn_mft.{name}: not public in rnn_mft.{pkg}"
        assert getattr(rnn_mft, name) is getattr(mod, name), name
    for name in ("Theta", "analyze", "solve_for_timescale", "critical_init_", "make", "AnalysisResult",
                 "__version__"):
        assert name in rnn_mft.__all__, name
    assert set(rnn_mft.__all__) <= set(dir(rnn_mft))
    assert rnn_mft.make is rnn_mft.nets.make            # make: the cell factory of rnn_mft.nets


def test_unknown_name_is_an_attribute_error():
    import rnn_mft

    with pytest.raises(AttributeError, match="no attribute 'analyse'"):
        rnn_mft.analyse
