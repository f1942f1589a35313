"""Whole-figure ensembles (issue 10): networks with different sequence lengths T train as one
ensemble on padded MNIST, each reading out at its own T, and member k follows the run of the
same network trained alone on padded MNIST of length T_k.

Tolerances, derived from float32 rounding (u = 2**-24 ~ 6e-8) so that they hold on any CPU
kernel (AVX-512, AVX2, the default one): the ensemble and the stand-alone run perform the same
float32 arithmetic grouped differently (batched products over other member counts, the
staircase's segments, other chunk lengths of the LSTM loop), so they agree to rounding, not
bitwise.
- Losses: the longest reduction of the forward pass is the input projection over n_in = 784
  pixels; a sum of n terms reordered differs by at most about n u of its absolute terms, so
  rtol = 2 n_in u ~ 9e-5. A wrong read-out step, a leaked future input or gradient, or different
  data would show as O(1e-2) differences in loss.
- Parameters, under SGD with momentum (whose step is linear in the gradient): every gradient
  element is clipped to |g| <= clip = 1 and carries a reordering error of at most n u |g| with
  n = batch * T * G N <= 8 * 7 * 24 terms in its longest reduction; over 4 steps of momentum
  0.9 the gradients enter the parameters with total weight w = sum_t sum_(s<=t) 0.9**(t-s) = 9.05,
  so atol = lr w n u (~3.6e-5, against updates of ~1e-1), plus rtol = 4 u for the 4 additions
  into each parameter.
- Parameters are not compared under Adam: its element-wise normalisation m / (sqrt(v) + eps)
  turns a rounding difference in a gradient element near eps (1e-8) into an O(1) difference of
  that element's step (seen: 3e-6 on 2 of 18 816 weights of the peephole LSTM under torch's
  AVX-512 and default kernels, with losses equal to 3e-7). Under Adam the losses are compared.

Over long runs the two trajectories need not stay this close: with vanishing gradients Adam
turns a rounding difference in a tiny gradient into a full-size step (measured on Figure 1's ci
settings: relative loss difference 1e-7 at step 1, 1e-2 by step 10 for the standard
initialization at T = 100), as any reordering of float32 sums would (CPU against GPU, another
BLAS). Equality is therefore tested over a few steps.
"""
import numpy as np
import pytest
import torch

from rnn_mft import nets, train
from rnn_mft.data import load_task_pair
from rnn_mft.experiments.training import sequence_length, trainability
from rnn_mft.experiments.training._common import make_ensemble
from rnn_mft.theory import Theta
from rnn_mft.train.ensembles import ensemble_bytes, split_by_memory

torch.set_num_threads(1)


def _task(T):
    tr, te = load_task_pair("padded_mnist", seq_len=T, progressbar=False, download=False)
    return train.DatasetTask(tr, te, n_eval=24, eval_on="train")


def test_padded_mnist_is_a_prefix_stream():
    a, b = _task(7), _task(3)
    for t in (a, b):
        t.train.set_epoch(4)
    xa, ya = a.train.batch(np.arange(6))
    xb, yb = b.train.batch(np.arange(6))
    assert torch.equal(xa[:, :3], xb) and torch.equal(ya, yb)


U32 = 2.0 ** -24                              # float32 unit roundoff


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("arch,untied", [("peephole_lstm", False), ("gru", False), ("lstm", True)])
def test_member_of_mixed_length_ensemble_equals_its_standalone_run(arch, untied, optimizer):
    lengths, batch, width, n_in, steps = [3, 7, 5, 7], 8, 6, 784, 4
    th = [Theta.uniform(arch, sigma2=1.0, nu2=1.0, f=dict(sigma2=1.0, nu2=1.0, mu=mu)) for mu in (0.0, 1.0, 2.0, -1.0)]
    lr, momentum = (0.05, 0.9) if optimizer == "sgd" else (1e-2, 0.9)
    cfg = train.TrainConfig(steps=steps, batch_size=batch, optimizer=optimizer, lr=lr, momentum=momentum, clip=1.0,
                            eval_every=2, progress=False, device="cpu")
    ens = make_ensemble(arch, n_in, width, 10, [("theta", t) for t in th], seed=3, lengths=lengths,
                        untied=max(lengths) if untied else None)
    res = train.fit(ens, _task(max(lengths)), cfg)
    rtol_loss = 2 * n_in * U32                                    # see the module docstring
    n_terms = batch * max(lengths) * 4 * width                   # G <= 4 gates
    w = sum(momentum ** (t - s) for t in range(steps) for s in range(t + 1))
    atol_p, rtol_p = lr * w * n_terms * U32, steps * U32
    for k, T in enumerate(lengths):
        alone = make_ensemble(arch, n_in, width, 10, [("theta", th[k])], seed=3, member_seeds=[k],
                              untied=max(lengths) if untied else None)
        r = train.fit(alone, _task(T), cfg)                      # its own task of length T
        for c in ("train_loss", "eval_loss"):
            np.testing.assert_allclose(res.curves[c][:, k], r.curves[c][:, 0], rtol=rtol_loss, err_msg=c)
        np.testing.assert_allclose(res.curves["eval_acc"][:, k], r.curves["eval_acc"][:, 0])
        if optimizer == "sgd":
            for (name, p), q in zip(ens.named_parameters(), alone.parameters()):
                torch.testing.assert_close(p[k], q[0], rtol=rtol_p, atol=atol_p, msg=f"{name} of member {k}")


def test_staircase_gradients_equal_separate_runs_in_float64():
    """The staircase (tied cells) against each member run alone over its own length: outputs and
    every gradient to float64 rounding (rtol 1e-10)."""
    torch.manual_seed(0)
    lengths = [2, 6, 4, 6, 1]
    singles = [nets.make_classifier("lstm", 3, 4, 2).double() for _ in lengths]
    for s in singles:
        nets.init_(s, Theta.uniform("lstm", sigma2=1.5, nu2=1.0, mu=0.2))
    ens = nets.stack(singles, lengths=lengths)
    x = torch.randn(5, 6, 3, dtype=torch.float64)
    y = ens(x)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    for k, (s, T) in enumerate(zip(singles, lengths)):
        yk = s(x[:, :T])
        torch.testing.assert_close(y[k], yk, rtol=1e-10, atol=1e-12)
        (yk * w[k]).sum().backward()
        for (name, p), q in zip(ens.named_parameters(), s.parameters()):
            torch.testing.assert_close(p.grad[k], q.grad[0], rtol=1e-10, atol=1e-12, msg=name)


def test_split_by_memory_groups_longest_first_and_states_bytes():
    def b(lengths):
        return ensemble_bytes("gru", 784, 32, 10, lengths, 32, True)
    one = b([64] * 6)["total"]
    groups = split_by_memory([2, 4, 8, 16, 32, 64], 6, b, 1.5 * one)
    assert groups[0][-1] == 64 and sorted(t for g in groups for t in g) == [2, 4, 8, 16, 32, 64]
    assert all(b([t for t in g for _ in range(6)])["total"] <= 1.5 * one or len(g) == 1 for g in groups)
    assert split_by_memory([2, 4, 8], 6, b, 1e15) == [[2, 4, 8]]            # everything fits: one ensemble
    tied = ensemble_bytes("gru", 784, 32, 10, [64] * 6, 32, False)
    assert tied["params"] * 64 == pytest.approx(b([64] * 6)["params"], rel=0.01)   # untied: T weight sets
    with pytest.raises(ValueError, match="budget=0"):
        split_by_memory([2], 1, b, 0)
    with pytest.raises(ValueError, match="lengths=\\[\\]"):
        ensemble_bytes("gru", 784, 32, 10, [], 32, True)


def test_experiments_train_whole_figures_as_few_ensembles():
    tied = trainability.config("paper").replace(tied=True)
    assert all(len(trainability.groups(tied, a)) == 1 for a in tied.archs)       # Figure 6: one per arch
    untied = trainability.config("paper")
    for e in trainability.ensembles(untied):
        assert e["bytes"]["total"] <= untied.ensemble_gib * 2**30 or len(e["Ts"]) == 1
    assert len(sequence_length.groups(sequence_length.config("paper"))) == 1        # Figure 1: one ensemble
    c = trainability.cost(trainability.config("paper"))
    assert c["sequential_steps"] < c["sequential_steps_one_ensemble_per_T"]


@pytest.mark.parametrize("arch,untied", [("lstm", False), ("gru", True)])
def test_checkpoint_bytes_matches_a_real_checkpoint(tmp_path, arch, untied):
    """The stated checkpoint sizes (README, tools/estimate_paper.py --checkpoints) come from
    checkpoint_bytes: a real checkpoint file is within 2% + 64 KiB (the format's skeleton) of it."""
    from rnn_mft.train.ensembles import checkpoint_bytes
    lengths = [3, 5, 5, 4]
    th = [Theta.uniform(arch, sigma2=1.0, nu2=1.0)] * len(lengths)
    ens = make_ensemble(arch, 784, 24, 10, [("theta", t) for t in th], lengths=lengths,
                        untied=max(lengths) if untied else None)
    cfg = train.TrainConfig(steps=40, batch_size=4, optimizer="adam", lr=1e-3, progress=False, device="cpu",
                            checkpoint_every=2)
    ck = tmp_path / "c.pt"

    def stop(step, info):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fit(ens, _task(max(lengths)), cfg, checkpoint=ck, hook=stop)
    real = ck.stat().st_size
    est = checkpoint_bytes(arch, 784, 24, 10, lengths, untied, "adam", steps=40)
    assert abs(real - est) <= 0.02 * est + 64 * 1024, (real, est)
    print(f"{arch} untied={untied}: checkpoint {real} bytes, estimate {est}")
