"""What the training engine measures: logits per member, the per-member cross-entropy, held-out
evaluation and gradient norms (:func:`rnn_mft.train.fit` and :mod:`rnn_mft.train.graphs`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["evaluate", "member_logits", "per_member_ce", "grad_norms"]


def member_logits(model, x) -> torch.Tensor:
    """``(M, B, C)`` logits for our classifiers (any M) and stock wrappers (M=1)."""
    if hasattr(model, "forward_members"):
        return model.forward_members(x)
    return model(x).unsqueeze(0)


def per_member_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each member over the batch: ``(M,)``."""
    M, B, C = logits.shape
    return F.cross_entropy(logits.float().reshape(M * B, C), y.repeat(M), reduction="none").view(M, B).mean(1)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024, device=None, amp: bool = False):
    """Mean cross-entropy and accuracy per member on ``(x, y)``: two arrays ``(M,)``."""
    device = device or next(model.parameters()).device
    tot_loss, tot_acc, n = 0.0, 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            lg = member_logits(model, xb)
        M, B, C = lg.shape
        tot_loss = tot_loss + F.cross_entropy(lg.float().reshape(M * B, C), yb.repeat(M),
                                              reduction="none").view(M, B).sum(1).double()
        tot_acc = tot_acc + (lg.argmax(-1) == yb).sum(1).double()
        n += B
    return (tot_loss / n).cpu().numpy(), (tot_acc / n).cpu().numpy()


@torch.no_grad()
def grad_norms(params, members):
    """The gradient norm of each member (``members`` None: of the single network), in float64."""
    params = [p for p in params if p.grad is not None]
    # per-tensor norms in the gradients' own precision (one pass, no float64 copy of every
    # gradient: that copy cost more than the optimizer step on large untied models), summed in float64
    if members is None:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad).double() for p in params]))
    return sum(torch.linalg.vector_norm(p.grad.reshape(members, -1), dim=1).double().pow(2) for p in params).sqrt()
