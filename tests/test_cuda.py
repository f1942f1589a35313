"""Checks that need a CUDA device (skipped elsewhere; CI has none): CUDA-graph replay of the
training step agrees with the ordinary path (tools/gpu_graphs_check.py's agreement checks)."""
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("arch,untied", [("lstm", False), ("peephole_lstm", False), ("gru", False), ("lstm", True)])
def test_cuda_graphs_training_agrees_with_the_ordinary_path(arch, untied):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gpu_graphs_check
    finally:
        sys.path.pop(0)
    r = gpu_graphs_check._fit_pair(arch, untied, torch.device("cuda"), 4, 1e-5)
    assert r["ok"], r
