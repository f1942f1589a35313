"""The book's bibliography style, a Sphinx extension (``sphinx.extra_extensions`` of
book/_config.yml): author-year labels, "Gilboa et al., 2019", for sphinxcontrib-bibtex's
``bibtex_reference_style = "author_year"`` citations, so that the references page uses the labels
the text cites with. It needs the ``book`` extra (pybtex comes with sphinxcontrib-bibtex).
"""
from __future__ import annotations

from collections import Counter

__all__ = ["BIB_STYLE", "author_year_labels", "setup"]

#: the pybtex formatting style of the bibliography: pybtex's ``plain`` (sorted by author, year,
#: title) with author-year labels, the text of the chapters' author-year citations
#: (``bibtex_reference_style = "author_year"``): "Gilboa et al., 2019"
BIB_STYLE = "rnn_mft_author_year"


def author_year_labels(entries) -> list[str]:
    """"Goldie, 1991", "Hochreiter and Schmidhuber, 1997", "Gilboa et al., 2019" (authors, else
    editors, by last name), with a, b, ... after the year where two entries would share a label."""
    from pybtex.richtext import Text       # extra [book] (pybtex, with sphinxcontrib-bibtex)

    def last(person) -> str:               # the last name as text: Merri{\"e}nboer -> Merriënboer
        return " ".join(Text.from_latex(n).render_as("text") for n in person.last_names)

    labels = []
    for entry in entries:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [last(p) for p in people]
        who = (names[0] if len(names) == 1 else f"{names[0]} and {names[1]}" if len(names) == 2
               else f"{names[0]} et al." if names else entry.fields.get("title", entry.key))
        labels.append(f"{who}, {entry.fields.get('year', 'n.d.')}")
    counts, seen = Counter(labels), Counter()
    out = []
    for label in labels:
        if counts[label] > 1:
            seen[label] += 1
            label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
        out.append(label)
    return out


def setup(app):
    """Sphinx extension (``sphinx.extra_extensions`` of book/_config.yml): registers the pybtex
    style :data:`BIB_STYLE`, which ``bibtex_default_style`` names."""
    from pybtex.plugin import register_plugin      # extra [book]
    from pybtex.style.formatting.plain import Style as Plain
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            return iter(author_year_labels(list(sorted_entries)))

    class AuthorYearStyle(Plain):
        default_label_style = AuthorYearLabels

    register_plugin("pybtex.style.formatting", BIB_STYLE, AuthorYearStyle, force=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
