"""Finite-width simulation of random recurrent networks, to test the mean-field theory.

Networks are drawn exactly as :class:`~rnn_mft.theory.Theta` says and run in float64 with
PyTorch (batched over independent seeds). See :func:`simulate_pair` (moments of two copies fed
correlated inputs, every architecture of Table 1), :func:`jacobian` (state-to-state Jacobians
of untied networks) and :func:`simulate_cell_state` (LSTM cell states, Figure 7).
"""
from .networks import SimResult, simulate_pair, STEPS, simulate_cell_state
from .jacobian import jacobian, squared_singular_values

__all__ = ["SimResult", "simulate_pair", "STEPS", "jacobian", "squared_singular_values", "simulate_cell_state"]
