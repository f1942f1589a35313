"""One module per figure or table: ``config(profile)`` and ``run(cfg)``.

Profiles (DESIGN.md): ``smoke`` (seconds, used by the tests), ``ci`` (the whole book in well
under 45 minutes on 2 CPU cores), ``paper`` (the paper's scale, needs a GPU).
"""
from __future__ import annotations

PROFILES = ("smoke", "ci", "paper")


def check_profile(profile: str) -> str:
    """Return ``profile`` if known, else raise a ValueError naming the allowed profiles."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile={profile!r}; allowed: {', '.join(PROFILES)}")
    return profile
