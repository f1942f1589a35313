"""Mean-field theory of gated RNNs (numpy/scipy only, vectorised over hyperparameter grids)."""
from .quadrature import expect, expect2, gauss_hermite, sigmoid, dsigmoid, dtanh
from .theta import ARCHS, FIELDS, GateParams, Theta, check_arch
from . import gru

__all__ = ["ARCHS", "FIELDS", "GateParams", "Theta", "check_arch", "expect", "expect2",
           "gauss_hermite", "sigmoid", "dsigmoid", "dtanh", "gru"]
