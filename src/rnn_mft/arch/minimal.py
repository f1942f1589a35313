r"""Minimal RNN (Table 1, column 2; Chen et al. 2018), K = {f, r}.

* state: :math:`s^t = h^t`; gates ``("f", "r")``, both of form (1a);
* :func:`update`, eq. (1c): :math:`s^t = \sigma(u_f^t) s^{t-1} + (1 - \sigma(u_f^t)) x^t` with
  :math:`x^t = \tanh(u_r^t)`. Table 1 leaves :math:`x^t` unspecified; in Chen et al.'s minimalRNN
  :math:`x^t = \Phi(z^t)` is a feature map of the input alone, which is the case
  :math:`\sigma_r^2 = 0` here;
* mean-field spec (eq. (6)): :math:`\alpha = \sigma`, :math:`\beta = 1 - \sigma`,
  :math:`T = \tanh(u_r)`;
* Jacobian (eq. (10)): :math:`D_0 = \sigma(u_f)`,
  :math:`D_f = \sigma'(u_f)(s - \tanh(u_r))`, :math:`D_r = (1 - \sigma(u_f))\tanh'(u_r)`.
"""
from ._base import Architecture, ArchInfo, Spec, loop_memory, preset

GATES = ("f", "r")


def update(pre, s, ops):
    """Eq. (1c): s' = sigma(u_f) s + (1 - sigma(u_f)) tanh(u_r)."""
    g = ops.sig(pre("f", s))
    return g * s + (1 - g) * ops.tanh(pre("r", s))


SPEC = Spec("sig", "omsig", (("r", "tanh"),))

INFO = ArchInfo(
    "Minimal RNN", "Chen et al. (2018)", r"\mathbf{h}^t", r"\{f, r\}", r"\mathbf{s}^t", ".",
    r"\sigma(\mathbf{u}_f^t)\circ\mathbf{s}^{t-1} + (\mathbf{1}-\sigma(\mathbf{u}_f^t))\circ\mathbf{x}^t",
    r"\mathbf{x}^t = \tanh(\mathbf{u}_r^t),\quad \mathbf{h}^t = \sigma(\mathbf{u}_f^t)\circ"
    r"\mathbf{h}^{t-1} + (\mathbf{1}-\sigma(\mathbf{u}_f^t))\circ\mathbf{x}^t", GATES)

def critical(sigma2, mu_f):
    """Our analogue of Appendix C.4 (``Theta.critical``): all sigma_k^2 small, large mu_f, and
    nu_r^2 = 1 so that the input reaches the candidate state."""
    return preset(GATES, sigma2, f__mu=5.0 if mu_f is None else mu_f, r__nu2=1.0)


ARCH = Architecture("minimal", GATES, update, SPEC, info=INFO, bounded=True, critical=critical,
                    fused="minimal_loop", memory_per_step=loop_memory(3), doc=__doc__)
