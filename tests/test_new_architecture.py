"""A new architecture is one module and one ``register`` call (issue 26): nothing else is edited.

Two new architectures, as a contributor would write them:
* ``tests/arch_gru_copy.py``: a copy of the GRU under a new name. Everything the package computes
  for it must equal the GRU's bit for bit: the theory, the solver, the presets, ``nets.make``
  (it names the GRU's fused loop), ``init_``/``critical_init_``, a training run, the memory
  estimate and a Table 1 column. And every test parametrized over the registry runs it
  (``RNN_MFT_TEST_ARCH``, conftest.py), in a subprocess.
* ``tests/arch_toy_gated_vanilla.py``: a cell with no fused loop (``fused=None``), which the cells
  run through its registry ``update`` under autograd. Its forward pass is checked against the
  float64 reference update, its gradients against central finite differences, and it trains.

Tolerances: the copy is compared bitwise (the same arithmetic in the same order). The toy's
float32 forward against the float64 reference: T = 6 steps of N + n_in = 9-term products,
|values| <= ~3, so ~T (N + n_in) u32 * 3 ~ 1e-5 (atol 1e-5). Its float64 gradient against central
differences with h = 1e-6: truncation O(h^2 |f'''|) ~ 1e-12 and rounding u64 |f| / h ~ 1e-10
(atol 1e-7 covers both with a margin of 1000).
"""
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_mft import arch, nets, train
from rnn_mft.theory import TABLE1, Theta, analyze, reference_step, solve_for_timescale
from rnn_mft.train.ensembles import ensemble_bytes

HERE = Path(__file__).parent
ROOT = HERE.parent
FIELDS = ("mu_s", "q_s", "c_s", "chi", "xi", "m1", "m2", "var", "one_minus_chi", "one_minus_chi_err")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _registered(filename: str):
    """Register the architecture of ``tests/<filename>`` for one test; yield its name."""
    mod = _load(HERE / filename)
    arch.register(mod)
    try:
        yield mod.ARCH.name
    finally:
        arch.unregister(mod.ARCH.name)


@pytest.fixture
def copy():
    yield from _registered("arch_gru_copy.py")


@pytest.fixture
def toy():
    yield from _registered("arch_toy_gated_vanilla.py")


def _same_theta(a: Theta, b: Theta) -> bool:
    return a.to_dict() == b.to_dict()


# --- a copy of the GRU: everything equal, bit for bit --------------------------------------------
def test_copy_theory_presets_and_solver_equal_the_gru(copy):
    for preset in ("standard", "critical"):
        mine, gru = getattr(Theta, preset)(copy), getattr(Theta, preset)("gru")
        assert _same_theta(mine, gru), preset                   # the r2.nu2 = 0 is gone
        r, g = analyze(copy, mine, sigma_z=0.7), analyze("gru", gru, sigma_z=0.7)
        for f in FIELDS:
            assert np.array_equal(getattr(r, f), getattr(g, f), equal_nan=True), f
    s, g = solve_for_timescale(copy, xi=40.0), solve_for_timescale("gru", xi=40.0)
    assert _same_theta(s.theta, g.theta) and s.xi == g.xi


def test_copy_in_the_cli(copy, capsys):
    from rnn_mft import cli
    js = Theta.critical("gru").to_json()
    outs = []
    for name in (copy, "gru"):
        assert cli.main(["theory", "--arch", name, "--theta", js, "--json"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1]
    assert cli.main(["solve", "--arch", copy, "--xi", "40"]) == 0
    assert Theta.from_json(copy, capsys.readouterr().out).to_dict() == solve_for_timescale("gru", xi=40.0).theta.to_dict()
    assert cli.main(["theory", "--arch", "nope", "--theta", js]) == 2
    assert f"'{copy}'" in capsys.readouterr().err                # the choices list the registered architectures


def _cell(name, seed, untied=None):
    cell = nets.make(name, n_in=3, n_hidden=6, untied=untied, members=2)
    nets.init_(cell, Theta.standard(name), generator=torch.Generator().manual_seed(seed))
    return cell


@pytest.mark.parametrize("untied", [None, 5])
def test_copy_cells_and_initializers_equal_the_gru(copy, untied):
    a, b = _cell(copy, 1, untied), _cell("gru", 1, untied)
    assert a.storage_order == b.storage_order
    x = torch.randn(2, 4, 5, 3, generator=torch.Generator().manual_seed(2))
    pa, sa = a(x)
    pb, sb = b(x)
    assert torch.equal(pa, pb) and torch.equal(sa, sb)
    pa.sum().backward()
    pb.sum().backward()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p.grad, q.grad)
    for init in (lambda m, g: nets.critical_init_(m, generator=g),
                 lambda m, g: nets.critical_init_(m, xi=30.0, generator=g),
                 lambda m, g: nets.chrono_init_(m, t_max=20.0, generator=g)):
        init(a, torch.Generator().manual_seed(3))
        init(b, torch.Generator().manual_seed(3))
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_copy_trains_like_the_gru_and_has_a_table1_column(copy):
    task = train.CopyMemoryTask(T=8, n_symbols=3, n_eval=32)
    cfg = train.TrainConfig(steps=6, batch_size=8, optimizer="adam", lr=3e-3, eval_every=3, progress=False,
                            device="cpu", seed=5)
    res = []
    for name in (copy, "gru"):
        m = nets.make_classifier(name, task.n_in, 8, task.n_out)
        nets.critical_init_(m, generator=torch.Generator().manual_seed(4))
        m.reset_readout(torch.Generator().manual_seed(6))
        res.append(train.fit(m, task, cfg))
    assert np.array_equal(res[0].curves["train_loss"], res[1].curves["train_loss"])
    assert np.array_equal(res[0].curves["eval_acc"], res[1].curves["eval_acc"])
    assert ensemble_bytes(copy, 3, 16, 4, [10, 20], 8, untied=False) == \
        ensemble_bytes("gru", 3, 16, 4, [10, 20], 8, untied=False)
    assert TABLE1[copy].name == "GRU (copy)" and list(TABLE1)[-1] == copy
    from rnn_mft.plotting.architectures import table1
    assert "GRU (copy)" in table1()


@pytest.mark.slow
def test_every_registry_parametrized_test_runs_the_copy():
    """The tests parametrized over the registry, run with the copy registered (conftest.py)."""
    files = ["tests/test_init.py", "tests/test_nets_vs_theory.py", "tests/test_sim_theory.py",
             "tests/test_theory.py"]
    env = dict(os.environ, RNN_MFT_TEST_ARCH=str(HERE / "arch_gru_copy.py"))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "gru_copy",
                          "-m", "slow or not slow", *files], cwd=ROOT, env=env, capture_output=True, text=True)
    tail = out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    passed = int(tail.rsplit(" passed", 1)[0].split()[-1])
    assert passed >= 8, tail                # 2 per file at least: every parametrized test took the copy


# --- a cell without a fused loop: the registry update under autograd -----------------------------
def _reference_run(name, cell, x):
    """The float64 reference update over the steps of ``x`` (batch, T, n_in), member 0."""
    P = {g: tuple(t.detach().double().numpy() for t in cell.gate(g, member=0)) for g in cell.gates}
    s = np.zeros((x.shape[0], cell.n_hidden))
    out = []
    for t in range(x.shape[1]):
        s = reference_step(name, s, x[:, t].double().numpy(), P)
        out.append(s)
    return np.stack(out, 1)


def test_toy_cell_runs_its_update_under_autograd(toy):
    assert arch.get(toy).fused is None
    cell = nets.make(toy, n_in=4, n_hidden=5)
    nets.init_(cell, Theta.uniform(toy, sigma2=1.2, nu2=0.8, rho2=0.1), generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(1))
    p, last = cell(x)
    want = _reference_run(toy, cell, x)
    assert np.abs(p.detach().double().numpy() - want).max() < 1e-5
    assert torch.equal(last, p[:, -1])
    with pytest.raises(ValueError, match="h-detach"):
        nets.make(toy, n_in=4, n_hidden=5, h_detach=0.5)


def test_toy_gradients_match_finite_differences(toy):
    cell = nets.make(toy, n_in=2, n_hidden=3).double()
    nets.init_(cell, Theta.uniform(toy, sigma2=1.2, nu2=0.8, rho2=0.1), generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = lambda: (cell(x)[0] ** 2).sum()      # noqa: E731
    loss().backward()
    h = 1e-6
    with torch.no_grad():
        for p in cell.parameters():
            flat, grad = p.view(-1), p.grad.view(-1)
            for i in range(0, flat.numel(), max(1, flat.numel() // 7)):
                old = flat[i].item()
                flat[i] = old + h
                up = loss().item()
                flat[i] = old - h
                down = loss().item()
                flat[i] = old
                assert abs((up - down) / (2 * h) - grad[i].item()) < 1e-7


def test_toy_trains_and_is_sized(toy):
    task = train.CopyMemoryTask(T=6, n_symbols=3, n_eval=32)
    m = nets.make_classifier(toy, task.n_in, 8, task.n_out)
    nets.init_(m, Theta.uniform(toy, sigma2=1.0, nu2=1.0), generator=torch.Generator().manual_seed(0))
    res = train.fit(m, task, train.TrainConfig(steps=4, batch_size=8, optimizer="adam", lr=1e-2, eval_every=2,
                                               progress=False, device="cpu"))
    assert np.all(np.isfinite(res.curves["train_loss"]))
    assert ensemble_bytes(toy, 3, 16, 4, [10], 8, untied=False)["total"] > 0


# --- a wrong spec fails loudly -------------------------------------------------------------------------
def test_wrong_specs_fail_loudly(toy):
    g = arch.get("gru")
    with pytest.raises(ValueError, match="forget_gate='x'"):
        dataclasses.replace(g, name="bad", forget_gate="x")
    with pytest.raises(ValueError, match="memory_per_step"):
        dataclasses.replace(g, name="bad", memory_per_step=3)
    with pytest.raises(ValueError, match="critical"):
        dataclasses.replace(g, name="bad", critical={"f": {}})
    with pytest.raises(ValueError, match="stock.gate_order"):
        dataclasses.replace(g, name="bad", stock=arch.StockLayout(("GRU",), {"f": 0}))
    with pytest.raises(ValueError, match="needs a spec"):
        dataclasses.replace(g, name="bad", spec=None, theory="closed_form")
    for bad, match in ((dataclasses.replace(g, name="bad_loop", fused="nope"), "fused loops are"),
                       (dataclasses.replace(g, name="bad_order", storage_order=("r", "f", "r2")), "gate order")):
        arch.register(bad)
        try:
            with pytest.raises(ValueError, match=match):
                nets.make(bad.name, n_in=2, n_hidden=3)
        finally:
            arch.unregister(bad.name)
    with pytest.raises(ValueError, match="without a critical preset"):
        Theta.critical(toy)
    nothing = dataclasses.replace(arch.get(toy), name="no_theory", spec=None, theory=None)
    arch.register(nothing)
    try:
        with pytest.raises(ValueError, match="no mean-field theory"):
            analyze("no_theory", Theta.uniform("no_theory", sigma2=1.0))
    finally:
        arch.unregister("no_theory")
