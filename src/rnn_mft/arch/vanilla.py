r"""Vanilla RNN (Table 1, column 1; Chen, Pennington & Schoenholz 2018), K = {f}.

* state: :math:`s^t = h^t`; gates ``("f",)``;
* :func:`update`, eq. (1c): :math:`h^t = \tanh(u_f^t)`, :math:`u_f^t = W_f h^{t-1} + U_f z^t + b_f`
  (eq. (1a)). Table 1 prints ``Id`` in the f row; we take :math:`\phi = \tanh`, the case of
  Poole et al. (2016) / Schoenholz et al. (2016);
* mean-field spec (eq. (6)): :math:`\alpha = 0`, :math:`\beta = \tanh`, :math:`T = 1`;
* Jacobian (eq. (10), Appendix A.2): :math:`D_0 = 0`, :math:`D_f = \tanh'(u_f)`.
"""
from ._base import Architecture, ArchInfo, Spec, StockLayout, loop_memory, preset

GATES = ("f",)


def update(pre, s, ops):
    """Eq. (1c): s' = tanh(u_f)."""
    return ops.tanh(pre("f", s))


SPEC = Spec("zero", "tanh", ())

INFO = ArchInfo(
    "Vanilla RNN", "Chen et al. (2018)", r"\mathbf{h}^t", r"\{f\}", r"\mathbf{s}^t", ".",
    r"\tanh(\mathbf{u}_f^t)",
    r"\mathbf{h}^t = \tanh(\mathbf{u}_f^t),\quad \mathbf{u}_f^t = \mathbf{W}_f\mathbf{h}^{t-1}"
    r" + \mathbf{U}_f\mathbf{z}^t + \mathbf{b}_f", GATES)

def critical(sigma2, mu_f):
    """The edge of chaos of the tanh RNN at vanishing bias and input variance (``Theta.critical``);
    ``sigma2`` and ``mu_f`` are ignored."""
    return preset(GATES, 1.0, f__nu2=1e-4)


def _check_stock(module):
    if getattr(module, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"nonlinearity={module.nonlinearity!r} of the stock {type(module).__name__}; the vanilla "
                         f"architecture is h = tanh(W h + U z + b) (allowed: 'tanh')")


ARCH = Architecture("vanilla", GATES, update, SPEC, info=INFO, bounded=True, forget_gate=None,
                    critical=critical, solve_bounds={"f.nu2": (1e-12, 1.0)}, fused="vanilla_loop",
                    memory_per_step=loop_memory(1),
                    stock=StockLayout(("RNN", "RNNCell"), {"f": 0}, check=_check_stock), doc=__doc__)
