"""Your own prompts: a TXT file (one prompt a line), or a CSV or JSONL file with a prompt column.

Options:
    path: the file (required). Its format comes from the suffix: .txt, .csv, .jsonl (or ``format``).
    column: the prompt column of a CSV/JSONL file (default ``prompt``).
    id_column: a column with stable prompt ids (default ``id``; used when present). Without it, ids are
        ``<file stem>-<line>``, stable as long as the lines do not move.
    label (default ``prompts``): the name used in the run store and tables.

Metadata: every other column of the row (JSONL values keep their JSON types; CSV values are strings),
plus ``line`` (1-based line of the row in the file). A malformed line, a missing column, an empty prompt
or an invalid id stops with an error naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass

from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import BenchmarkConfig
from t2ibench.benchmarks._files import read_prompt_file
from t2ibench.prompt import Prompt


@dataclass
class PromptFileConfig(BenchmarkConfig):
    name: str = "prompt_file"
    label: str | None = "prompts"  # the name in the run store and tables
    path: str | None = None
    column: str = "prompt"  # the prompt column of a CSV/JSONL file
    id_column: str = "id"  # a column of stable ids, used when present
    format: str | None = None  # txt | csv | jsonl; null = from the suffix


@BENCHMARKS.register("prompt_file", config_schema=PromptFileConfig)
def load_prompt_file(cfg: PromptFileConfig) -> list[Prompt]:
    """Prompts from a file (see the module docstring)."""
    return read_prompt_file(cfg.path, cfg.column, cfg.id_column, cfg.format)
