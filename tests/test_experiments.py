"""The training experiments (Figures 1, 2, 4, 6 and Table 2): their smoke profiles run and store
nothing, the 3xi/6xi overlay is the theory at the very Thetas the heat map trained, the summaries
read the maps correctly, and the data adapter is deterministic and resumable."""
import numpy as np
import pytest
import torch

from rnn_mft import nets, train
from rnn_mft.data import load_task_pair
from rnn_mft.experiments import PROFILES
from rnn_mft.experiments.training import sequence_length, trainability, training_curves, unrolled
from rnn_mft.experiments.training._common import make_ensemble, run_key
from rnn_mft.theory import Theta, analyze

torch.set_num_threads(1)
EXPERIMENTS = (trainability, sequence_length, training_curves, unrolled)
U32 = 2.0 ** -24                              # float32 unit roundoff


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda m: m.__name__.split(".")[-1])
def test_every_profile_has_a_config_and_bad_profile_is_named(exp):
    for p in type(exp.config("ci")).profiles():
        assert exp.config(p).profile == p
    assert set(PROFILES) - set(type(exp.config("ci")).profiles()) <= {"cpu"}      # only optional ones left out
    with pytest.raises(ValueError, match="unknown profile='huge'.*smoke, ci, cpu, paper"):
        exp.config("huge")


def test_ci_profiles_are_at_least_the_issue_minimum():
    cfg = trainability.config("ci")
    assert len(cfg.Ts) >= 6 and cfg.n_alpha >= 6
    assert set(cfg.archs) == {"gru", "lstm", "peephole_lstm"}
    paper = trainability.config("paper")
    assert paper.steps["gru"] == 1000 and paper.steps["lstm"] == 2000
    assert sequence_length.config("paper").steps == 8000
    assert unrolled.config("paper").width == 600


@pytest.mark.parametrize("arch", ["gru", "peephole_lstm", "lstm"])
def test_direction_moves_xi_over_more_than_an_order_of_magnitude(arch):
    cfg = trainability.config("smoke")
    cfg = cfg.replace(n_alpha=6)
    ov = trainability.overlay(cfg, arch)
    assert ov["converged"].all()
    assert np.all(np.diff(ov["xi"]) > 0), "xi must grow along alpha (mu_f grows)"
    assert ov["xi"][-1] / ov["xi"][0] > 10
    np.testing.assert_allclose(ov["3xi"], 3 * ov["xi"])          # one float64 product each side: bitwise
    np.testing.assert_allclose(ov["6xi"], 6 * ov["xi"])


def test_overlay_is_the_theory_of_the_thetas_the_heat_map_trained():
    """The members of a trained map were drawn from exactly the Thetas of the overlay, and the
    theory library at those Thetas gives exactly the overlaid xi."""
    cfg = trainability.config("smoke")
    arch, T = "gru", cfg.Ts[0]
    res = trainability.run_one(cfg, arch, T)
    ov = trainability.overlay(cfg, arch)
    assert len(res.meta["thetas"]) == cfg.n_alpha
    for i, d in enumerate(res.meta["thetas"]):
        assert d == ov["theta"].index(i).to_dict()
        th = Theta(arch, d)
        r = analyze(arch, th, sigma_z=cfg.sigma_z)
        # grid vs scalar quadrature order: the rule's ~1e-8, in log chi = -1/xi in absolute terms
        # (a relative xi tolerance near chi = 1 shrinks like 1/xi in chi); measured 3e-14
        assert abs(np.log(float(r.chi)) - np.log(float(ov["chi"][i]))) < 1e-8
    assert res.meta["labels"] == [f"alpha={a:.4g}" for a in ov["alpha"]]
    assert trainability.accuracy_map({T: res}).shape == (1, cfg.n_alpha)


def test_members_are_drawn_from_their_theta():
    """Empirical weight statistics of each member of a wide ensemble match its Theta (mu_f moves)."""
    a = np.array([0.0, 1.0])
    th = trainability.thetas("gru", a)
    N = 400
    ens = make_ensemble("gru", 784, N, 10, [("theta", th.index(i)) for i in range(2)], seed=3)
    assert np.all(th["f"].rho2 == 0)
    for m in range(2):
        W, U, b = ens.cell.gate("f", member=m)
        # rho2 = 0: every bias is mu_f in float32, and their float32 mean is off by <= N u32 |mu_f|
        mu = float(th["f"].mu[m])
        assert float(b.mean()) == pytest.approx(mu, abs=N * U32 * abs(mu) + 1e-12)
        # sample variances of n = N^2 and 784 N Gaussian entries: relative SE sqrt(2/n); 5 SE
        assert float(W.var() * N) == pytest.approx(float(th["f"].sigma2[m]), rel=5 * np.sqrt(2 / N**2))
        assert float(U.var() * 784) == pytest.approx(float(th["f"].nu2[m]), rel=5 * np.sqrt(2 / (784 * N)))
    # all members share one read-out draw
    torch.testing.assert_close(ens.weight[0], ens.weight[1])


def test_make_ensemble_mixes_initializations():
    th = Theta.critical("peephole_lstm")
    ens = make_ensemble("peephole_lstm", 7, 16, 10, [("standard",), ("critical", th), ("chrono", 100.0)])
    Wstd = ens.cell.gate("r", member=0).W
    # orthogonal: float32 Householder QR keeps Q Q^T within ~2 N u32 of I entrywise, the N-term
    # products add N u32: 3 N u32 = 2.9e-6 at N = 16 (measured 1.2e-7)
    torch.testing.assert_close(Wstd @ Wstd.T, torch.eye(16), atol=3 * 16 * U32, rtol=0)
    # rho2 = 0: every bias is 5.0, exact in float32, and so is its mean (up to 16 u32 5)
    assert float(ens.cell.gate("f", member=1).b.mean()) == pytest.approx(5.0, abs=0.01)
    # sigma^2 = 1e-5: sd 7.9e-4, so 0.01 is 12.6 sd (P ~ 1e-36 over 256 entries)
    assert float(ens.cell.gate("f", member=1).W.abs().max()) < 0.01
    bf = ens.cell.gate("f", member=2).b
    # log U(1, T-1): its float32 largest value may round up by u32 log(99) = 2.7e-7
    assert float(bf.min()) >= 0.0 and float(bf.max()) <= np.log(99.0) + 1e-6
    torch.testing.assert_close(ens.cell.gate("i", member=2).b, -bf)
    with pytest.raises(ValueError, match="unknown initialization kind 'xavier'"):
        make_ensemble("gru", 3, 4, 2, [("xavier",)])


def test_region_summary_reads_the_map():
    Ts = [2, 8, 32]
    ov = {"xi": np.array([1.0, 10.0])}
    acc = np.array([[0.9, 0.95], [0.1, 0.9], [0.1, 0.5]])
    s = trainability.region_summary(acc, Ts, ov)
    # xi=1: T=2 (<=3) trains, T=8, 32 (>=6) do not; xi=10: all T <= 30 except 32 (3xi<32<6xi)
    # (means of a few numbers: approx's default rel 1e-6 >> their float64 rounding)
    assert s["T <= 3xi"] == (pytest.approx((0.9 + 0.95 + 0.9) / 3), 3)
    assert s["3xi < T < 6xi"] == (pytest.approx(0.5), 1)
    assert s["T >= 6xi"] == (pytest.approx(0.1), 2)
    text = trainability.comparison({"gru": s}, {"gru": s}, trainability.config("smoke"))
    assert "agrees: 0.92 below" in text


def test_best_curves_picks_the_best_learning_rate_and_skips_divergence():
    cfg = training_curves.config("smoke")
    n = cfg.n_lr
    M = 2 * n
    acc = np.full((3, M), 0.1)
    acc[-1] = [0.2, np.nan, 0.9, 0.3][:M] if M == 4 else np.linspace(0.1, 0.5, M)
    res = train.RunResult(curves={"eval_acc": acc, "eval_step": np.array([0, 1, 2])},
                          final={"train_loss": [1.0] * M}, meta={"diverged": [False, True, False, False][:M]})
    best = training_curves.best_curves(res, cfg)
    assert best["standard"]["lr"] == pytest.approx(training_curves.lrs(cfg)[0])   # member 1 diverged (NaN)
    assert best["critical"]["final_acc"] == pytest.approx(0.9)
    assert training_curves.steps_to([0, 10, 20], [0.1, 0.6, 0.9], 0.55) == 10
    assert training_curves.steps_to([0, 10], [0.1, 0.2], 0.55) is None


def test_unrolled_table_reports_unavailable_data():
    cfg = unrolled.config("ci")
    text = unrolled.table({"mnist": (None, "no network"), "cifar10": (None, "CIFAR-10 not found")}, cfg)
    assert "| CIFAR-10 | critical | 61.8 | not run | CIFAR-10 not found |" in text
    assert "| MNIST | standard | 98.6 | not run | no network |" in text


def test_run_key_changes_with_settings_not_profile():
    a = run_key({"width": 8, "profile": "ci"})
    assert a == run_key({"width": 8, "profile": "paper"}) and a != run_key({"width": 16})


# ------------------------------------------------------------------------- DatasetTask
@pytest.fixture(scope="module")
def padded():
    return load_task_pair("padded_mnist", seq_len=4, progressbar=False, download=False)


def test_dataset_task_is_a_function_of_the_generator(padded):
    tr, te = padded
    t = train.DatasetTask(tr, te, n_eval=50)
    x1, y1 = t.train_batch(8, torch.Generator().manual_seed(5))
    x2, y2 = t.train_batch(8, torch.Generator().manual_seed(5))
    torch.testing.assert_close(x1, x2)
    assert torch.equal(y1, y2)
    g = torch.Generator().manual_seed(5)
    a, _ = t.train_batch(8, g)
    b, _ = t.train_batch(8, g)
    assert not torch.equal(a[:, 1:], b[:, 1:])            # fresh noise and items every batch
    xe, ye = t.eval_data()
    assert xe.shape == (50, 4, 784) and len(ye) == 50
    xt, yt = train.DatasetTask(tr, n_eval=20, eval_on="train").eval_data()
    tr.set_epoch(0)
    torch.testing.assert_close(xt, tr.batch(np.arange(20))[0])


def test_dataset_task_bad_input(padded):
    tr, te = padded
    with pytest.raises(ValueError, match="eval_on='valid'; allowed: 'test', 'train'"):
        train.DatasetTask(tr, te, eval_on="valid")
    with pytest.raises(ValueError, match="n_eval=0; allowed: 1.."):
        train.DatasetTask(tr, te, n_eval=0)
    with pytest.raises(ValueError, match="needs a test task"):
        train.DatasetTask(tr)


def test_dataset_task_checkpoint_resume_is_exact(padded, tmp_path):
    tr, te = padded
    cfg = train.TrainConfig(steps=6, batch_size=8, optimizer="adam", lr=1e-2, checkpoint_every=3, progress=False,
                            device="cpu")

    def model():
        return make_ensemble("gru", 784, 8, 10, [("theta", Theta.uniform("gru", sigma2=1.0, nu2=1.0))], seed=1)

    full = train.fit(model(), train.DatasetTask(tr, te, n_eval=16), cfg)

    class Stop(Exception):
        pass

    def hook(step, info):
        if step == 4:
            raise Stop

    ck = tmp_path / "ck.pt"
    with pytest.raises(Stop):
        train.fit(model(), train.DatasetTask(tr, te, n_eval=16), cfg, checkpoint=ck, hook=hook)
    resumed = train.fit(model(), train.DatasetTask(tr, te, n_eval=16), cfg, checkpoint=ck)
    assert resumed.meta["resumed_from"] == 3
    np.testing.assert_array_equal(full.curves["train_loss"], resumed.curves["train_loss"])


def test_stored_paper_results_are_read_never_trained(tmp_path, monkeypatch):
    import types

    from rnn_mft.experiments import Config
    from rnn_mft.experiments.training._common import paper_note, provenance, stored_paper, unit
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path))
    monkeypatch.delenv("RNN_MFT_RESULTS_READONLY", raising=False)
    calls = []

    def run_one(cfg, name, store=None):
        return store.load_or_run("paper", "exp", name, lambda: calls.append(1) or train.RunResult())

    mod = types.SimpleNamespace(
        config=lambda profile: Config(profile=profile), run_one=run_one,
        units=lambda profile: [unit(profile, "exp", n, run_one, [n]) for n in ("run1", "run2")])
    assemble = lambda loaded: {u["name"]: r for u, r in loaded}  # noqa: E731
    assert stored_paper(mod, assemble) is None and not calls          # missing: nothing trained
    assert "none stored" in paper_note("ci", None)
    r = train.RunResult(final={"eval_acc": [0.5]}, meta={"device": "cuda (H100)", "code_version": "git:abc",
                                                        "torch_version": "2.x", "finished": "2026-01-01T00:00:00",
                                                        "wall_time_s": 7200.0})
    train.ResultsStore(tmp_path).save("paper", "exp", "run1", r)
    got = stored_paper(mod, assemble)
    assert got.results["run1"].final["eval_acc"] == [0.5] and not calls      # run2 missing: not trained either
    assert got.stored == ["run1"] and got.missing == ["run2"]
    text = paper_note("ci", got.results)
    assert "1 stored runs; device cuda (H100); code git:abc" in text and "2.0 h of training" in text
    assert f"rnn_mft {__import__('rnn_mft').__version__}; torch 2.x" in text   # the store records the version
    assert provenance({}) == "no runs"
