r"""LSTM (Table 1, column 5; Hochreiter & Schmidhuber 1997), K = {i, f, r, o}, state (h, c).

* state: :math:`s^t = h^t` with the cell state :math:`c^t` carried along (the state is the
  tuple ``(h, c)``; :func:`observe` gives h); gates ``("i", "f", "r", "o")``, of form (1a) in h;
* :func:`update`, eq. (16): :math:`c^t = \sigma(u_f^t) c^{t-1} + \sigma(u_i^t)\tanh(u_r^t)`,
  :math:`h^t = \sigma(u_o^t)\tanh(c^t)`. Table 1 writes the unrolled cell state; the printed
  product is garbled, the unrolling of eq. (16) is
  :math:`c^t = \prod_{l=1}^t\sigma(u_f^l) c^0 + \sum_{j=1}^t \big(\prod_{l=j+1}^t
  \sigma(u_f^l)\big)\sigma(u_i^j)\tanh(u_r^j)`
  (:func:`rnn_mft.theory.architectures.unrolled_cell_state`);
* no closed-form mean-field spec (``spec=None``): the theory is the two-state theory of
  :mod:`rnn_mft.theory.lstm_twostate` (default) or the paper's Algorithm 1
  (:mod:`rnn_mft.theory.lstm`), with the Jacobian of Appendix A.2.3 there.
"""
from ._base import Architecture, ArchInfo, StockLayout, lstm_loop_memory, preset

GATES = ("i", "f", "r", "o")


def update(pre, state, ops):
    """Eq. (16): (h, c) -> (sigma(u_o) tanh(c'), c'), c' = sigma(u_f) c + sigma(u_i) tanh(u_r)."""
    h, c = state
    u = {k: pre(k, h) for k in ("i", "f", "r", "o")}
    c = ops.sig(u["f"]) * c + ops.sig(u["i"]) * ops.tanh(u["r"])
    return (ops.sig(u["o"]) * ops.tanh(c), c)


def output(pre, state, new_state, ops):
    """p^t = h^t."""
    return new_state[0]


def observe(state):
    """The hidden state h, whose moments (2a)-(2c) the theory describes."""
    return state[0]


def init_state(s0, ops):
    """(h0, c0) = (s0, 0)."""
    return (s0, ops.zeros_like(s0))


INFO = ArchInfo(
    "LSTM", "Hochreiter & Schmidhuber (1997)", r"\mathbf{h}^t", r"\{i, f, r, o\}", r"\mathbf{s}^t", ".",
    r"\sigma(\mathbf{u}_o^t)\circ\tanh\Big(\prod_{l=1}^t\sigma(\mathbf{u}_f^l)\circ\mathbf{c}^0 + "
    r"\sum_{j=1}^t \big(\textstyle\prod_{l=j+1}^t\sigma(\mathbf{u}_f^l)\big)\circ\sigma(\mathbf{u}_i^j)"
    r"\circ\tanh(\mathbf{u}_r^j)\Big)",
    r"\mathbf{c}^t = \sigma(\mathbf{u}_f^t)\circ\mathbf{c}^{t-1} + \sigma(\mathbf{u}_i^t)\circ"
    r"\tanh(\mathbf{u}_r^t),\quad \mathbf{h}^t = \sigma(\mathbf{u}_o^t)\circ\tanh(\mathbf{c}^t)", GATES)

STORAGE_ORDER = ("i", "f", "o", "r")

def critical(sigma2, mu_f):
    """Appendix C.4's unrolled CIFAR-10 LSTM (``Theta.critical``): nu_f^2 = nu_r^2 = sigma_o^2 =
    mu_f = 1, sigma_i^2 = sigma_f^2 = sigma_r^2 = 1e-5, every other field 0."""
    return preset(GATES, sigma2, f__nu2=1.0, r__nu2=1.0, o__sigma2=1.0, f__mu=1.0 if mu_f is None else mu_f)


#: torch.nn.LSTM stacks (i, f, g, o): g is our r
STOCK = StockLayout(("LSTM", "LSTMCell"), {"i": 0, "f": 1, "r": 2, "o": 3})

ARCH = Architecture("lstm", GATES, update, None, output=output, info=INFO, storage_order=STORAGE_ORDER,
                    bounded=True, observe=observe, init_state=init_state, state=("h", "c"),
                    input_gate="i", critical=critical, theory="lstm_two_state", methods=("two_state", "paper"),
                    fused="lstm_loop", memory_per_step=lstm_loop_memory, stock=STOCK,
                    doc=__doc__)
