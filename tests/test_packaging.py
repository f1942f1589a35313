"""pyproject.toml and environment.yml declare the same dependencies."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    name = m.group(1).lower().replace("_", "-")
    spec = re.sub(r"\s+", "", m.group(2).split("#")[0])
    return name, spec


def pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(data["project"]["dependencies"]) + list(data["project"]["optional-dependencies"]["test"])
    return dict(_split(r) for r in reqs)


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
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


def test_environment_matches_pyproject():
    py, env = pyproject_requirements(), environment_requirements()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for name in py:
        assert py[name] == env[name], f"{name}: pyproject {py[name]!r} vs environment.yml {env[name]!r}"


def test_required_dependencies_declared():
    py = pyproject_requirements()
    for name in ("numpy", "scipy", "matplotlib", "torch", "jupyter-book", "jupytext", "papermill",
                 "ipykernel", "pooch", "tqdm", "pytest"):
        assert name in py
    assert py["jupyter-book"] == ">=1.0.4,<2"


def test_the_check_can_fail(tmp_path, monkeypatch):
    """The comparison notices a dependency missing from environment.yml."""
    text = (ROOT / "environment.yml").read_text().replace("  - pooch>=1.7\n", "")
    (tmp_path / "environment.yml").write_text(text)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    py, env = pyproject_requirements(), environment_requirements()
    assert "pooch" in py and "pooch" not in env
