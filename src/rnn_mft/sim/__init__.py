"""Finite-width simulation of random recurrent networks, to test the mean-field theory.

Networks are drawn exactly as :class:`~rnn_mft.theory.Theta` says and run in float64 with
PyTorch (batched over independent seeds). See :func:`simulate_pair` (moments of two copies fed
correlated inputs, every architecture of Table 1), :func:`jacobian` (state-to-state Jacobians
of untied networks) and :func:`simulate_cell_state` (LSTM cell states, Figure 7),
:func:`tangent_decay` / :func:`correlation_decay` (ground-truth LSTM time scales from the exact
(h, c) tangent of untied networks).
"""
from .._deps import require_torch

require_torch(__name__)      # without torch: an ImportError naming the extra [torch]

from .networks import SimResult, simulate_pair, STEPS, simulate_cell_state
from .jacobian import jacobian, squared_singular_values
from .lstm_tangent import TangentDecay, tangent_decay, CorrelationDecay, correlation_decay

__all__ = ["SimResult", "simulate_pair", "STEPS", "jacobian", "squared_singular_values", "simulate_cell_state",
           "TangentDecay", "tangent_decay", "CorrelationDecay", "correlation_decay"]
