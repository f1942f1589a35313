"""Finite-width simulation of random recurrent networks, to test the mean-field theory.

Networks are drawn exactly as :class:`~rnn_mft.theory.Theta` says and run in float64 with
PyTorch (batched over independent seeds). See :func:`simulate_pair`.
"""
from .networks import SimResult, simulate_pair, STEPS

__all__ = ["SimResult", "simulate_pair", "STEPS"]
