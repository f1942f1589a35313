"""Checks that need a CUDA device (skipped elsewhere; CI has none): CUDA-graph replay of the
training step, and the fused Triton LSTM steps, agree with the ordinary path
(tools/gpu_speed_check.py's agreement checks, with its tolerances)."""
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

@pytest.mark.parametrize("arch,untied", [("lstm", False), ("peephole_lstm", False), ("gru", False), ("lstm", True)])
def test_cuda_graphs_training_agrees_with_the_ordinary_path(arch, untied, script):
    r = script("tools/gpu_speed_check.py")._fit_pair(arch, untied, torch.device("cuda"), 4, 1e-5, "graphs")
    assert r["ok"], r


@pytest.mark.parametrize("arch,untied", [("lstm", False), ("peephole_lstm", False), ("lstm", True)])
def test_fused_triton_steps_training_agrees_with_the_ordinary_path(arch, untied, script):
    pytest.importorskip("triton")
    r = script("tools/gpu_speed_check.py")._fit_pair(arch, untied, torch.device("cuda"), 4, 1e-4, "triton")
    assert r["ok"], r
