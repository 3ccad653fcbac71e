"""Library versions, environment facts and stand-in labels recorded with every image and table.

**Stand-ins.** A number made on the tiny random model, or by an evaluator whose backbone is a tiny random stand-in,
means nothing about any real model. Such a cell is a *stand-in cell*: its images live under
``<run.root>/stand-ins/``, its tables under ``<results.root>/stand-ins/<experiment>/`` (never beside real cells, never
in ``results/leaderboard.md``), and every table labels its rows with :func:`stand_in_label`.
"""

from __future__ import annotations

import functools
import platform
from importlib import metadata


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of the packages that change numbers (absent packages are left out)."""
    versions = {"python": platform.python_version()}
    for package in (
        "t2ibench",
        "torch",
        "diffusers",
        "transformers",
        "accelerate",
        "peft",
        "torchmetrics",
        "numpy",
        "pillow",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


STAND_IN_FOLDER = "stand-ins"
STAND_IN_NOTE = "tiny stand-in"


def stand_in_label(label: str) -> str:
    """The row label of a stand-in cell, e.g. ``sdxl (tiny stand-in)``; the tiny model itself is ``tiny (stand-in)``."""
    return f"{label} (stand-in)" if label == "tiny" else f"{label} ({STAND_IN_NOTE})"
