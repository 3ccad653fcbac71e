"""Shared by the benchmarks that read data files: located and verified downloads (see :mod:`t2ibench.data_files`),
embedded samples, and prompt files (TXT / CSV / JSONL, read by ``prompt_file`` and ``correlated_pairs``).

``sample=True`` reads the benchmark's embedded sample instead: ``benchmarks/data/samples/<folder>.<ext>``, the first
rows of the public file in its own format (origin and licence in ``benchmarks/data/samples/SOURCE.md``). It is what
the tiny stand-in model uses (``model.stand_ins.benchmark_sample``), so the tiny flow needs no download; prompt ids are
those of the same rows in the full file.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from t2ibench.api.benchmark import FileBenchmarkConfig
from t2ibench.data_files import DataFile, read_csv_rows, read_jsonl, read_lines, resolve
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import file_sha256
from t2ibench.prompt import Prompt

# weixi-feng/Structured-Diffusion-Guidance, the commit ABC-6K and CC-500 are pinned to
STRUCTURE_DIFFUSION_COMMIT = "773b2ba068c6cc60443d5d747a725413c8c9d46f"


def sample_path(spec: DataFile) -> Path:
    """The embedded sample of ``spec``'s file (``spec.sample``, a file of ``benchmarks/data/samples/``)."""
    if not spec.sample:
        raise T2IBenchError(f"{spec.relpath} has no embedded sample; set benchmark.sample=false")
    return Path(str(resources.files("t2ibench.benchmarks").joinpath("data/samples", spec.sample)))


def locate(spec: DataFile, cfg: FileBenchmarkConfig) -> tuple[Path, dict[str, Any]]:
    """The verified file (or, with ``cfg.sample``, its embedded sample) and the provenance recorded in each prompt's
    metadata."""
    if cfg.sample:
        path = sample_path(spec)
        return path, {
            "source_file": f"sample of {spec.relpath}: data/samples/{path.name}",
            "source_sha256": file_sha256(path),
        }
    found = resolve(spec, data_dir=cfg.data_dir, verify=cfg.verify_sha256)
    return found.path, {"source_file": spec.relpath, "source_sha256": found.sha256}


FORMATS = ("txt", "csv", "jsonl")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "prompts"


def read_prompt_rows(path: Path, fmt: str, column: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(line, prompt text, other columns) of every row of a prompt file."""
    if fmt == "txt":
        return [(line, text, {}) for line, text in read_lines(path)]
    rows = read_csv_rows(path, [column]) if fmt == "csv" else read_jsonl(path)
    out = []
    for line, record in rows:
        if column not in record:
            raise T2IBenchError(f"{path}:{line}: missing column {column!r}")
        text = record[column]
        if not isinstance(text, str) or not text.strip():
            raise T2IBenchError(f"{path}:{line}: empty or non-text prompt in column {column!r}")
        if "\x00" in text:  # a JSON \u0000: it would reach the tokenizer
            raise T2IBenchError(f"{path}:{line}: a NUL character (\\x00) in the prompt of column {column!r}")
        out.append((line, text, {k: v for k, v in record.items() if k != column}))
    return out


def read_prompt_file(
    path: str | None, column: str = "prompt", id_column: str = "id", format: str | None = None
) -> list[Prompt]:
    """Prompts from a file (see the module docstring)."""
    if not path:
        raise T2IBenchError("benchmark=prompt_file needs benchmark.path=<file.txt|.csv|.jsonl>")
    file = Path(path).expanduser()
    if file.is_dir():
        raise T2IBenchError(f"benchmark.path={file} is a directory; give a prompt file (.txt, .csv or .jsonl)")
    if not file.is_file():
        raise T2IBenchError(f"prompt file {file} does not exist")
    fmt = (format or file.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise T2IBenchError(
            f"{file}: unknown prompt file format {fmt!r}; valid: {', '.join(FORMATS)} (set benchmark.format)"
        )
    stem = _slug(file.stem)
    prompts, seen = [], {}
    for line, text, extra in read_prompt_rows(file, fmt, column):
        given = extra.pop(id_column, None)
        prompt_id = str(given) if given not in (None, "") else f"{stem}-{line}"
        if prompt_id in seen:
            raise T2IBenchError(f"{file}:{line}: duplicate id {prompt_id!r} (first at line {seen[prompt_id]})")
        seen[prompt_id] = line
        try:
            prompts.append(Prompt(id=prompt_id, text=text, benchmark="prompt_file", metadata={**extra, "line": line}))
        except ValueError as err:
            raise T2IBenchError(f"{file}:{line}: {err}") from None
    if not prompts:
        raise T2IBenchError(f"{file}: no prompts")
    return prompts
