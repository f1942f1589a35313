"""Progress wherever work is long (issue 28): tqdm bars in Jupyter, one "run k of N, ETA" line per
training run of an experiment, echoed to the book's build log, and a build log without kernel
warnings."""
import io
import sys
import types

import nbformat
import pytest

from rnn_mft import train
from rnn_mft.book import PROGRESS_LINE, _settle_streams, execute_chapter
from rnn_mft.experiments.training import critical_init_your_model as exp
from rnn_mft.experiments.training._common import Sweep, stored, sweep
from rnn_mft.train import engine, progress


# ------------------------------------------------------------------ bars: when and which
@pytest.fixture
def no_terminal(monkeypatch):
    monkeypatch.delenv("RNN_MFT_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())


def _fake_ipython(monkeypatch, shell):
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_bars_on_in_a_jupyter_kernel_off_in_a_log(no_terminal, monkeypatch):
    zmqshell = pytest.importorskip("ipykernel.zmqshell")
    assert progress.progress_enabled() is False                       # a CI log: not a terminal, no kernel
    _fake_ipython(monkeypatch, zmqshell.ZMQInteractiveShell.__new__(zmqshell.ZMQInteractiveShell))
    assert progress.progress_enabled() is True                        # a notebook, papermill
    monkeypatch.setenv("RNN_MFT_PROGRESS", "0")
    assert progress.progress_enabled() is False
    assert progress.progress_enabled(True) is True


def test_a_terminal_ipython_is_not_a_kernel(no_terminal, monkeypatch):
    pytest.importorskip("ipykernel.zmqshell")
    _fake_ipython(monkeypatch, object())                            # IPython in a terminal, or none running
    assert progress.progress_enabled() is False
    _fake_ipython(monkeypatch, None)
    assert progress.progress_enabled() is False
    monkeypatch.setenv("RNN_MFT_PROGRESS", "1")
    assert progress.progress_enabled() is True


def test_bar_off_a_terminal_is_cleared_and_slow(no_terminal):
    assert isinstance(progress.progress_bar(10, 0, "x", False), progress.NoBar)
    bar = progress.progress_bar(10, 2, "x", True)
    try:
        assert bar.leave is False and bar.mininterval == 5.0 and bar.n == 2 and bar.total == 10
    finally:
        bar.close()


# ------------------------------------------------------------------ the run k of N line
def test_line_format_and_eta():
    sw = Sweep("trainability", 14, done=3, trained_s=[40.0, 42.0])
    line = sw.line("untied-gru-T2_4_8-5d2ef1ad07", 41.0)
    assert line == "trainability: run 3 of 14 (untied-gru-T2_4_8-5d2ef1ad07): trained in 41 s; ETA 8 min"
    assert sw.line("r", None) == "trainability: run 3 of 14 (r): loaded from the store; ETA 8 min"
    assert Sweep("e", 3, done=3, trained_s=[5.0]).line("r", 5.0) == "e: run 3 of 3 (r): trained in 5.0 s"
    assert Sweep("e", 3, done=1).line("r", None) == "e: run 1 of 3 (r): loaded from the store"
    for text in (line, sw.line("r", None), "e: run r-0123456789: trained in 2.0 s"):
        assert PROGRESS_LINE.match(text), text                      # what the build log echoes
    assert not PROGRESS_LINE.match("| trainability | run 3 | of 14 |")


def test_smoke_run_prints_one_line_per_run(capsys, monkeypatch):
    monkeypatch.delenv("RNN_MFT_PROGRESS", raising=False)
    exp.run(exp.config("smoke"))
    lines = [ln for ln in capsys.readouterr().out.splitlines() if PROGRESS_LINE.match(ln)]
    assert len(lines) == 2
    assert lines[0].startswith("critical_init_your_model: run 1 of 2 (default-") and "trained in" in lines[0]
    assert "; ETA " in lines[0]
    assert lines[1].startswith("critical_init_your_model: run 2 of 2 (critical-") and "ETA" not in lines[1]


def test_quiet_when_progress_is_off(capsys, monkeypatch):
    monkeypatch.setenv("RNN_MFT_PROGRESS", "0")
    exp.run(exp.config("smoke"))
    assert capsys.readouterr().out == ""


def test_loaded_runs_say_so(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("RNN_MFT_PROGRESS", raising=False)
    monkeypatch.setenv("RNN_MFT_CHECKPOINTS", str(tmp_path / "checkpoints"))
    store = train.ResultsStore(tmp_path / "results")
    fn = lambda ckpt: train.RunResult(meta={"settings": {}})   # noqa: E731
    with sweep("unit", 2):
        stored("ci", "unit", "a", fn, store)
        stored("ci", "unit", "b", fn, store)
    with sweep("unit", 2):
        stored("ci", "unit", "a", fn, store)
        stored("ci", "unit", "b", fn, store)
    stored("ci", "unit", "b", fn, store)                           # outside a sweep: no counter
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("unit: run 1 of 2 (a): trained in ") and "; ETA " in out[0]
    assert out[1].startswith("unit: run 2 of 2 (b): trained in ")
    assert out[2:4] == ["unit: run 1 of 2 (a): loaded from the store", "unit: run 2 of 2 (b): loaded from the store"]
    assert out[4] == "unit: run b: loaded from the store"


# ------------------------------------------------------------------ the executed notebook
def _stream(name, text):
    return nbformat.NotebookNode(output_type="stream", name=name, text=text)


def test_settled_streams_keep_what_a_terminal_shows():
    fig = nbformat.NotebookNode(output_type="display_data", data={"text/plain": "fig"}, metadata={})
    outs = [_stream("stdout", "a\n"), _stream("stderr", "\rx:   0%|"), _stream("stderr", "\rx:  50%|"),
            _stream("stdout", "e: run 1 of 2 (r): trained in 1.0 s\n"), _stream("stderr", "\rx: 100%|"),
            _stream("stderr", "\r        "), _stream("stdout", "b\n"), _stream("stderr", "\r"), fig,
            _stream("stderr", "a warning\n"), _stream("stderr", "\rkept 3/3\r"), _stream("stdout", "c")]
    got = _settle_streams(outs)
    assert got == [_stream("stdout", "a\ne: run 1 of 2 (r): trained in 1.0 s\nb\n"), fig,
                   _stream("stderr", "a warning\nkept 3/3"), _stream("stdout", "c")]
    assert _settle_streams([_stream("stdout", "plain\n\n")]) == [_stream("stdout", "plain\n\n")]


CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Progress

```{code-cell} ipython3
:tags: [parameters]
profile = "ci"
```

```{code-cell} ipython3
from rnn_mft.experiments.training import critical_init_your_model as exp
from rnn_mft.train import engine, progress
assert progress.progress_enabled()          # a papermill kernel is a Jupyter kernel
result = exp.run(exp.config(profile))
```
"""


@pytest.mark.slow
def test_chapter_echoes_progress_and_the_kernel_does_not_warn(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("RNN_MFT_PROGRESS", raising=False)
    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    (book / "_config.yml").write_text("title: t\nrepository:\n  url: https://example.org/r\n")
    (book / "chapters" / "progress.md").write_text(CHAPTER)
    logged = []
    res = execute_chapter("progress", "smoke", tmp_path / "out", book_dir=book,
                          log=lambda line, **kw: logged.append(line))
    assert [ln.strip().split(" (")[0] for ln in logged] == ["critical_init_your_model: run 1 of 2",
                                                            "critical_init_your_model: run 2 of 2"]
    err = capfd.readouterr().err
    assert "IPKernelApp" not in err and "WARNING" not in err, err   # no TCP warning, no shutdown interrupt
    outs = [o for c in nbformat.read(res.output, as_version=4).cells for o in c.get("outputs", [])]
    assert [o.text.count("\n") for o in outs if o.get("name") == "stdout"] == [2]
    assert not any("\r" in o.get("text", "") for o in outs)          # the bars' redraws are gone
