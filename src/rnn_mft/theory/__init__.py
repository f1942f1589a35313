"""Mean-field theory of gated RNNs (numpy/scipy only, vectorised over hyperparameter grids).

Public entry points: :func:`analyze` (fixed point, chi, xi, m1, m2, var for any architecture, and
how well float64 and Monte Carlo resolve xi: ``one_minus_chi``, ``xi_resolved``, ...),
:class:`Theta` (hyperparameters, with :meth:`Theta.standard` and :meth:`Theta.critical`),
:func:`solve_for_timescale` (an initialization with a target time scale),
:func:`sample_cell_state` (the LSTM's stationary cell state, Algorithm 1) and the Table 1
reference updates (:func:`reference_step`, :data:`TABLE1`, in ``rnn_mft.theory.architectures``).

The architectures themselves (gates, update, mean-field spec, Jacobian terms) live in the
registry :mod:`rnn_mft.arch`. Which copy is which:

* the reference update of eq. (1): the registry's ``update``, run in float64 numpy by
  :func:`reference_step` (the simulator runs the same function on torch tensors; the fused
  cells of :mod:`rnn_mft.nets` are tested against it);
* the mean-field map of the closed-form architectures: ``rnn_mft.theory.meanfield``, built
  from the registry's ``spec``; its fixed point is ``meanfield.closed_form_fixed_point`` (old name
  ``meanfield.fixed_point``) and its Jacobian moments ``meanfield.closed_form_jacobian_moments``
  (old name ``meanfield.jacobian_moments``, arguments ``(theta, mu, q)``);
* ``rnn_mft.theory.gru``: the GRU's map written out by hand for the Figure 5 chapter, with its
  own solver ``gru.direct_fixed_point`` (old name ``gru.fixed_point``), tested against the above;
* the LSTM: the two-state theory (the default of :func:`analyze`), assembled in
  :mod:`rnn_mft.theory.lstm_twostate` from the cell-state law (:mod:`rnn_mft.theory.lstm_cellstate`),
  the tangent's time scale and Jacobian moments (:mod:`rnn_mft.theory.lstm_tangent`) and the joint
  law of two copies (:mod:`rnn_mft.theory.lstm_joint`), and the paper's
  Algorithm 1 in ``rnn_mft.theory.lstm`` (``lstm.algorithm1_fixed_point`` and
  ``lstm.algorithm1_jacobian_moments``, old names ``lstm.fixed_point`` / ``lstm.jacobian_moments``,
  the latter taking the common random numbers ``za``);
* ``rnn_mft.theory.schedule``: how :func:`analyze` splits a large grid over two threads and
  quadrature buckets (performance only, same equations).
"""
from .quadrature import expect, expect2, gauss_hermite, sigmoid, dsigmoid, dtanh
from .theta import ARCHS, FIELDS, GateParams, Theta, check_arch
from . import gru, meanfield, lstm, lstm_cellstate, lstm_tangent, lstm_joint, lstm_twostate, architectures
from .analysis import AnalysisResult, analyze, xi_from_chi, xi_from_one_minus_chi
from .lstm import sample_cell_state, fixed_point_iteration
from .architectures import reference_step, TABLE1
from .solver import solve_for_timescale, SolveResult

__all__ = ["ARCHS", "FIELDS", "GateParams", "Theta", "check_arch", "expect", "expect2",
           "gauss_hermite", "sigmoid", "dsigmoid", "dtanh", "gru", "meanfield", "lstm", "lstm_twostate", "lstm_cellstate",
           "lstm_tangent", "lstm_joint", "architectures",
           "AnalysisResult", "analyze", "xi_from_chi", "sample_cell_state", "fixed_point_iteration",
           "reference_step", "TABLE1", "solve_for_timescale", "SolveResult"]
