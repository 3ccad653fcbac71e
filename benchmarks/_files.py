"""Shared by the benchmarks that read a downloaded data file (see :mod:`t2ibench.data_files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2ibench.data_files import DataFile, resolve


def locate(spec: DataFile, data_dir: str | None, verify_sha256: bool) -> tuple[Path, dict[str, Any]]:
    """The verified file and the provenance recorded in each prompt's metadata."""
    found = resolve(spec, data_dir=data_dir, verify=verify_sha256)
    return found.path, {"source_file": spec.relpath, "source_sha256": found.sha256}
