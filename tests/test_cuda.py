"""Checks that need a CUDA device (skipped elsewhere; CI has none): CUDA-graph replay of the
training step, and the fused Triton LSTM steps, agree with the ordinary path
(tools/gpu_speed_check.py's agreement checks, with its tolerances).

Tolerances (relative; parameters relative to each tensor's largest entry): a CUDA graph replays
the same kernels in the same order, so the runs agree bitwise (measured on an H200) and 1e-5
only leaves room for rounding, even under Adam. The fused Triton steps change only the
element-wise steps, by tests/test_triton.py's STEP_RTOL (~60 u32 = 3.6e-6) per step: over T = 9
steps losses to ~3e-5, gradients (their norm, and under the SGD used there the parameters'
changes) to 3 T STEP_RTOL ~ 1e-4."""
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
