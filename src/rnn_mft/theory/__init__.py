"""Mean-field theory of gated RNNs (numpy/scipy only, vectorised over hyperparameter grids).

Public entry points: :func:`analyze` (fixed point, chi, xi, m1, m2, var for any architecture),
:class:`Theta` (hyperparameters, with :meth:`Theta.standard` and :meth:`Theta.critical`),
:func:`solve_for_timescale` (an initialization with a target time scale),
:func:`sample_cell_state` (the LSTM's stationary cell state, Algorithm 1) and the Table 1
reference updates (:func:`reference_step`, :data:`TABLE1`, in ``rnn_mft.theory.architectures``).
"""
from .quadrature import expect, expect2, gauss_hermite, sigmoid, dsigmoid, dtanh
from .theta import ARCHS, FIELDS, GateParams, Theta, check_arch
from . import gru, meanfield, lstm, lstm_twostate, architectures
from .analysis import AnalysisResult, analyze, xi_from_chi
from .lstm import sample_cell_state, fixed_point_iteration
from .architectures import reference_step, TABLE1
from .solver import solve_for_timescale, SolveResult

__all__ = ["ARCHS", "FIELDS", "GateParams", "Theta", "check_arch", "expect", "expect2",
           "gauss_hermite", "sigmoid", "dsigmoid", "dtanh", "gru", "meanfield", "lstm", "lstm_twostate", "architectures",
           "AnalysisResult", "analyze", "xi_from_chi", "sample_cell_state", "fixed_point_iteration",
           "reference_step", "TABLE1", "solve_for_timescale", "SolveResult"]
