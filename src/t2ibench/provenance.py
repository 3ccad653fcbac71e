"""Library versions and environment facts recorded with every image and table."""

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
