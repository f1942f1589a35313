r"""Peephole LSTM (Table 1, column 4; Gers et al. 2002), K = {i, f, r, o}, state s = c.

* state: :math:`s^t = c^t`; gates ``("i", "f", "r", "o")``, all of form (1a) reading the cell
  state, :math:`u_k^t = W_k c^{t-1} + U_k z^t + b_k`;
* :func:`update`, eq. (1c): :math:`c^t = \sigma(u_f^t) c^{t-1} + \sigma(u_i^t)\tanh(u_r^t)`;
  :func:`output`: :math:`p^t = \sigma(u_o^t)\tanh(c^t)` (the output gate does not feed back);
* mean-field spec (eq. (6)): :math:`\alpha = \sigma`, :math:`\beta = 1`,
  :math:`T = \sigma(u_i)\tanh(u_r)`. The cell state is not bounded (``bounded=False``): Q* can
  exceed 1;
* Jacobian (eq. (10)): :math:`D_0 = \sigma(u_f)`, :math:`D_f = \sigma'(u_f)\,c`,
  :math:`D_i = \sigma'(u_i)\tanh(u_r)`, :math:`D_r = \sigma(u_i)\tanh'(u_r)`.
"""
from ._base import Architecture, ArchInfo, Spec, lstm_loop_memory, preset

GATES = ("i", "f", "r", "o")


def update(pre, c, ops):
    """Eq. (1c): c' = sigma(u_f) c + sigma(u_i) tanh(u_r) (u_o is not needed for the state)."""
    u = {k: pre(k, c) for k in ("i", "f", "r")}
    return ops.sig(u["f"]) * c + ops.sig(u["i"]) * ops.tanh(u["r"])


def output(pre, c, c_new, ops):
    """Table 1, row p: p = sigma(u_o) tanh(c'), u_o = W_o c + U_o z + b_o."""
    return ops.sig(pre("o", c)) * ops.tanh(c_new)


SPEC = Spec("sig", "one", (("i", "sig"), ("r", "tanh")))

INFO = ArchInfo(
    "Peephole LSTM", "Gers et al. (2002)", r"\mathbf{c}^t", r"\{i, f, r, o\}",
    r"\sigma(\mathbf{u}_o^t)\circ\tanh(\mathbf{s}^t)", ".",
    r"\sigma(\mathbf{u}_f^t)\circ\mathbf{s}^{t-1} + \sigma(\mathbf{u}_i^t)\circ\tanh(\mathbf{u}_r^t)",
    r"\mathbf{u}_k^t = \mathbf{W}_k\mathbf{c}^{t-1} + \mathbf{U}_k\mathbf{z}^t + \mathbf{b}_k,\quad"
    r" \mathbf{c}^t = \sigma(\mathbf{u}_f^t)\circ\mathbf{c}^{t-1} + \sigma(\mathbf{u}_i^t)\circ"
    r"\tanh(\mathbf{u}_r^t)", GATES)

#: the fused torch cells put the three sigmoid gates next to each other
STORAGE_ORDER = ("i", "f", "o", "r")

def critical(sigma2, mu_f):
    """Appendix C.4 (``Theta.critical``): mu_f = 5, all sigma_k^2 = 1e-5, every other field 0."""
    return preset(GATES, sigma2, f__mu=5.0 if mu_f is None else mu_f)


ARCH = Architecture("peephole_lstm", GATES, update, SPEC, output=output, info=INFO,
                    storage_order=STORAGE_ORDER, bounded=False, input_gate="i", critical=critical,
                    fused="peephole_lstm_loop", memory_per_step=lstm_loop_memory, doc=__doc__)
