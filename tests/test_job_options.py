"""SLURM job options (rnn_mft.cluster.SlurmSettings, tools/reproduce.py): every value that reaches
the job script is checked, so that none can add a line (a shell command) or an option to it;
setup lines, shell by nature, come only from an explicit argument or $RNN_MFT_SLURM_SETUP and
are single lines."""
import importlib.util
import os
import shlex

import pytest

from rnn_mft.cluster import Report, SlurmSettings

INJECTED = "gpu\ntouch /tmp/rnn_mft_pwned"


def test_a_newline_in_the_partition_is_refused_from_the_environment_and_the_api(monkeypatch):
    monkeypatch.setenv("RNN_MFT_SLURM_PARTITION", INJECTED)
    with pytest.raises(ValueError, match=r"RNN_MFT_SLURM_PARTITION='gpu\\ntouch /tmp/rnn_mft_pwned' is refused; "
                                         r"allowed: \^\[A-Za-z0-9_\.,:\+=@-\]\+\$"):
        SlurmSettings.from_env()
    monkeypatch.delenv("RNN_MFT_SLURM_PARTITION")
    with pytest.raises(ValueError, match=r"slurm partition='gpu\\ntouch /tmp/rnn_mft_pwned' is refused"):
        SlurmSettings.from_env(partition=INJECTED)
    with pytest.raises(ValueError, match="slurm partition='gpu\\\\n' is refused"):
        SlurmSettings(partition="gpu\n")                     # a trailing newline too ($ would let it pass)


@pytest.mark.parametrize("field", ["partition", "account", "qos", "constraint", "job_name"])
@pytest.mark.parametrize("value", ["a b", "a\nb", "a\rb", "a\x00b", "a;b", "a$(id)", "a`id`", "'a'", '"a"', "a#b",
                                   "a\\b", "", "a\tb"])
def test_every_option_that_reaches_the_job_script_matches_a_strict_pattern(field, value):
    with pytest.raises(ValueError, match=rf"slurm {field}=.* is refused; allowed: \^\["):
        SlurmSettings(**{field: value})


def test_valid_options_reach_submitit_parameters(monkeypatch):
    monkeypatch.setenv("RNN_MFT_SLURM_ACCOUNT", "proj-42")
    monkeypatch.setenv("RNN_MFT_SLURM_QOS", "high")
    monkeypatch.setenv("RNN_MFT_SLURM_CONSTRAINT", "a100&(ib|eth)")
    monkeypatch.setenv("RNN_MFT_SLURM_SETUP", "module load cuda/12.4\n\nsource .venv/bin/activate\n")
    s = SlurmSettings.from_env(partition="gpu,gpu-long", gpus=1)
    p = s.submitit_parameters()
    assert p["slurm_partition"] == "gpu,gpu-long" and p["slurm_account"] == "proj-42" and p["slurm_qos"] == "high"
    assert p["slurm_constraint"] == "a100&(ib|eth)" and p["gpus_per_node"] == 1 and p["name"] == "rnn_mft"
    assert p["slurm_setup"] == ["module load cuda/12.4", "source .venv/bin/activate"]   # one per line, blanks dropped
    # the API and the arguments take precedence over the environment
    s = SlurmSettings.from_env(qos="low", constraint="[rack1*2&rack2*4]", setup=["echo 'a; b'"], job_name="fig6")
    p = s.submitit_parameters()
    assert (p["slurm_qos"], p["slurm_constraint"], p["slurm_setup"], p["name"]) == (
        "low", "[rack1*2&rack2*4]", ["echo 'a; b'"], "fig6")
    # settings travel to each job (rnn_mft.cluster.executors.job rebuilds them from their fields)
    assert SlurmSettings(**s.__dict__) == s
    # nothing optional is passed when not set
    monkeypatch.delenv("RNN_MFT_SLURM_SETUP")
    for v in ("ACCOUNT", "QOS", "CONSTRAINT"):
        monkeypatch.delenv(f"RNN_MFT_SLURM_{v}")
    assert not {"slurm_account", "slurm_qos", "slurm_constraint", "slurm_setup", "slurm_partition"} & set(
        SlurmSettings.from_env().submitit_parameters())


@pytest.mark.parametrize("line", ["echo a\necho b", "echo a\r", "echo \x00a", "echo \x1b[31m"])
def test_a_setup_line_is_one_line(line):
    with pytest.raises(ValueError, match="slurm setup: the line .* holds a newline, carriage return, NUL or other "
                                         "control character; allowed: one shell command per line"):
        SlurmSettings(setup=["module load cuda", line])


def test_setup_must_be_a_list_of_lines(monkeypatch):
    with pytest.raises(ValueError, match="slurm setup='module load cuda' must be a list of lines"):
        SlurmSettings(setup="module load cuda")
    with pytest.raises(ValueError, match="must be a list of lines"):
        SlurmSettings(setup=[1])
    assert SlurmSettings(setup=["a\tb"]).setup == ("a\tb",)          # a tab is fine
    monkeypatch.setenv("RNN_MFT_SLURM_SETUP", "echo a\r\necho b")
    with pytest.raises(ValueError, match=r"RNN_MFT_SLURM_SETUP: the line 'echo a\\r' holds"):
        SlurmSettings.from_env()


def test_numbers_are_checked_too():
    for kw, msg in [(dict(cpus=0), "slurm cpus=0 must be at least 1"),
                    (dict(gpus=True), "slurm gpus=True must be an int"),
                    (dict(mem_gb=-1.0), "slurm mem_gb=-1.0 must be a number > 0"),
                    (dict(time_min=5, budget_min=6.0), r"budget_min=6.0 must be in \(0, time_min=5\]")]:
        with pytest.raises(ValueError, match=msg):
            SlurmSettings(**kw)


def test_reproduce_passes_the_new_options_through_and_refuses_an_injected_one(script, monkeypatch, tmp_path, capsys):
    import rnn_mft.cluster
    monkeypatch.setenv("RNN_MFT_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("RNN_MFT_RESULTS_READONLY", raising=False)
    for v in ("PARTITION", "ACCOUNT", "QOS", "CONSTRAINT", "SETUP"):
        monkeypatch.delenv(f"RNN_MFT_SLURM_{v}", raising=False)
    seen = []

    def fake_execute(profile, executor, **kw):
        seen.append(kw["slurm"])
        return Report(profile, executor)

    monkeypatch.setattr(rnn_mft.cluster, "execute", fake_execute)
    rp = script("tools/reproduce.py")
    args = ["--profile", "smoke", "--executor", "slurm", "--no-wait", "--no-book"]
    assert rp.main(args + ["--account", "proj-42", "--qos", "high", "--constraint", "a100|h100",
                           "--slurm-setup", "module load cuda", "--slurm-setup", "source env/bin/activate"]) == 0
    p = seen[-1].submitit_parameters()
    assert (p["slurm_account"], p["slurm_qos"], p["slurm_constraint"], p["slurm_setup"]) == (
        "proj-42", "high", "a100|h100", ["module load cuda", "source env/bin/activate"])
    capsys.readouterr()
    n = len(seen)
    assert rp.main(args + ["--partition", INJECTED]) == 2
    assert "slurm partition='gpu\\ntouch /tmp/rnn_mft_pwned' is refused" in capsys.readouterr().err
    assert rp.main(args + ["--slurm-setup", "echo a\necho b"]) == 2
    assert "holds a newline" in capsys.readouterr().err
    assert len(seen) == n                                    # nothing submitted


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="needs submitit (the cluster extra)")
def test_the_job_script_holds_the_options_as_single_directive_lines(tmp_path, monkeypatch):
    """What submitit writes for sbatch: each option on its own #SBATCH line, the setup lines
    after them, and no other line. (A stand-in ``srun`` on PATH: submitit's slurm executor
    looks for one; nothing is submitted.)"""
    import submitit
    fake = tmp_path / "bin" / "srun"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ.get('PATH', '')}")
    s = SlurmSettings(partition="gpu", account="proj-42", qos="high", constraint="a100&(ib|eth)",
                      setup=("module load cuda", "export A=1"), gpus=1)
    ex = submitit.AutoExecutor(folder=str(tmp_path / "jobs"), cluster="slurm")
    ex.update_parameters(**s.submitit_parameters())
    text = ex._executor._make_submission_file_text("python -c pass", "uid")
    lines = text.splitlines()
    for opt, v in (("partition", "gpu"), ("account", "proj-42"), ("qos", "high"), ("constraint", "a100&(ib|eth)")):
        assert {f"#SBATCH --{opt}={v}", f"#SBATCH --{opt}={shlex.quote(v)}"} & set(lines), opt  # newer submitit quotes
    setup = lines.index("# setup")
    assert lines[setup + 1:setup + 3] == ["module load cuda", "export A=1"]
    shell = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    assert shell[:2] == ["module load cuda", "export A=1"] and len(shell) <= 4, shell
