"""Packaging: dependencies by purpose, environment.yml in step, licence, citation, version, the
API reference and bibliography sources. (The built wheel in a fresh venv: tools/check_wheel.sh.)"""
import importlib
import inspect
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}
CORE = {"numpy", "scipy", "pooch", "tqdm"}
# what the book build, the tests, the figures and the torch side need, and the theory alone must not
# (torch: the `torch` extra, 5.6 GB with CUDA)
NOT_CORE = {"torch", "jupyter-book", "jupytext", "papermill", "ipykernel", "django-static-mathjax", "matplotlib",
            "sphinx", "sphinxcontrib-bibtex", "pyyaml", "pytest", "submitit", "triton"}
PAPER_TITLE = "Dynamical Isometry and a Mean Field Theory of LSTMs and GRUs"


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)$", req)
    name = m.group(1).lower().replace("_", "-")
    spec = re.sub(r"\s+", "", m.group(3).split("#")[0])
    return name, spec


def pyproject(root: Path = None) -> dict:
    return tomllib.loads(((root or ROOT) / "pyproject.toml").read_text())


def core_requirements(root: Path = None) -> dict[str, str]:
    return dict(_split(r) for r in pyproject(root)["project"]["dependencies"])


def extra_requirements(extra: str, root: Path = None) -> dict[str, str]:
    return dict(_split(r) for r in pyproject(root)["project"]["optional-dependencies"][extra])


def pyproject_requirements(root: Path = None) -> dict[str, str]:
    """What environment.yml must hold: the core and the extras `make setup` installs (torch, plot, book, test)."""
    out = core_requirements(root)
    for extra in ("torch", "plot", "book", "test"):
        for name, spec in extra_requirements(extra, root).items():
            assert out.get(name, spec) == spec, f"{name} has two different specifiers: {out[name]!r}, {spec!r}"
            out[name] = spec
    return out


def environment_requirements(root: Path = None) -> dict[str, str]:
    env = yaml.safe_load(((root or ROOT) / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip: section
            for r in dep.get("pip", []):
                if not r.strip().startswith("-e"):
                    name, spec = _split(r)
                    out[name] = spec
            continue
        name, spec = _split(dep)
        if name in ("python", "pip"):
            continue
        out[CONDA_TO_PYPI.get(name, name)] = spec
    return out


def core_problems(root: Path = None) -> list[str]:
    core = core_requirements(root)
    out = [f"{n} is a core dependency (it belongs in an extra)" for n in sorted(set(core) & NOT_CORE)]
    out += [f"{n} is missing from the core dependencies" for n in sorted(CORE - set(core))]
    out += [f"{n} is an unexpected core dependency" for n in sorted(set(core) - CORE - NOT_CORE)]
    return out


def test_core_dependencies_are_light():
    assert core_problems() == []
    assert "jupyter-book" not in core_requirements() and "matplotlib" not in core_requirements()


def test_environment_matches_pyproject():
    py, env = pyproject_requirements(), environment_requirements()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for name in py:
        assert py[name] == env[name], f"{name}: pyproject {py[name]!r} vs environment.yml {env[name]!r}"


def test_extras_declared():
    book = extra_requirements("book")
    for name in ("jupyter-book", "jupytext", "papermill", "ipykernel", "django-static-mathjax", "matplotlib",
                 "sphinxcontrib-bibtex", "pyyaml"):
        assert name in book, name
    assert book["jupyter-book"] == ">=1.0.4,<2"
    assert "matplotlib" in extra_requirements("plot")
    assert "pytest" in extra_requirements("test")
    assert "submitit" in extra_requirements("cluster")
    allx = pyproject()["project"]["optional-dependencies"]["all"]
    assert allx == ["rnn_mft[torch,plot,book,test,cluster,gpu]"]
    assert "triton" in extra_requirements("gpu")
    assert extra_requirements("torch") == {"torch": ">=2.1"}


def test_make_setup_installs_what_the_readme_commands_need():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r'pip install -q -e "\.\[torch,book,test,gpu\]"', makefile), \
        "make setup must install .[torch,book,test,gpu]"


_COLAB_PIP = r'%pip install -q "rnn_mft\[([a-z,]+)\] @ git\+(\S+)@([^"]+)"'


def test_colab_cell_installs_only_what_a_chapter_needs():
    from rnn_mft.book import colab_cell

    cell = colab_cell()
    m = re.search(_COLAB_PIP, cell)
    assert m and m.group(1).split(",") == ["torch", "plot"], cell
    assert m.group(2).startswith("https://"), cell


def test_colab_cell_installs_the_commit_the_book_was_built_from(tmp_path):
    """In a git checkout, the commit of HEAD (not a branch); elsewhere the version's tag, and the
    cell says that the commit is unknown."""
    import shutil

    import rnn_mft
    from rnn_mft.book import BOOK_DIR, build_ref, colab_cell

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    ref, note = build_ref(BOOK_DIR)
    assert ref == head.stdout.strip() and re.fullmatch(r"[0-9a-f]{40}", ref), (ref, note)
    cell = colab_cell(BOOK_DIR)
    assert re.search(_COLAB_PIP, cell).group(3) == ref and f"at commit {ref[:12]}" in cell, cell

    book = tmp_path / "book"                      # a book outside any git checkout
    book.mkdir()
    shutil.copy(BOOK_DIR / "_config.yml", book / "_config.yml")
    ref, note = build_ref(book)
    assert ref == f"v{rnn_mft.__version__}" and "not built from a git checkout" in note, (ref, note)
    cell = colab_cell(book)
    assert re.search(_COLAB_PIP, cell).group(3) == ref and "commit is unknown" in cell, cell


def test_the_check_can_fail(tmp_path, monkeypatch):
    """The comparisons notice a dependency missing from environment.yml, and a heavy core."""
    text = (ROOT / "environment.yml").read_text().replace("  - pooch>=1.7\n", "")
    (tmp_path / "environment.yml").write_text(text)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    py, env = pyproject_requirements(tmp_path), environment_requirements(tmp_path)
    assert "pooch" in py and "pooch" not in env
    heavy = (ROOT / "pyproject.toml").read_text().replace('    "tqdm>=4.65",\n', '    "tqdm>=4.65",\n    "jupyter-book>=1.0.4,<2",\n', 1)
    (tmp_path / "pyproject.toml").write_text(heavy)
    assert core_problems(tmp_path) == ["jupyter-book is a core dependency (it belongs in an extra)"]


_BLOCKER = """
import importlib.abc, sys
BLOCKED = {"matplotlib", "jupyter_book", "sphinx", "papermill", "jupytext", "ipykernel", "mathjax", "yaml",
           "IPython", "pytest"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked: {name} is not a core dependency", name=name)
for m in list(sys.modules):
    if m.split(".")[0] in BLOCKED:
        del sys.modules[m]
sys.meta_path.insert(0, Block())
"""


def test_core_imports_without_the_extras():
    """`import rnn_mft`, its subpackages and the CLI import nothing from the book's extras."""
    code = _BLOCKER + """
import rnn_mft, rnn_mft.theory, rnn_mft.nets, rnn_mft.sim, rnn_mft.data, rnn_mft.train, rnn_mft.cli
from rnn_mft.cli import main
print(rnn_mft.__version__)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


def test_core_import_check_can_fail():
    """The blocker does stop an import from the extras (the figures need matplotlib)."""
    code = _BLOCKER + "import rnn_mft.plotting\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0 and "blocked: matplotlib" in proc.stderr


_NO_TORCH = {
    # a finder that answers every torch import as a missing module (as on `pip install rnn_mft`)
    "finder": """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "triton"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
""",
    # torch blocked in sys.modules
    "sys.modules": "import sys\nsys.modules['torch'] = None\n",
}

_WITHOUT_TORCH = """
import importlib, json, sys
import rnn_mft
from rnn_mft import arch, theory
from rnn_mft.cli import main

r = rnn_mft.analyze("gru", rnn_mft.Theta.standard("gru"), sigma_z=1.0)
assert r.converged and 0 < float(r.xi) < float("inf"), r
s = theory.solve_for_timescale("gru", xi=50.0)
assert abs(float(s.xi) - 50.0) < 0.5, s
assert "lstm" in arch.names()
theta = {"f": {"sigma2": 1, "nu2": 0.5, "mu": 1}, "r": {"sigma2": 1, "nu2": 0.5}, "r2": {"sigma2": 1, "nu2": 0.5}}
assert main(["theory", "--arch", "gru", "--theta", json.dumps(theta), "--sigma-z", "0.5", "--json"]) == 0
assert main(["solve", "--arch", "peephole_lstm", "--xi", "100"]) == 0
for name in ("rnn_mft.nets", "rnn_mft.sim", "rnn_mft.data", "rnn_mft.train", "rnn_mft.cluster"):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        assert "pip install 'rnn_mft[torch]'" in str(exc) and exc.name == "torch", (name, exc)
    else:
        raise AssertionError(f"{name} imported without torch")
try:
    rnn_mft.critical_init_
except ImportError as exc:
    assert "rnn_mft[torch]" in str(exc), exc
else:
    raise AssertionError("rnn_mft.critical_init_ without torch")
assert main(["runs", "--profile", "smoke"]) == 2           # one line naming the extra, not a traceback
assert sys.modules.get("torch") is None
print("theory and cli without torch: ok")
"""


@pytest.mark.parametrize("how", sorted(_NO_TORCH))
def test_the_theory_and_the_cli_work_without_torch(how):
    """On the core install (no torch): the theory, the architectures and `rnn-mft theory`/`solve`
    work; the torch side (nets, sim, data, train) raises an ImportError naming the extra."""
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH[how] + _WITHOUT_TORCH], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "theory and cli without torch: ok" in proc.stdout
    assert "rnn-mft: error: 'rnn-mft runs'" in proc.stderr and "rnn_mft[torch]" in proc.stderr, proc.stderr


def test_package_metadata():
    """Classifiers, keywords, links, the PEP 561 marker, and a PyPI description with absolute
    links only (it is shown on PyPI, where a relative link leads nowhere)."""
    project = pyproject()["project"]
    cls = project["classifiers"]
    for c in ("Development Status :: 3 - Alpha", "Intended Audience :: Science/Research",
              "Topic :: Scientific/Engineering :: Artificial Intelligence", "Programming Language :: Python :: 3.10",
              "Typing :: Typed"):
        assert c in cls, c
    # the licence is the SPDX expression `license = "MIT"` (PEP 639); setuptools refuses a
    # `License ::` classifier beside it
    assert not [c for c in cls if c.startswith("License ::")], cls
    assert {"LSTM", "GRU", "mean-field theory"} <= set(project["keywords"])
    urls = project["urls"]
    assert set(urls) >= {"Documentation", "Source", "Issues", "Citation"}, urls
    assert all(u.startswith("https://") for u in urls.values()), urls
    assert (ROOT / "src" / "rnn_mft" / "py.typed").is_file()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["rnn_mft"]
    readme = ROOT / project["readme"]
    assert project["readme"] != "README.md" and readme.is_file()
    text = readme.read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links and all(link.startswith("https://") for link in links), links
    assert "1901.08987" in text and "rnn_mft[torch]" in text
    assert len(text) < 4000, "the PyPI description is meant to be short; README.md has the rest"
    # the sdist ships no tests (they need the whole repository); tools/check_wheel.sh checks the sdist
    assert re.search(r"^prune tests$", (ROOT / "MANIFEST.in").read_text(), re.M)


def test_license_matches_pyproject():
    project = pyproject()["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the rnn_mft authors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text
    assert project.get("license-files") == ["LICENSE"]


def test_citation_cff_names_the_companion_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type", "version", "license", "references"):
        assert key in cff, key
    assert cff["type"] == "software" and "rnn_mft" in cff["title"]
    assert str(cff["version"]) == pyproject()["project"]["version"]
    assert cff["license"] == pyproject()["project"]["license"]
    paper = [r for r in cff["references"] if r.get("title") == PAPER_TITLE]
    assert len(paper) == 1, cff["references"]
    paper = paper[0]
    assert [a["family-names"] for a in paper["authors"]] == ["Gilboa", "Chang", "Chen", "Yang", "Schoenholz",
                                                              "Chi", "Pennington"]
    assert paper["year"] == 2019
    assert "1901.08987" in str(paper.get("identifiers")) and "1901.08987" in paper["url"]
    # the paper is the preferred citation (GitHub's "Cite this repository" shows it), the same
    # record as under references; the software has its release date (the year of its BibTeX)
    assert cff["preferred-citation"] == paper
    pref = cff["preferred-citation"]
    for key in ("type", "title", "authors", "year", "url"):
        assert key in pref, key
    assert isinstance(pref["year"], int) and pref["year"] == 2019
    released = str(cff["date-released"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", released), released
    assert int(released[:4]) >= 2026


def test_citation_cff_is_valid_cff():
    """Validated against the CFF 1.2.0 schema by cffconvert, where it is installed."""
    exe = Path(sys.executable).with_name("cffconvert")
    if not exe.exists():
        pytest.skip("cffconvert is not installed (pip install cffconvert)")
    proc = subprocess.run([str(exe), "--validate", "-i", str(ROOT / "CITATION.cff")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_shows_how_to_cite():
    readme = (ROOT / "README.md").read_text()
    assert "## Citing" in readme and "CITATION.cff" in readme and "1901.08987" in readme


def test_version_from_one_place():
    import rnn_mft

    assert rnn_mft.__version__ == pyproject()["project"]["version"]
    assert rnn_mft.__version__ == version("rnn_mft")


def test_results_store_records_the_version(tmp_path):
    import rnn_mft
    from rnn_mft.train import ResultsStore, RunResult

    store = ResultsStore(tmp_path, readonly=False)
    store.save("smoke", "exp", "run", RunResult(final={"eval_acc": [0.5]}, meta={"seed": 0}))
    assert store.load("smoke", "exp", "run").meta["rnn_mft_version"] == rnn_mft.__version__


API_PACKAGES = ("arch", "theory", "nets", "sim", "data", "train", "cluster")


def test_api_reference_covers_the_public_api():
    """Every public name of the seven subpackages is on its API page (book/api/<name>.md)."""
    toc = (ROOT / "book" / "_toc.yml").read_text()
    for pkg in API_PACKAGES:
        assert f"file: api/{pkg}" in toc, pkg
        page = (ROOT / "book" / "api" / f"{pkg}.md").read_text()
        assert f".. automodule:: rnn_mft.{pkg}" in page
        mod = importlib.import_module(f"rnn_mft.{pkg}")
        documented = set(re.findall(r"^\.\. (?:autofunction|autoclass|py:data):: (\w+)", page, re.M))
        public = {n for n in mod.__all__ if not inspect.ismodule(getattr(mod, n))} - {"atomic_write_bytes"}
        assert public <= documented, f"rnn_mft.{pkg}: not on book/api/{pkg}.md: {sorted(public - documented)}"


def _cited_keys() -> set[str]:
    keys = set()
    for md in [ROOT / "book" / "intro.md", *sorted((ROOT / "book" / "chapters").glob("*.md")),
               ROOT / "book" / "references.md"]:
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", md.read_text()):
            keys.update(k.strip() for k in group.split(","))
    return keys


def test_bibliography_has_every_cited_work():
    bib = (ROOT / "book" / "references.bib").read_text()
    entries = set(re.findall(r"^@\w+\{([^,]+),", bib, re.M))
    cited = _cited_keys()
    assert "gilboa2019dynamical" in cited and len(cited) >= 10
    assert cited <= entries, f"cited but not in references.bib: {sorted(cited - entries)}"
    assert "bibtex_bibfiles" in (ROOT / "book" / "_config.yml").read_text()
    assert "{bibliography}" in (ROOT / "book" / "references.md").read_text()
    assert "file: references" in (ROOT / "book" / "_toc.yml").read_text()


def _bib_entries() -> dict[str, str]:
    bib = (ROOT / "book" / "references.bib").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"^@\w+\{([^,]+),(.*?)^\}", bib, re.M | re.S)}


def test_bibliography_has_no_uncited_entry_and_links_every_work():
    entries = _bib_entries()
    uncited = set(entries) - _cited_keys()
    assert not uncited, f"in references.bib but cited nowhere in the book: {sorted(uncited)}"
    for key, body in entries.items():
        doi = re.search(r"^\s*doi\s*=\s*\{(10\.\d{4,}/[^}]+)\}", body, re.M)
        url = re.search(r"^\s*url\s*=\s*\{(https://[^}]+)\}", body, re.M)
        assert doi or url, f"{key}: neither a DOI nor an https URL"


def test_bibliography_is_author_year():
    """Citations read "(Gilboa et al., 2019)", and the references page uses the same labels."""
    cfg = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    from rnn_mft.bibstyle import BIB_STYLE, author_year_labels

    sc = cfg["sphinx"]["config"]
    assert sc["bibtex_reference_style"] == "author_year"
    assert sc["bibtex_default_style"] == BIB_STYLE and "rnn_mft.bibstyle" in cfg["sphinx"]["extra_extensions"]
    pybtex = pytest.importorskip("pybtex.database")
    bib = pybtex.parse_file(str(ROOT / "book" / "references.bib"))
    labels = dict(zip(bib.entries, author_year_labels(list(bib.entries.values()))))
    assert labels["gilboa2019dynamical"] == "Gilboa et al., 2019"
    assert labels["hochreiter1997long"] == "Hochreiter and Schmidhuber, 1997"
    assert labels["goldie1991implicit"] == "Goldie, 1991"
    assert len(set(labels.values())) == len(labels), labels
    twice = pybtex.parse_string("@article{a, author={Chen, M. and Pennington, J. and Schoenholz, S.}, year={2018}}\n"
                                "@article{b, author={Chen, M. and Yang, G. and Li, Z.}, year={2018}}", "bibtex")
    assert author_year_labels(list(twice.entries.values())) == ["Chen et al., 2018a", "Chen et al., 2018b"]


@pytest.mark.parametrize("key", ["gilboa2019dynamical", "goldie1991implicit", "tallec2018can"])
def test_bibliography_entries_complete(key):
    bib = (ROOT / "book" / "references.bib").read_text()
    m = re.search(r"^@\w+\{" + key + r",(.*?)^\}", bib, re.M | re.S)
    assert m, key
    for field in ("author", "title", "year"):
        assert re.search(rf"^\s*{field}\s*=", m.group(1), re.M), (key, field)
