"""Every chapter of the book executes with the smoke profile, through the build's own papermill path."""
import json

import nbformat
import pytest

from rnn_mft.book import BOOK_DIR, ChapterError, chapters, execute_chapter

CHAPTERS = chapters()


def test_toc_lists_every_chapter_source():
    on_disk = {p.stem for p in (BOOK_DIR / "chapters").glob("*.md")}
    assert set(CHAPTERS) == on_disk, "book/_toc.yml and book/chapters/*.md disagree"


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_executes_with_smoke_profile(name, tmp_path):
    res = execute_chapter(name, "smoke", tmp_path / "nb", figures_dir=tmp_path / "figures")
    nb = nbformat.read(res.output, as_version=4)
    assert nb.metadata["rnn_mft"] == {"chapter": name, "profile": "smoke"}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{name}: {out.get('ename')}: {out.get('evalue')}"
    # the page shows the injected parameters (the profile really used), not the defaults
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "remove-cell" not in injected[0].metadata["tags"]
    assert "profile = \"smoke\"" in injected[0].source
    defaults = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert defaults and all("remove-cell" in c.metadata["tags"] for c in defaults)
    figs = list((tmp_path / "figures").glob("*.png"))
    for fig in (tmp_path / "figures").glob("*"):
        assert fig.stat().st_size > 0
    # every figure written is also displayed in the notebook (so it reaches the HTML page)
    shown = sum(1 for c in nb.cells for o in c.get("outputs", []) if any(k.startswith("image/") for k in o.get("data", {})))
    assert shown >= len(figs), f"{name}: wrote {len(figs)} figures but displayed {shown}"


def test_failing_chapter_is_named_with_its_cell(tmp_path):
    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    (book / "_config.yml").write_text("title: t\nrepository:\n  url: https://example.org/r\n")
    (book / "chapters" / "broken.md").write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n# Broken\n\n"
        "```{code-cell} ipython3\n:tags: [parameters]\nprofile = \"ci\"\n```\n\n"
        "```{code-cell} ipython3\nx = 1\n```\n\n```{code-cell} ipython3\nraise RuntimeError('boom ' + profile)\n```\n")
    with pytest.raises(ChapterError) as err:
        execute_chapter("broken", "smoke", tmp_path / "out", book_dir=book)
    msg = str(err.value)
    assert "'broken'" in msg and "RuntimeError: boom smoke" in msg and "raise RuntimeError" in msg


def test_unknown_profile_and_chapter(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        execute_chapter(CHAPTERS[0], "huge", tmp_path)
    with pytest.raises(ValueError, match="unknown chapter"):
        execute_chapter("no_such_chapter", "smoke", tmp_path)
