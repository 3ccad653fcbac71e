"""The built-in tiny benchmark: a few prompts in the style of each benchmark of the harness, written by us.

It needs no download, so the default run and the tests work anywhere. Prompts live in
``benchmarks/data/tiny.yaml``. Metadata keys:
    style: which benchmark the prompt imitates (rolebench, dvmp, abc6k, attend_and_excite, winobias, i2p,
        correlated_pairs, coco30k).
    plus, per style, the keys that benchmark documents (e.g. RoleBench ``subject``/``relation``/``object``,
    Attend-and-Excite ``subject_words``, Winobias ``occupation``, correlated pairs ``target_word``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import BenchmarkConfig
from t2ibench.prompt import Prompt


@dataclass
class TinyConfig(BenchmarkConfig):
    name: str = "tiny"
    styles: list[str] | None = None  # keep only these styles, e.g. [rolebench, winobias]


@lru_cache(maxsize=1)
def _rows() -> list[dict[str, Any]]:
    text = resources.files("t2ibench.benchmarks").joinpath("data/tiny.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["prompts"]


@BENCHMARKS.register("tiny", config_schema=TinyConfig)
def load_tiny(cfg: TinyConfig) -> list[Prompt]:
    """All tiny prompts, or those whose ``style`` is in ``styles``."""
    styles = cfg.styles
    rows = copy.deepcopy(_rows())  # parsed once per process (a sweep's cells each load it); copied: metadata is mutable
    prompts = [
        Prompt(id=row["id"], text=row["text"], benchmark="tiny", metadata=row.get("metadata", {})) for row in rows
    ]
    if styles:
        prompts = [p for p in prompts if p.metadata.get("style") in set(styles)]
    return prompts
