"""Build the book: execute each chapter with papermill, then render with jupyter-book 1.x.

The pipeline (DESIGN.md):

1. every chapter listed in ``book/_toc.yml`` is a jupytext MyST notebook under ``book/chapters``;
   jupytext reads it, papermill executes it with ``-p profile <profile>`` (working directory:
   the chapter's folder, as in Jupyter) and writes the executed ``.ipynb`` into a generated tree
   ``<build>/book`` beside a copy of the book's configuration;
2. ``jupyter-book build`` renders that tree with execution off and Sphinx warnings as errors;
3. figures are written by the chapters themselves (:func:`rnn_mft.plotting.savefig`) as PNG and
   PDF into ``<build>/figures``.

A chapter that fails stops the build with the chapter's name and the failing cell
(:class:`ChapterError`). The same :func:`execute_chapter` is what ``tests/test_chapters.py``
runs with the ``smoke`` profile.

While a chapter runs, the progress lines of its training runs (:data:`PROGRESS_LINE`, printed by
the training experiments: ``trainability: run 3 of 14 (<name>): trained in 41 s; ETA 6 min``) are
echoed to the build log as well; the rest of its output stays in the notebook. The kernel talks
to papermill over local IPC sockets (a private temporary folder), not TCP: ipykernel warns about
unencrypted TCP for every kernel otherwise. The executed notebook keeps what a terminal would
show of its output streams: a progress bar's redraws collapse to its last state, and a bar that
was cleared (``leave=False``) leaves nothing.

*Why this module is ~550 lines (over the ~500 of the rest of src/).* It is the build's three
steps and their checks, one after another: executing a chapter (the kernel's transport, the
progress echo, the stream clean-up), writing the rendering tree, and checking the rendered
HTML (:func:`check_build`); each part is small and used only by the next. The bibliography
style, a Sphinx extension, is its own module (:mod:`rnn_mft.bibstyle`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import __version__
from ._io import atomic_write_text
from .experiments import BOOK_PROFILES, check_profile
from .settings import current as current_settings, export_env

__all__ = ["REPO_ROOT", "BOOK_DIR", "ChapterError", "BudgetExhausted", "chapters", "pages", "execute_chapter", "build",
           "check_build", "build_ref", "colab_cell", "PROGRESS_LINE"]

REPO_ROOT = Path(__file__).resolve().parents[2]
BOOK_DIR = REPO_ROOT / "book"

#: a training run's progress line in a chapter's output, which the build log echoes (the format
#: of ``rnn_mft.experiments.training``'s ``sweep``): ``<experiment>: run <k> of <n> (<name>):
#: trained in 41 s; ETA 6 min``, ``... loaded from the store``, or without a sweep ``<experiment>:
#: run <name>: trained in 41 s``
PROGRESS_LINE = re.compile(r"^\w+: run (?:\d+ of \d+ \(\S+\)|\S+): (?:trained in |loaded from the store)")

# First cell of every executed notebook, hidden in the HTML: on Google Colab (launch button) it
# installs this library from the repository, at the commit the book was built from
# (:func:`colab_cell`), elsewhere it does nothing. A chapter needs the core, the `torch` extra
# (Colab's own torch satisfies it) and the `plot` extra (matplotlib; IPython comes with Jupyter),
# not the book-building `book` extra (jupyter-book, Sphinx, papermill, ...).
_COLAB_CELL = """\
# Google Colab only: install the library this chapter imports (does nothing elsewhere),
# {ref_note}.
import sys
if "google.colab" in sys.modules:
    %pip install -q "rnn_mft[torch,plot] @ git+{repo_url}@{ref}"
"""


class ChapterError(RuntimeError):
    """A chapter failed to execute; the message names the chapter and the failing cell."""


class BudgetExhausted(Exception):
    """The time budget ran out inside chapter ``chapter``: its running training checkpointed
    (``detail`` says where) and the build stopped; the same command later continues."""

    def __init__(self, chapter: str, detail: str):
        self.chapter, self.detail = chapter, detail
        super().__init__(f"time budget exhausted in chapter {chapter!r}: {detail}")


@dataclass
class ChapterResult:
    name: str
    seconds: float
    output: Path


def _toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(str(node["file"]))
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                out.extend(_toc_files(child))
    return out


def chapters(book_dir: Path = BOOK_DIR) -> list[str]:
    """Names (file stems) of the notebook chapters in ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((Path(book_dir) / "_toc.yml").read_text())
    return [Path(f).name for f in _toc_files(toc) if f.startswith("chapters/")]


def pages(book_dir: Path = BOOK_DIR) -> list[str]:
    """Every page of ``_toc.yml`` in reading order, as paths without suffix relative to the book:
    the root (``intro``), the chapters (``chapters/<name>``) and the appendix (``api/...``,
    ``references``). The HTML of page ``p`` is ``<html>/<p>.html``."""
    toc = yaml.safe_load((Path(book_dir) / "_toc.yml").read_text())
    return [str(toc["root"])] + [f for f in _toc_files(toc) if f != str(toc["root"])]


def _repo_url(book_dir: Path) -> str:
    cfg = yaml.safe_load((Path(book_dir) / "_config.yml").read_text())
    return current_settings().repo_url or cfg.get("repository", {}).get("url", "")


def build_ref(book_dir: Path = BOOK_DIR) -> tuple[str, str]:
    """The git ref that the chapters' Colab cell installs, and a note saying what it is.

    In a git checkout: the commit ``git rev-parse HEAD`` of the repository that holds
    ``book_dir`` (the note adds when the working tree has uncommitted changes, which that commit
    lacks). Elsewhere (no git, or not a checkout): the tag ``v<version>`` of this version, and the
    note says so."""
    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(["git", "-C", str(book_dir), *args], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None

    head = git("rev-parse", "--verify", "HEAD^{commit}")
    commit = head.stdout.strip() if head is not None and head.returncode == 0 else ""
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        status = git("status", "--porcelain", "--untracked-files=no")
        dirty = status is not None and status.returncode == 0 and status.stdout.strip() != ""
        note = f"at commit {commit[:12]}, the one this book was built from"
        if dirty:
            note += "\n# (the build had uncommitted changes, which this commit lacks)"
        return commit, note
    tag = f"v{__version__}"
    return tag, f"at the tag {tag}\n# (this book was not built from a git checkout, so its commit is unknown)"


def colab_cell(book_dir: Path = BOOK_DIR) -> str:
    """The source of the hidden first cell of every executed chapter: on Colab it pip-installs
    ``rnn_mft[torch,plot]`` from the repository at :func:`build_ref` (elsewhere it does nothing)."""
    ref, note = build_ref(book_dir)
    return _COLAB_CELL.format(repo_url=_repo_url(book_dir), ref=ref, ref_note=note)



def execute_chapter(name: str, profile: str, out_dir: Path, *, book_dir: Path = BOOK_DIR,
                    figures_dir: Path | None = None, timeout: int | None = None, log=print) -> ChapterResult:
    """Execute ``book/chapters/<name>.md`` with papermill and write ``<out_dir>/<name>.ipynb``.
    The chapter's training progress lines (:data:`PROGRESS_LINE`) also go to ``log`` as it runs.

    Raises
    ------
    ChapterError
        Naming the chapter, the failing cell (its number among the code cells and its first
        source line) and the exception.
    ValueError
        For an unknown profile or chapter.
    """
    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    check_profile(profile)
    src = Path(book_dir) / "chapters" / f"{name}.md"
    if not src.exists():
        known = ", ".join(sorted(p.stem for p in (Path(book_dir) / "chapters").glob("*.md")))
        raise ValueError(f"unknown chapter {name!r}; chapters: {known}")
    nb = jupytext.read(src)
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"):
        raise ChapterError(f"chapter {name!r} has no code cell tagged 'parameters'")
    colab = nbformat.v4.new_code_cell(colab_cell(book_dir))
    colab.metadata["tags"] = ["remove-cell"]
    nb.cells.insert(0, colab)
    for i, cell in enumerate(nb.cells):  # deterministic ids (jupytext makes random ones)
        cell["id"] = f"{name}-{i}"
    nb.metadata["rnn_mft"] = {"chapter": name, "profile": profile}

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.ipynb"
    tmp = out_dir / f".{name}.running.ipynb"
    # the kernel's RNN_MFT_FIGURES_DIR (restored after)
    restore_figures = export_env(figures_dir=str(Path(figures_dir).resolve())) if figures_dir is not None else None
    # A non-interactive MPLBACKEND (e.g. Agg) in the caller's environment would override the
    # kernel's inline backend and no figure would be displayed: the kernel runs without it.
    mpl_backend = os.environ.pop("MPLBACKEND", None)
    sockets = tempfile.mkdtemp(prefix="rnn-mft-kernel-")
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(nb, str(tmp), parameters={"profile": profile}, kernel_name="python3",
                                   cwd=str(src.parent), progress_bar=False, log_output=False,
                                   stdout_file=_ProgressEcho(log), execution_timeout=timeout,
                                   config=_kernel_config(Path(sockets)), kernel_manager_class=_kernel_manager_class())
    except PapermillExecutionError as exc:
        if exc.ename == "BudgetExhausted":
            tmp.unlink(missing_ok=True)
            raise BudgetExhausted(name, str(exc.evalue)) from None
        src_line = next((ln for ln in exc.source.splitlines() if ln.strip()), "")
        raise ChapterError(
            f"chapter {name!r} (profile {profile!r}) failed in code cell [{exc.exec_count}] "
            f"(cell #{exc.cell_index} of the notebook, first line: {src_line!r}): "
            f"{exc.ename}: {exc.evalue}\n  executed notebook with the traceback: {tmp}") from None
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
        if mpl_backend is not None:
            os.environ["MPLBACKEND"] = mpl_backend
        if restore_figures is not None:
            restore_figures()
    seconds = time.perf_counter() - t0

    done = nbformat.read(tmp, as_version=4)
    for cell in done.cells:
        # The page shows the parameters the chapter really ran with (papermill's injected cell)
        # and hides the chapter's defaults, which the injected cell overrides.
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "outputs" in cell:
            cell.outputs = _settle_streams(cell.outputs)
    pm = done.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "input_path", "output_path"):
        pm.pop(key, None)
    atomic_write_text(out, nbformat.writes(done))
    tmp.unlink(missing_ok=True)
    return ChapterResult(name, seconds, out)


def _kernel_config(sockets: Path):
    """The traitlets configuration of the chapter's kernel manager: the kernel's channels are IPC
    sockets in the private folder ``sockets`` instead of TCP ports on localhost, over which
    ipykernel (7 and later) warns ``Kernel is running over TCP without encryption`` for every
    kernel. Windows has no IPC transport and keeps TCP."""
    from traitlets.config import Config

    if os.name == "nt":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}})


def _kernel_manager_class():
    """jupyter_client's kernel manager, except that shutting the kernel down sends it no SIGINT
    first: jupyter_client interrupts every kernel before its shutdown request, and a kernel still
    inside a message handler (it has just answered papermill's last ``kernel_info`` request) then
    logs ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.`` into the build log. An idle
    kernel ignores the signal anyway, and the shutdown request (then SIGTERM, SIGKILL) still ends
    a busy one. Interrupts at any other time (a cell's timeout) are unchanged."""
    from jupyter_client import AsyncKernelManager

    class ChapterKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            if getattr(self, "shutting_down", False):
                return
            await super()._async_interrupt_kernel()

    return ChapterKernelManager


class _ProgressEcho:
    """papermill's ``stdout_file``: a chapter's standard output arrives here while it runs; its
    training progress lines (:data:`PROGRESS_LINE`) go on to ``log``, indented, and everything
    stays in the notebook."""

    def __init__(self, log):
        self.log, self.pending = log, ""

    def write(self, text: str) -> None:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if PROGRESS_LINE.match(line):
                self.log("    " + line, flush=True)

    def flush(self) -> None:
        pass


def _settle_streams(outputs: list) -> list:
    """A cell's outputs with its streams as a terminal leaves them: a redraw (a piece of a stream
    that starts with a carriage return) joins the unfinished line it redraws, adjacent pieces of
    one stream are joined, a redrawn line keeps its last state and goes when that is blank (a
    progress bar cleared with ``leave=False``), and a stream left empty goes."""
    joined, unfinished = [], {}
    for o in outputs:
        if o.get("output_type") != "stream":
            joined.append(o)
            continue
        into = unfinished.get(o["name"]) if o["text"].startswith("\r") else None
        if into is None and joined and joined[-1].get("output_type") == "stream" and joined[-1]["name"] == o["name"]:
            into = joined[-1]
        if into is None:
            into = type(o)(o)
            joined.append(into)
        else:
            into["text"] += o["text"]
        unfinished[o["name"]] = None if into["text"].endswith("\n") else into
    out = []
    for o in joined:
        if o.get("output_type") == "stream" and "\r" in o["text"]:
            kept = []
            for piece in re.findall(r"[^\n]*\n|[^\n]+$", o["text"]):
                body, end = (piece[:-1], "\n") if piece.endswith("\n") else (piece, "")
                if "\r" in body:
                    body = next((part for part in reversed(body.split("\r")) if part), "")
                    if not body.strip():
                        continue
                kept.append(body + end)
            o["text"] = "".join(kept)
            if not o["text"]:
                continue
        if (o.get("output_type") == "stream" and out and out[-1].get("output_type") == "stream"
                and out[-1]["name"] == o["name"] and out[-1]["text"].endswith("\n")):
            out[-1]["text"] += o["text"]
            continue
        out.append(o)
    return out


def _write_tree(book_dir: Path, tree: Path, names: list[str], subset: bool) -> None:
    """Copy the book's configuration and plain pages into the generated tree."""
    tree.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((book_dir / "_config.yml").read_text())
    url = _repo_url(book_dir)
    if url:
        cfg.setdefault("repository", {})["url"] = url
    if subset:
        # a chapter's {ref} to a chapter that is not in this build cannot resolve: the full book
        # checks those, a single-chapter build does not fail on them
        sc = cfg.setdefault("sphinx", {}).setdefault("config", {})
        sc["suppress_warnings"] = list(sc.get("suppress_warnings", [])) + ["ref.ref"]
    atomic_write_text(tree / "_config.yml", yaml.safe_dump(cfg, sort_keys=False))
    if subset:
        toc = {"format": "jb-book", "root": "intro",
               "chapters": [{"file": f"chapters/{n}"} for n in names]}
        # The appendix pages (API reference, references) too: the chapters' cross-references
        # and {cite} roles resolve there.
        full = yaml.safe_load((book_dir / "_toc.yml").read_text())
        toc["chapters"] += [entry for part in full.get("parts", [{"chapters": full.get("chapters", [])}])
                            for entry in part.get("chapters", []) or []
                            if not str(entry.get("file", "")).startswith("chapters/")]
        atomic_write_text(tree / "_toc.yml", yaml.safe_dump(toc, sort_keys=False))
    else:
        shutil.copy2(book_dir / "_toc.yml", tree / "_toc.yml")
    for p in book_dir.rglob("*"):
        rel = p.relative_to(book_dir)
        if p.is_dir() or rel.parts[0] in ("_build",) or rel.name in ("_config.yml", "_toc.yml"):
            continue
        if rel.parts[0] == "chapters" and p.suffix == ".md":
            continue  # chapters arrive as executed notebooks
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, tree / rel)
    # MathJax, served from _static so that math renders without network access.
    import mathjax  # the django-static-mathjax wheel: MathJax 3 as static files

    js = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js"
    (tree / "_static" / "mathjax").mkdir(parents=True, exist_ok=True)
    shutil.copy2(js, tree / "_static" / "mathjax" / "tex-svg.js")


def _checkpoints(profile: str) -> list[str]:
    from .train import ResultsStore         # extra [torch]: rnn_mft.book itself imports without torch
    base = ResultsStore().checkpoint_path(profile, "x", "x").parent.parent
    return [f"{p} ({p.stat().st_size / 2**20:.1f} MiB)" for p in sorted(base.rglob("*.pt"))] if base.is_dir() else []


def build(profile: str = "ci", build_dir: Path = Path("_build"), *, only: list[str] | None = None,
          html: bool = True, book_dir: Path = BOOK_DIR, timeout: int | None = None, log=print,
          budget_min: float | None = None, restart: bool = False) -> Path | None:
    """Execute the chapters (all, or ``only`` these) and render the HTML.

    Returns the folder of the HTML (``<build>/book/_build/html``) or None with ``html=False``.
    Per-chapter times are printed and written to ``<build>/timings-<profile>.json``.

    ``budget_min``: a time budget in minutes for the whole build (``$RNN_MFT_DEADLINE`` for the
    chapters' training). When it runs out, the running training checkpoints, the build prints
    which chapters are done and which remain, and returns None without rendering; the same
    command later continues where it stopped. ``restart``: ``$RNN_MFT_RESTART=1`` for the
    chapters (unusable checkpoints are discarded and their runs start afresh).
    """
    check_profile(profile)
    if profile not in BOOK_PROFILES:
        raise ValueError(f"profile={profile!r} is not a book profile (allowed: {', '.join(BOOK_PROFILES)}): "
                         f"profile {profile!r} covers only the chapters that declare it, is trained by "
                         f"tools/cpu_slice.py and is shown by the ci book")
    if budget_min is not None:
        b = float(budget_min)
        if not (b > 0 and b < float("inf")):
            raise ValueError(f"budget_min={budget_min!r} must be a positive number of minutes")
        export_env(deadline=time.time() + 60.0 * b)          # the chapters' kernels: $RNN_MFT_DEADLINE
    if restart:
        export_env(restart=True)                               # $RNN_MFT_RESTART=1
    book_dir, build_dir = Path(book_dir), Path(build_dir).resolve()
    names = chapters(book_dir)
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"unknown chapter {unknown[0]!r}; chapters in _toc.yml: {', '.join(names)}")
        names = [n for n in names if n in only]
    tree, figures = build_dir / "book", build_dir / "figures"
    _write_tree(book_dir, tree, names, subset=bool(only))
    timings = {}
    t_all = time.perf_counter()
    for i, name in enumerate(names, 1):
        log(f"[{i}/{len(names)}] executing chapter {name} (profile {profile}) ...", flush=True)
        try:
            res = execute_chapter(name, profile, tree / "chapters", book_dir=book_dir, figures_dir=figures,
                                  timeout=timeout, log=log)
        except BudgetExhausted as exc:
            log(f"\nTIME BUDGET EXHAUSTED ({budget_min} min) in chapter {name}: {exc.detail}")
            log(f"done ({i - 1}): " + (", ".join(names[:i - 1]) or "none"))
            log(f"remaining ({len(names) - i + 1}): " + ", ".join(names[i - 1:]))
            kept = _checkpoints(profile)
            log("checkpoints kept (commit them with the results to continue elsewhere):"
                + "".join(f"\n  {k}" for k in kept) if kept else "no checkpoints kept")
            log("rerun the same command to continue; nothing was rendered")
            return None
        timings[name] = round(res.seconds, 1)
        log(f"[{i}/{len(names)}] chapter {name}: {res.seconds:.1f} s", flush=True)
    total = time.perf_counter() - t_all
    log(f"executed {len(names)} chapter(s) in {total:.1f} s (profile {profile})")
    atomic_write_text(build_dir / f"timings-{profile}.json",
                       json.dumps({"profile": profile, "seconds": timings, "total": round(total, 1)}, indent=2))
    if not html:
        return None
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(tree), "--builder", "html", "--all",
           "-W", "-n", "--keep-going"]
    log("rendering: " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(tree))
    if proc.returncode != 0:
        raise ChapterError(f"jupyter-book build failed (exit {proc.returncode}); Sphinx warnings are errors")
    out = tree / "_build" / "html"
    log(f"rendered in {time.perf_counter() - t0:.1f} s")
    log(f"figures (PNG and PDF): {figures}")
    log(f"the book: {out / 'index.html'}")
    return out


def check_build(build_dir: Path = Path("_build"), *, book_dir: Path = BOOK_DIR,
                names: list[str] | None = None) -> list[str]:
    """Problems with a built book (empty when it is sound).

    Checks that every page of ``_toc.yml`` exists (the intro, the chapters, the API reference and
    the references); that every API page documents objects and the other pages link to them;
    that the references page lists as many works as the pages cite; that every image a page
    shows is a non-empty local file; that every figure in ``<build>/figures`` is non-empty (and at least one exists); that
    every figure a chapter displays reaches its page, and every figure written to the figures
    folder is displayed somewhere; and that no executed cell produced an error or printed a
    traceback.
    """
    import html as _html
    import re

    import nbformat

    build_dir = Path(build_dir)
    site = build_dir / "book" / "_build" / "html"
    problems = []
    names = chapters(book_dir) if names is None else names
    rel = [p for p in pages(book_dir) if not p.startswith("chapters/")]
    rel = rel[:1] + [f"chapters/{n}" for n in names] + rel[1:]
    for page in [site / f"{p}.html" for p in rel]:
        if not page.is_file() or page.stat().st_size == 0:
            problems.append(f"missing page: {page}")
            continue
        text = page.read_text(errors="replace")
        for src in re.findall(r'<img[^>]+src="([^"]+)"', text):
            if src.startswith(("http:", "https:", "data:")):
                continue
            target = (page.parent / _html.unescape(src).split("#")[0].split("?")[0]).resolve()
            if not target.is_file() or target.stat().st_size == 0:
                problems.append(f"{page.name}: image {src} is missing or empty")
        if "Traceback (most recent call last)" in text:
            problems.append(f"{page.name}: a traceback is shown on the page")
    problems += _check_appendix(site, book_dir, rel)
    figures = sorted((build_dir / "figures").glob("*"))
    if not [f for f in figures if f.suffix == ".png"]:
        problems.append(f"no figures in {build_dir / 'figures'}")
    for f in figures:
        if f.stat().st_size == 0:
            problems.append(f"empty figure file: {f}")
    shown_total = 0
    for n in names:
        nb_path = build_dir / "book" / "chapters" / f"{n}.ipynb"
        if not nb_path.is_file():
            problems.append(f"missing executed notebook: {nb_path}")
            continue
        cells = nbformat.read(nb_path, as_version=4).cells
        shown = sum(1 for c in cells for o in c.get("outputs", [])
                    if any(k.startswith("image/") for k in o.get("data", {})))
        shown_total += shown
        page = site / "chapters" / f"{n}.html"
        on_page = len(re.findall(r'<img[^>]+src="[^"]*_images/', page.read_text(errors="replace"))) \
            if page.is_file() else 0
        if on_page < shown:
            problems.append(f"{n}: the notebook displays {shown} figure(s) but the page shows {on_page}")
        for i, cell in enumerate(cells):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    problems.append(f"{n}: cell #{i} raised {out.get('ename')}: {out.get('evalue')}")
                elif "Traceback (most recent call last)" in str(out.get("text", "")):
                    problems.append(f"{n}: cell #{i} printed a traceback")
    pngs = [f for f in figures if f.suffix == ".png"]
    if shown_total < len(pngs):
        problems.append(f"{len(pngs)} figures were written to {build_dir / 'figures'} but the chapters display "
                        f"only {shown_total} (is MPLBACKEND overriding the notebooks' inline backend?)")
    return problems


def _check_appendix(site: Path, book_dir: Path, rel: list[str]) -> list[str]:
    """The API pages document objects and link from the chapters; the references page lists
    every work the pages cite."""
    import re

    problems = []
    api = [p for p in rel if p.startswith("api/") and p != "api/index"]
    for p in api:
        page = site / f"{p}.html"
        if page.is_file() and not re.search(r'<dl class="py (function|class)">', page.read_text(errors="replace")):
            problems.append(f"{page.name}: the API page documents no function or class (autodoc)")
    linked = sum(len(re.findall(r'href="[^"]*api/[a-z_]+\.html#rnn_mft\.', (site / f"{p}.html").read_text(errors="replace")))
                 for p in rel if not p.startswith("api/") and (site / f"{p}.html").is_file())
    if api and linked == 0:
        problems.append("no page links to the API reference (use {py:func}`rnn_mft....` in a chapter)")
    if "references" in rel:
        cited = set()
        for p in rel:
            src = Path(book_dir) / f"{p}.md"
            if src.is_file():
                for keys in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", src.read_text()):
                    cited.update(k.strip() for k in keys.split(","))
        page = site / "references.html"
        if page.is_file():
            entries = len(re.findall(r'role="doc-biblioentry"', page.read_text(errors="replace")))
            if entries < len(cited):
                problems.append(f"references.html lists {entries} works but the pages cite {len(cited)}")
    return problems
