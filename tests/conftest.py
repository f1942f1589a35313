"""Configuration of the tests under ``tests/`` (the repository-wide one is ``../conftest.py``).

The library reads its ``RNN_MFT_*`` environment variables once per process, into
:mod:`rnn_mft.settings`. A test sets them with ``monkeypatch.setenv``/``delenv`` as a user sets
them in a shell; the ``monkeypatch`` fixture here is pytest's, whose ``setenv``/``delenv`` of an
``RNN_MFT_*`` variable also call :func:`rnn_mft.settings.reload`, so that the library sees the
new value at once, as it would in a fresh process. Every test starts and ends with the settings
read afresh from the environment (what an earlier test left in the cache never leaks).
"""
from __future__ import annotations

import pytest

from rnn_mft import settings


class _SettingsMonkeyPatch(pytest.MonkeyPatch):
    """pytest's MonkeyPatch; ``setenv``/``delenv`` of an ``RNN_MFT_*`` variable reload the settings."""

    def setenv(self, name, value, prepend=None):
        super().setenv(name, value, prepend)
        if str(name).startswith("RNN_MFT_"):
            settings.reload()

    def delenv(self, name, raising=True):
        super().delenv(name, raising)
        if str(name).startswith("RNN_MFT_"):
            settings.reload()

    def undo(self):
        super().undo()
        settings.reload()


@pytest.fixture
def monkeypatch():
    """pytest's ``monkeypatch``, keeping :mod:`rnn_mft.settings` in step with the environment."""
    mp = _SettingsMonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Each test reads the settings from the environment as it finds it, and leaves none cached."""
    settings.reload()
    yield
    settings.reload()
