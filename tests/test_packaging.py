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
CORE = {"numpy", "scipy", "torch", "pooch", "tqdm"}
# what the book build, the tests and the figures need, and the library alone must not
NOT_CORE = {"jupyter-book", "jupytext", "papermill", "ipykernel", "django-static-mathjax", "matplotlib", "sphinx",
            "sphinxcontrib-bibtex", "pyyaml", "pytest", "submitit"}
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
    """What environment.yml must hold: the core and the extras `make setup` installs (plot, book, test)."""
    out = core_requirements(root)
    for extra in ("plot", "book", "test"):
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
    assert allx == ["rnn_mft[plot,book,test,cluster,gpu]"]
    assert "triton" in extra_requirements("gpu")


def test_make_setup_installs_what_the_readme_commands_need():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r'pip install -q -e "\.\[book,test,gpu\]"', makefile), "make setup must install .[book,test,gpu]"


def test_colab_cell_installs_only_what_a_chapter_needs():
    from rnn_mft.book import _COLAB_CELL

    m = re.search(r'%pip install -q "rnn_mft\[([a-z,]+)\] @ git\+', _COLAB_CELL)
    assert m and m.group(1).split(",") == ["plot"], _COLAB_CELL


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
    """`import rnn_mft`, its core subpackages and the CLI import nothing from the extras."""
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


@pytest.mark.parametrize("key", ["gilboa2019dynamical", "goldie1991implicit", "tallec2018can"])
def test_bibliography_entries_complete(key):
    bib = (ROOT / "book" / "references.bib").read_text()
    m = re.search(r"^@\w+\{" + key + r",(.*?)^\}", bib, re.M | re.S)
    assert m, key
    for field in ("author", "title", "year"):
        assert re.search(rf"^\s*{field}\s*=", m.group(1), re.M), (key, field)
