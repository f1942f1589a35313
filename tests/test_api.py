"""The top-level package: `import rnn_mft` is cheap, re-exports the public API lazily, and the
theory names never pull in torch (nor the plotting extra)."""
import ast
import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "scipy", "torch", "matplotlib")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY modules in sys.modules after running ``code`` in a fresh interpreter."""
    probe = code + f"\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    return [m for m in proc.stdout.strip().split(",") if m]


def test_import_is_cheap():
    """`import rnn_mft` imports none of numpy, scipy, torch, matplotlib."""
    assert _loaded_after("import rnn_mft; rnn_mft.__version__") == []


def test_theory_names_do_not_import_torch():
    code = ("import rnn_mft\nth = rnn_mft.Theta.standard('gru')\n"
            "r = rnn_mft.analyze('gru', th, sigma_z=1.0)\nassert 0 < float(r.xi) < float('inf')\n"
            "rnn_mft.solve_for_timescale, rnn_mft.AnalysisResult, rnn_mft.reference_step")
    loaded = _loaded_after(code)
    assert "numpy" in loaded and "torch" not in loaded and "matplotlib" not in loaded, loaded


def test_torch_side_names_load_torch():
    """The probe can fail: a torch-side name does import torch (the check above is not vacuous)."""
    assert "torch" in _loaded_after("import rnn_mft; rnn_mft.critical_init_")


def test_every_export_is_the_subpackage_object():
    import rnn_mft

    for name, pkg in rnn_mft._EXPORTS.items():
        mod = importlib.import_module(f"rnn_mft.{pkg}")
        assert name in mod.__all__, f"rnn_mft.{name}: not public in rnn_mft.{pkg}"
        assert getattr(rnn_mft, name) is getattr(mod, name), name
    for name in ("Theta", "analyze", "solve_for_timescale", "critical_init_", "make", "AnalysisResult",
                 "__version__"):
        assert name in rnn_mft.__all__, name
    assert set(rnn_mft.__all__) <= set(dir(rnn_mft))
    assert rnn_mft.make is rnn_mft.nets.make            # make: the cell factory of rnn_mft.nets
    assert rnn_mft.theory is importlib.import_module("rnn_mft.theory")   # subpackages on attribute access


def test_unknown_name_is_an_attribute_error():
    import rnn_mft

    with pytest.raises(AttributeError, match="no attribute 'analyse'"):
        rnn_mft.analyse


_BLOCK = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked: {name}", name=name)
sys.meta_path.insert(0, Block())
import pytest
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[2:]]))
"""


def _collect(blocked: str, *paths: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK, blocked, *paths], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})


def test_doctest_collection_without_the_extras():
    """`pytest` collects the docstring examples of src/ on a core install: the modules that need
    matplotlib, pyyaml or submitit are left out, the others are collected."""
    proc = _collect("matplotlib,yaml,submitit", "src")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "src/rnn_mft/theory/theta.py::rnn_mft.theory.theta" in proc.stdout
    assert "src/rnn_mft/__init__.py::rnn_mft" in proc.stdout
    assert "rnn_mft/plotting" not in proc.stdout and "rnn_mft/book.py" not in proc.stdout


def test_doctest_collection_without_torch():
    """Without torch (the core install), the docstring examples of the theory are collected and
    the torch side (nets, sim, data, train, cluster, the chapters' experiments) is left out."""
    proc = _collect("torch,triton", "src")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "src/rnn_mft/theory/theta.py::rnn_mft.theory.theta" in proc.stdout
    assert "src/rnn_mft/__init__.py::rnn_mft" in proc.stdout
    for part in ("nets", "sim", "data", "train", "cluster", "experiments/training", "experiments/theory_chapters"):
        assert f"rnn_mft/{part}/" not in proc.stdout, part


def test_doctest_collection_fails_on_a_real_import_error():
    """The check can fail: a core dependency that is missing breaks the collection."""
    proc = _collect("scipy", "src/rnn_mft/theory/theta.py")
    assert proc.returncode != 0 and "blocked: scipy" in proc.stdout + proc.stderr


def private_imports(src: Path) -> list[str]:
    """``from``-imports in the package tree ``src`` (the folder ``rnn_mft``) that reach into another
    package for a private name or through a private module (``_x``); the root package's own
    helpers ``rnn_mft._io`` and ``rnn_mft._deps`` are shared by all subpackages. Imports within one
    package are free."""
    import ast

    bad = []
    for f in sorted(src.rglob("*.py")):
        rel = f.relative_to(src)
        pkg = rel.parts[0] if len(rel.parts) > 1 else None      # None: a module of the root package
        mod = ("rnn_mft",) + rel.with_suffix("").parts
        here = mod[:-1]                  # the package a relative import starts from
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - node.level + 1]
                    target = base + (tuple(node.module.split(".")) if node.module else ())
                else:
                    target = tuple((node.module or "").split("."))
                fulls = [target + (a.name,) for a in node.names]
            elif isinstance(node, ast.Import):
                fulls = [tuple(a.name.split(".")) for a in node.names]
            else:
                continue
            for full in fulls:
                if full[:1] != ("rnn_mft",) or len(full) < 3 or full[1] == pkg or full[1] in ("_io", "_deps"):
                    continue
                if any(p.startswith("_") and not p.startswith("__") for p in full[1:]):
                    bad.append(f"{rel}:{node.lineno}: {'.'.join(full)}")
    return bad


def test_no_private_name_crosses_a_package_border():
    assert private_imports(ROOT / "src" / "rnn_mft") == []


def test_private_import_check_can_fail(tmp_path):
    src = tmp_path / "rnn_mft"
    for d in ("train", "data", "nets"):
        (src / d).mkdir(parents=True)
        (src / d / "__init__.py").write_text("")
    (src / "train" / "engine.py").write_text("from ..nets._recurrence import flush_denormal\n"
                                             "from .._io import atomic_write_bytes\nfrom . import _private\n")
    (src / "data" / "x.py").write_text("from rnn_mft.nets.cells import _pos_int\nimport rnn_mft._io\n")
    (src / "nets" / "__init__.py").write_text("from ._recurrence import hard_sigmoid\n")
    assert private_imports(src) == ["data/x.py:1: rnn_mft.nets.cells._pos_int",
                                    "train/engine.py:1: rnn_mft.nets._recurrence.flush_denormal"]


def _imported(node) -> list[tuple]:
    """The dotted paths an absolute import statement names (``from a.b import c``: ``a.b.c``)."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return []
        return [tuple((node.module or "").split(".")) + (a.name,) for a in node.names]
    return [tuple(a.name.split(".")) for a in node.names]


def script_private_imports(scripts) -> list[str]:
    """Imports of ``rnn_mft`` in the scripts ``scripts`` (``tools/*.py``, ``benchmarks/*.py``),
    anywhere in the file, that name a private module or name (``_x``, not ``__x__``): a script
    uses the package's public API only."""
    bad = []
    for f in sorted(scripts):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for full in _imported(node):
                    if full[0] == "rnn_mft" and any(p.startswith("_") and not p.startswith("__") for p in full[1:]):
                        bad.append(f"{f.parent.name}/{f.name}:{node.lineno}: {'.'.join(full)}")
    return bad


def _scripts(root: Path) -> list[Path]:
    return [*root.glob("tools/*.py"), *root.glob("benchmarks/*.py")]


def test_scripts_use_only_public_names():
    assert _scripts(ROOT) and script_private_imports(_scripts(ROOT)) == []


def test_script_import_check_can_fail(tmp_path):
    for d in ("tools", "benchmarks"):
        (tmp_path / d).mkdir()
    (tmp_path / "tools" / "slice.py").write_text(
        "from rnn_mft import __version__, settings\nfrom rnn_mft.train import ResultsStore\n"
        "def label(u):\n    from rnn_mft.experiments.training._common import short_name\n    return short_name(u)\n")
    (tmp_path / "benchmarks" / "gpu.py").write_text("import rnn_mft._io\nfrom rnn_mft.nets import _triton, make\n")
    assert script_private_imports(_scripts(tmp_path)) == [
        "benchmarks/gpu.py:1: rnn_mft._io", "benchmarks/gpu.py:2: rnn_mft.nets._triton",
        "tools/slice.py:4: rnn_mft.experiments.training._common.short_name"]


#: a trailing comment that names the optional extra an in-function import defers
_EXTRA_COMMENT = re.compile(r"#.*\bextra \[([\w-]+)\]")


def _extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _in_functions(node, inside=False):
    """Every import statement in a function body (any depth, methods and nested functions too)."""
    for child in ast.iter_child_nodes(node):
        if inside and isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _in_functions(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))


def in_function_imports(src: Path, extras: set[str]) -> list[str]:
    """Imports of the package's own modules (``rnn_mft...`` or relative) inside a function body in
    the package tree ``src``, unless the statement carries a comment naming the optional extra it
    defers (``# extra [plot]: matplotlib``; the name one of ``extras``). Everything else the
    package imports of itself is imported at module level, where a cycle or a layer crossed the
    wrong way shows at once."""
    bad = []
    for f in sorted(src.rglob("*.py")):
        text = f.read_text()
        lines = text.splitlines()
        for node in _in_functions(ast.parse(text, str(f))):
            own = (node.level > 0 or (node.module or "").split(".")[0] == "rnn_mft") if isinstance(node, ast.ImportFrom) \
                else any(a.name.split(".")[0] == "rnn_mft" for a in node.names)
            if not own:
                continue
            said = {m.group(1) for line in lines[node.lineno - 1:node.end_lineno] if (m := _EXTRA_COMMENT.search(line))}
            if not said & extras:
                bad.append(f"{f.relative_to(src).as_posix()}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return bad


def test_no_in_function_import_of_the_package_itself():
    assert in_function_imports(ROOT / "src" / "rnn_mft", _extras()) == []


def test_in_function_import_check_can_fail(tmp_path):
    src = tmp_path / "rnn_mft"
    (src / "train").mkdir(parents=True)
    (src / "book.py").write_text(
        "import json\nfrom .train import fit\n"                                   # module level: free
        "def build():\n    import yaml\n    from .train import ResultsStore  # extra [torch]\n"
        "    from . import __version__\n"
        "    def inner():\n        import rnn_mft.plotting  # extra [plott]: a misspelt extra\n"
        "    from .train import (fit,\n                        lr_scan)  # extra [torch]\n")
    (src / "train" / "engine.py").write_text(
        "class Engine:\n    def run(self):\n        from rnn_mft.data import load_task_pair\n"
        "        from ..data import load_task  # only for this method\n")
    assert in_function_imports(src, _extras()) == [
        "book.py:6: from . import __version__", "book.py:8: import rnn_mft.plotting  # extra [plott]: a misspelt extra",
        "train/engine.py:3: from rnn_mft.data import load_task_pair",
        "train/engine.py:4: from ..data import load_task  # only for this method"]
