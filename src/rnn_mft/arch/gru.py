r"""GRU (Table 1, column 3; Cho et al. 2014), K = {f, r} plus r2 of form (1b).

* state: :math:`s^t = h^t`; gates ``("f", "r", "r2")``; ``f`` and ``r`` of form (1a),
  :math:`u_{r_2}^t = W_{r_2}(\sigma(u_r^t) \circ s^{t-1}) + U_{r_2} z^t + b_{r_2}` of form (1b)
  with :math:`g_r = \sigma`;
* :func:`update`, eq. (1c): :math:`s^t = \sigma(u_f^t) s^{t-1} + (1-\sigma(u_f^t)) \tanh(u_{r_2}^t)`;
* mean-field spec (eq. (6)): :math:`\alpha = \sigma`, :math:`\beta = 1 - \sigma`,
  :math:`T = \tanh(u_{r_2})`, with the moments of :math:`u_{r_2}` from eqs. (17a)-(17b)
  (``gru=True``). A hand-expanded version of this map, used by the Figure 5 chapter, is
  :mod:`rnn_mft.theory.gru` (tested against the generic map built from this spec);
* Jacobian (eq. (10), Appendix A.2.2): :math:`D_0 = \sigma(u_f)`,
  :math:`D_f = \sigma'(u_f)(s - \tanh(u_{r_2}))`, and the (1b) term
  :math:`D_{r_2} W_{r_2}(D_{\sigma(u_r)} + D_{s\sigma'(u_r)} W_r)` with
  :math:`D_{r_2} = (1 - \sigma(u_f))\tanh'(u_{r_2})`.
"""
from ._base import Architecture, ArchInfo, Spec, StockLayout, loop_memory, preset

GATES = ("f", "r", "r2")


def update(pre, s, ops):
    """Eq. (1c) with the (1b) variable u_r2 = W_r2 (sigma(u_r) s) + U_r2 z + b_r2."""
    uf = pre("f", s)
    ur = pre("r", s)
    u2 = pre("r2", ops.sig(ur) * s)                                    # eq. (1b)
    g = ops.sig(uf)
    return g * s + (1 - g) * ops.tanh(u2)


SPEC = Spec("sig", "omsig", (("r2", "tanh"),), gru=True)

INFO = ArchInfo(
    "GRU", "Cho et al. (2014)", r"\mathbf{h}^t", r"\{f, r\}", r"\mathbf{s}^t", r"\sigma(\mathbf{u}_r)",
    r"\sigma(\mathbf{u}_f^t)\circ\mathbf{s}^{t-1} + (\mathbf{1}-\sigma(\mathbf{u}_f^t))\circ\tanh(\mathbf{u}_{r_2}^t)",
    r"\mathbf{u}_{r_2}^t = \mathbf{W}_{r_2}(\sigma(\mathbf{u}_r^t)\circ\mathbf{h}^{t-1}) + "
    r"\mathbf{U}_{r_2}\mathbf{z}^t + \mathbf{b}_{r_2},\quad \mathbf{h}^t = \sigma(\mathbf{u}_f^t)"
    r"\circ\mathbf{h}^{t-1} + (\mathbf{1}-\sigma(\mathbf{u}_f^t))\circ\tanh(\mathbf{u}_{r_2}^t)", GATES)

def critical(sigma2, mu_f):
    """Our analogue of Appendix C.4 (``Theta.critical``; Section 4.4: all sigma_k^2 -> 0, large
    mu_f), with nu_{r2}^2 = 1 so that the input reaches the candidate state (with no input at
    all the GRU state decays to 0)."""
    return preset(GATES, sigma2, f__mu=5.0 if mu_f is None else mu_f, r2__nu2=1.0)


#: torch.nn.GRU stacks (r, z, n): r is our r, z our f (its sigmoid multiplies h), n our r2,
#: whose b_hn sits inside r * (W_hn h + b_hn)
STOCK = StockLayout(("GRU", "GRUCell"), {"r": 0, "f": 1, "r2": 2}, input_bias_only=("r2",))

ARCH = Architecture("gru", GATES, update, SPEC, info=INFO, bounded=True, critical=critical,
                    fused="gru_loop", memory_per_step=loop_memory(4), stock=STOCK, doc=__doc__)
