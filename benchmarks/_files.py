"""Shared by the benchmarks that read a downloaded data file (see :mod:`t2ibench.data_files`).

``sample=True`` reads the benchmark's embedded sample instead: ``benchmarks/data/samples/<folder>.<ext>``, the first
rows of the public file in its own format (origin and licence in ``benchmarks/data/samples/SOURCE.md``). It is what
the tiny stand-in model uses (``model.stand_ins.benchmark_sample``), so the tiny flow needs no download; prompt ids are
those of the same rows in the full file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from t2ibench.data_files import DataFile, resolve
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import file_sha256

SAMPLES = {
    "abc6k": "abc6k.txt",
    "attend_and_excite": "attend_and_excite.json",
    "cc500": "cc500.txt",
    "coco30k": "coco30k.csv",
    "i2p": "i2p.csv",
}


def sample_path(spec: DataFile) -> Path:
    """The embedded sample of ``spec``'s file."""
    if spec.folder not in SAMPLES:
        raise T2IBenchError(f"{spec.relpath} has no embedded sample; set benchmark.sample=false")
    return Path(str(resources.files("t2ibench.benchmarks").joinpath("data/samples", SAMPLES[spec.folder])))


def locate(
    spec: DataFile, data_dir: str | None, verify_sha256: bool, sample: bool = False
) -> tuple[Path, dict[str, Any]]:
    """The verified file (or the embedded sample) and the provenance recorded in each prompt's metadata."""
    if sample:
        path = sample_path(spec)
        return path, {
            "source_file": f"sample of {spec.relpath}: data/samples/{path.name}",
            "source_sha256": file_sha256(path),
        }
    found = resolve(spec, data_dir=data_dir, verify=verify_sha256)
    return found.path, {"source_file": spec.relpath, "source_sha256": found.sha256}
