"""The shared pieces of the training experiments that code outside :mod:`rnn_mft.experiments`
uses: the chapters' stored-results blocks (:mod:`rnn_mft.plotting.stored`), ``tools/`` and
``benchmarks/``. They are defined in this package's private ``_common`` (with the pieces only
the experiments use); this module is their public name.

* :class:`StoredPaper`: the part of a stored profile's (``paper``, ``cpu``) results that the
  results store holds, with the names of the runs stored, missing and in progress;
* :func:`paper_note`, :func:`cpu_note`: the Markdown paragraph a chapter shows above its
  stored paper- or cpu-profile results (what is stored, from where, what is still missing);
* :func:`provenance`: one sentence on where stored results come from (devices, versions, dates);
* :func:`short_name`: a stored run's name without its settings hash, for prose and logs;
* :func:`make_ensemble`: an ensemble whose members are each initialised in their own way and
  share one read-out draw, built exactly as the experiments build theirs.
"""
from __future__ import annotations

from ._common import StoredPaper, cpu_note, make_ensemble, paper_note, provenance, short_name

__all__ = ["StoredPaper", "cpu_note", "make_ensemble", "paper_note", "provenance", "short_name"]
