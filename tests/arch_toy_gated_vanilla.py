r"""A toy architecture for tests/test_arch_registry.py: the vanilla RNN with one more gate.

* state: :math:`s^t = h^t`; gates ``("f", "o")``, both of form (1a);
* update (eq. (1c)): :math:`h^t = \sigma(u_o^t)\tanh(u_f^t)`;
* mean-field spec (eq. (6)): :math:`\alpha = 0`, :math:`\beta = \tanh`, :math:`T = \sigma(u_o)`;
* Jacobian (eq. (10)): :math:`D_0 = 0`, :math:`D_f = \tanh'(u_f)\sigma(u_o)`,
  :math:`D_o = \tanh(u_f)\sigma'(u_o)` (derived from the spec by the registry).

This one module and ``rnn_mft.arch.register(module)`` are all it takes (CONTRIBUTING.md, "Adding an architecture").
"""
from rnn_mft.arch import Architecture, Spec

GATES = ("f", "o")


def update(pre, s, ops):
    """Eq. (1c): s' = sigma(u_o) tanh(u_f)."""
    uf = pre("f", s)
    uo = pre("o", s)
    return ops.sig(uo) * ops.tanh(uf)


SPEC = Spec("zero", "tanh", (("o", "sig"),))

ARCH = Architecture("gated_vanilla", GATES, update, SPEC, bounded=True, doc=__doc__)
