"""Training engine: optimizers, ensembles, checkpoints, divergence, determinism, results store.

Tolerances, from float32 rounding (u32 = 2**-24 ~ 6e-8) so that they hold on any CPU kernel:
* a loss: every step reduces over N + n_in terms (recurrent and input products), T steps deep,
  and a reordered sum of n terms is off by at most n u32 of its absolute terms: T (N + n_in) u32
  = 12 x 12 u32 ~ 9e-6 (LOSS_RTOL);
* parameters under SGD (a step linear in the gradient): each gradient element, clipped to
  |g| <= clip = 1, is off by at most n u32 |g| with n = batch T G N terms in its longest
  reduction; momentum 0.9 weighs the steps' gradients w = sum_t sum_(s<=t) 0.9**(t-s), so
  atol = lr w n u32, plus steps u32 |p| for the additions;
* parameters under Adam are compared only where both runs get the same gradients: its
  m / (sqrt(v) + eps) turns a rounding difference in a gradient element near eps into an O(1)
  difference of that element's step (tests/test_mixed_lengths.py measured one), so across two
  trajectories only the losses are compared (an element with |g| ~ eps moves the loss by
  ~ |g| lr, nothing).
"""
import io
import json
import os
import sys

import numpy as np
import pytest
import torch

from rnn_mft import nets, train
from rnn_mft.theory import Theta

torch.set_num_threads(1)

TASK = train.CopyMemoryTask(T=12, n_symbols=4, n_eval=64)
U32 = 2.0 ** -24                              # float32 unit roundoff
N_HIDDEN = 8                                  # _model's default width
LOSS_RTOL = TASK.T * (N_HIDDEN + TASK.n_in) * U32     # see the module docstring


def _model(arch="gru", seed=0, untied=None, theta=None, N=8):
    g = torch.Generator().manual_seed(seed)
    m = nets.make_classifier(arch, TASK.n_in, N, TASK.n_out, untied=untied)
    nets.init_(m, theta or Theta.uniform(arch, sigma2=1.0, nu2=1.0, rho2=0.1, f=dict(sigma2=1.0, nu2=1.0, mu=1.0)), g)
    m.reset_readout(g)
    return m


def _cfg(**kw):
    d = dict(steps=12, batch_size=16, optimizer="adam", lr=3e-3, eval_every=5, progress=False, device="cpu")
    d.update(kw)
    return train.TrainConfig(**d)


# ------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("kind,ref", [("sgd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
                                      ("adam", lambda p: torch.optim.Adam(p, lr=0.01)),
                                      ("rmsprop", lambda p: torch.optim.RMSprop(p, lr=0.01))])
def test_optimizers_match_torch_optim(kind, ref):
    a, b = _model(), _model()
    lr = 0.05 if kind == "sgd" else 0.01
    ours = train.MemberOptimizer(a.parameters(), kind, lr=lr)
    theirs = ref(list(b.parameters()))
    g = torch.Generator().manual_seed(0)
    steps = 5
    moved = [torch.zeros_like(q) for q in b.parameters()]      # sum over steps of |step| (torch's)
    for _ in range(steps):
        x, y = TASK.train_batch(8, g)
        ours.zero_grad()
        theirs.zero_grad()
        torch.nn.functional.cross_entropy(a(x), y).backward()
        # the same gradients into both: the update rules alone are compared. (Gradients of each
        # model's own forward would differ by rounding, which Adam's m / sqrt(v) turns into O(1)
        # step differences for elements with |g| near eps.)
        for p, q in zip(a.parameters(), b.parameters()):
            q.grad = p.grad.clone()
        before = [q.detach().clone() for q in b.parameters()]
        ours.step()
        theirs.step()
        for s, q, q0 in zip(moved, b.parameters(), before):
            s += (q.detach() - q0).abs()
    # each step's value is a ratio/product of O(1) float32 quantities, m and v running averages
    # (their relative error stays O(u32)): at most 16 u32 of the step; each addition of a step into
    # the parameter rounds by u32 |p| in either optimizer
    for p, q, s in zip(a.parameters(), b.parameters(), moved):
        tol = 16 * U32 * s + 2 * steps * U32 * q.detach().abs()
        assert torch.all((p.detach() - q.detach()).abs() <= tol), float(((p - q).abs() - tol).max())


@pytest.mark.parametrize("kind", ["adam", "rmsprop", "sgd"])
def test_optimizer_keeps_every_tensor_on_the_parameters_device(kind, monkeypatch):
    """The fused Adam kernel takes its step count as a tensor, which must sit on the parameters'
    device (a CPU one failed every CUDA step on an H200). Checked without a GPU: parameters on
    torch's meta device, and the fused kernel replaced by one that refuses mixed devices."""
    from rnn_mft.train import optim
    seen = []

    def fused(*lists, **kw):
        devs = {t.device for group in lists for t in group}
        seen.append(devs)
        assert devs == {torch.device("meta")}, f"fused Adam got tensors on {devs}"

    monkeypatch.setattr(optim, "_FUSED_ADAM", fused)
    ps = [torch.zeros(3, 4, device="meta", requires_grad=True), torch.zeros(3, device="meta", requires_grad=True)]
    opt = train.MemberOptimizer(ps, kind, lr=1e-3, members=3)
    for _ in range(2):
        for p in ps:
            p.grad = torch.ones_like(p)
        opt.step()
    assert all(v.device.type == "meta" for st in opt.state for v in st.values())
    assert len(seen) == (4 if kind == "adam" else 0)


def test_per_member_clipping_matches_single():
    torch.manual_seed(0)
    singles = [_model(seed=s) for s in range(3)]
    ens = nets.stack(singles)
    x, y = TASK.train_batch(8, torch.Generator().manual_seed(1))
    train.metrics.per_member_ce(ens.forward_members(x), y).sum().backward()
    norms = train.clip_grad_norm_members_(ens.parameters(), 0.1, 3)
    # batched vs single: a gradient element is off by <= n u32 of its terms, n = batch T G N (its
    # longest reduction); after clipping to 0.1 every element is <= 0.1. The norm adds a sum of
    # squares over the n_params elements.
    n_terms = 8 * TASK.T * 3 * N_HIDDEN
    n_params = sum(q.numel() for q in singles[0].parameters())
    for k, s in enumerate(singles):
        torch.nn.functional.cross_entropy(s(x), y).backward()
        n = torch.nn.utils.clip_grad_norm_(s.parameters(), 0.1)
        torch.testing.assert_close(norms[k], n, rtol=(n_terms + n_params) * U32, atol=0)
        for (name, p), q in zip(ens.named_parameters(), s.parameters()):
            torch.testing.assert_close(p.grad[k], q.grad[0], rtol=0, atol=(n_terms + n_params) * U32 * 0.1)


# ------------------------------------------------------------------------- ensembles
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_ensemble_member_follows_single_network_trajectory(kind):
    """Members with different Theta, learning rate, sequence length T and untied weights, trained at
    once, follow the same trajectories as each network trained alone on the same batches."""
    T_max = TASK.T
    lengths = [12, 7, 10]
    lrs = [0.05, 0.01, 0.2] if kind == "sgd" else [3e-3, 1e-2, 1e-3]
    thetas = [Theta.uniform("gru", sigma2=s2, nu2=1.0, f=dict(sigma2=s2, nu2=1.0, mu=mu))
              for s2, mu in ((0.5, 0.0), (1.0, 2.0), (2.0, -1.0))]
    singles = [_model("gru", seed=k, untied=T_max, theta=thetas[k]) for k in range(3)]
    ens = nets.stack(singles, lengths=lengths)
    cfg = _cfg(optimizer=kind, clip=1.0, steps=10)
    res = train.fit(ens, TASK, train.TrainConfig(**{**cfg.to_dict(), "lr": lrs}))
    # SGD parameters (module docstring): n terms in a gradient element's longest reduction, plus the
    # clip coefficient's (a norm over all parameters) rounding; momentum weight w of the 10 steps
    n_params = sum(q[0].numel() for q in ens.parameters())
    n = cfg.batch_size * T_max * 3 * N_HIDDEN + n_params
    w = sum(0.9 ** (t - s) for t in range(cfg.steps) for s in range(t + 1))
    for k in range(3):
        alone = nets.stack([singles[k]], lengths=[lengths[k]]).member(0)   # single network reading step T_k
        r = train.fit(alone, TASK, train.TrainConfig(**{**cfg.to_dict(), "lr": lrs[k]}))
        np.testing.assert_allclose(res.curves["train_loss"][:, k], r.curves["train_loss"][:, 0], rtol=LOSS_RTOL)
        # a prediction whose top two logits tie within rounding may flip: one of n_eval at most
        np.testing.assert_allclose(res.curves["eval_acc"][:, k], r.curves["eval_acc"][:, 0],
                                   atol=1 / len(TASK.eval_data()[1]))
        if kind == "adam":              # Adam: the losses only (module docstring)
            continue
        for (name, p), q in zip(ens.named_parameters(), alone.parameters()):
            torch.testing.assert_close(p[k], q[0], rtol=cfg.steps * U32, atol=lrs[k] * w * n * U32)


# ------------------------------------------------------------------------- determinism, checkpoints
def test_same_seed_same_result_on_cpu():
    a = train.fit(_model(), TASK, _cfg(seed=3))
    b = train.fit(_model(), TASK, _cfg(seed=3))
    c = train.fit(_model(), TASK, _cfg(seed=4))
    for k in a.curves:
        np.testing.assert_array_equal(a.curves[k], b.curves[k])
    assert not np.array_equal(a.curves["train_loss"], c.curves["train_loss"])


class _Kill(Exception):
    pass


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_checkpoint_resume_is_bitwise_identical(tmp_path, arch):
    cfg = _cfg(steps=14, checkpoint_every=4, optimizer="sgd", lr=0.05, eval_every=3)
    ref_model = _model(arch)
    ref = train.fit(ref_model, TASK, cfg)

    def hook(step, info):
        if step == 9:
            raise _Kill()

    ck = tmp_path / "run.pt"
    model = _model(arch)
    with pytest.raises(_Kill):
        train.fit(model, TASK, cfg, checkpoint=ck, hook=hook)
    assert ck.exists()
    fresh = _model(arch, seed=99)                   # different weights: all state must come from the file
    res = train.fit(fresh, TASK, cfg, checkpoint=ck)
    assert res.meta["resumed_from"] == 8
    assert not ck.exists()
    for k in ref.curves:
        np.testing.assert_array_equal(res.curves[k], ref.curves[k], err_msg=k)
    for p, q in zip(fresh.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)


# ------------------------------------------------------------------------- divergence
def test_diverged_member_is_recorded_and_others_continue():
    ens = nets.stack([_model(seed=s) for s in range(3)])
    res = train.fit(ens, TASK, _cfg(optimizer="sgd", lr=[0.05, 1e38, 0.01], steps=8))
    assert res.meta["diverged"] == [False, True, False]
    assert res.meta["diverged_step"][1] >= 0
    assert np.isnan(res.final["eval_acc"][1]) and np.all(np.isfinite(np.array(res.final["eval_acc"])[[0, 2]]))
    assert np.all(np.isfinite(res.curves["train_loss"][:, 0]))


def test_lr_scan_default_grid_and_divergence_does_not_stop_the_sweep():
    lrs = train.default_lrs()
    # float64 grid arithmetic: logs of ~11.5 differ by ~1, off by ~2 x 11.5 u64 ~ 3e-15 (default rtol 1e-7)
    assert len(lrs) == 8 and lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1e-2)
    np.testing.assert_allclose(np.diff(np.log(lrs)), np.log(10) * 3 / 7)
    build = lambda M: nets.stack([_model()] * M) if M else _model()    # noqa: E731 (same init for all lrs)
    scan = train.lr_scan(build, TASK, _cfg(optimizer="sgd", steps=6), lrs=[1e-3, 1e38, 0.1])
    assert [r.diverged[0] for r in scan.results] == [False, True, False]
    assert scan.best_lr in (1e-3, 0.1)
    seq = train.lr_scan(build, TASK, _cfg(optimizer="sgd", steps=6), lrs=[1e-3, 1e38, 0.1], ensemble=False)
    assert [r.diverged[0] for r in seq.results] == [False, True, False]
    np.testing.assert_allclose(seq.results[2].curves["train_loss"], scan.results[2].curves["train_loss"],
                               rtol=LOSS_RTOL)     # ensemble vs one network: float32 reordering


# ------------------------------------------------------------------------- results store
def test_results_store_roundtrip_and_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path))
    store = train.ResultsStore()
    assert store.root == tmp_path
    res = train.fit(_model(), TASK, _cfg(steps=3))
    for key in ("seed", "code_version", "torch_version", "device", "wall_time_s", "diverged"):
        assert key in res.meta
    path = store.save("smoke", "unit", "run-1", res)
    assert path == tmp_path / "smoke" / "unit" / "run-1.json"
    assert not list((tmp_path / "smoke" / "unit").glob("*.tmp"))
    back = store.load("smoke", "unit", "run-1")
    for k in res.curves:
        np.testing.assert_array_equal(back.curves[k], res.curves[k])
    assert back.final == res.final and back.config["lr"] == res.config["lr"]
    assert back.meta["torch_version"] == torch.__version__
    assert store.runs("smoke", "unit") == ["run-1"]
    json.loads(path.read_text())                                      # valid JSON (NaN written as "nan")
    calls = []
    again = store.load_or_run("smoke", "unit", "run-1", lambda: calls.append(1))
    assert calls == [] and again.final == res.final
    with pytest.raises(ValueError, match="run='../x'"):
        store.path("smoke", "unit", "../x")


def test_results_store_readonly(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_MFT_RESULTS_READONLY", "1")
    store = train.ResultsStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="read-only"):
        store.load_or_run("smoke", "unit", "missing", lambda: None)
    with pytest.raises(PermissionError):
        store.save("smoke", "unit", "x", train.RunResult())


def test_nan_metrics_survive_json(tmp_path):
    store = train.ResultsStore(tmp_path)
    r = train.RunResult({"a": np.array([1.0, np.nan])}, {"eval_acc": [float("nan")]}, {}, {"diverged": [True]})
    store.save("smoke", "e", "r", r)
    back = store.load("smoke", "e", "r")
    assert np.isnan(back.final["eval_acc"][0]) and back.diverged == [True]


# ------------------------------------------------------------------------- misc
def test_progress_quiet_without_tty(monkeypatch):
    monkeypatch.delenv("RNN_MFT_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert train.progress_enabled() is False
    monkeypatch.setenv("RNN_MFT_PROGRESS", "1")
    assert train.progress_enabled() is True
    monkeypatch.setenv("RNN_MFT_PROGRESS", "0")
    assert train.progress_enabled() is False


def test_device_auto_and_bad_config():
    assert train.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device='gpu7'"):
        train.pick_device("gpu7")
    with pytest.raises(ValueError, match="unknown optimizer='lbfgs'"):
        train.TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown training setting 'epochs'"):
        train.TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="needs an ensemble"):
        train.fit(_model(), TASK, _cfg(lr=[0.1, 0.2]))


def test_stock_module_trains_and_learns_copy_task():
    torch.manual_seed(0)
    task = train.CopyMemoryTask(T=5, n_symbols=3, noise=0.0, n_eval=128)
    model = nets.StockSequenceClassifier(torch.nn.LSTM(3, 16, batch_first=True), task.n_out)
    res = train.fit(model, task, _cfg(steps=150, optimizer="adam", lr=1e-2, batch_size=32, eval_every=0))
    assert res.final["eval_acc"][0] > 0.9


def test_copy_memory_task():
    t = train.CopyMemoryTask(T=6, n_symbols=3, n_copy=2, noise=0.0)
    x, y = t.sample(5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 6, 3) and t.n_out == 9
    np.testing.assert_array_equal(y.numpy(), (x[:, 0].argmax(1) * 3 + x[:, 1].argmax(1)).numpy())
    assert torch.all(x[:, 2:] == 0)
    with pytest.raises(ValueError, match="n_copy"):
        train.CopyMemoryTask(T=1)
