"""Your own prompts: a TXT file (one prompt a line), or a CSV or JSONL file with a prompt column.

Options:
    path: the file (required). Its format comes from the suffix: .txt, .csv, .jsonl (or ``format``).
    column: the prompt column of a CSV/JSONL file (default ``prompt``).
    id_column: a column with stable prompt ids (default ``id``; used when present). Without it, ids are
        ``<file stem>-<line>``, stable as long as the lines do not move.
    label (in ``conf/benchmark/prompt_file.yaml``): the name used in the run store and tables.

Metadata: every other column of the row (JSONL values keep their JSON types; CSV values are strings),
plus ``line`` (1-based line of the row in the file). A malformed line, a missing column, an empty prompt
or an invalid id stops with an error naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from t2ibench.benchmarks import BENCHMARKS
from t2ibench.data_files import read_csv_rows, read_jsonl, read_lines
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt

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
        out.append((line, text, {k: v for k, v in record.items() if k != column}))
    return out


@BENCHMARKS.register("prompt_file")
def load_prompt_file(
    path: str | None = None, column: str = "prompt", id_column: str = "id", format: str | None = None
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
