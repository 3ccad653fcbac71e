"""Correlated object pairs (Decorrelation; Tong et al., "Decoding Correlation-Induced Misalignment in the
Stable Diffusion Workflow for Text-to-Image Generation", ICCV 2025).

The paper's 30 GPT-4 prompts are not published. Built in (``benchmarks/data/correlated_pairs.yaml``) are
the examples printed in the paper: "rusty tracks with an old train" (SD omits the train) and its reordering
"an old train with rusty tracks", and "a peaceful trail stops at a trash bin" (its omitted object is not
stated; t2ibench reads it as the bin and leaves the correlated token to the method's argmax). For a real
study, pass your own CSV with ``path``: columns ``prompt``, ``target_word``, ``correlated_word`` (may be
empty) and optionally ``id``.

Metadata:
    target_word: the object the base model omits (the Decorrelation method's s_target).
    correlated_word: the token that dominates it, or null (the method computes s_corr; this is a check).
    note: where the example comes from (built-in set only); line (user CSV only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import BenchmarkConfig
from t2ibench.benchmarks._files import read_prompt_file
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt


@lru_cache(maxsize=1)
def builtin() -> list[dict[str, Any]]:
    text = resources.files("t2ibench.benchmarks").joinpath("data/correlated_pairs.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["prompts"]


@dataclass
class CorrelatedPairsConfig(BenchmarkConfig):
    name: str = "correlated_pairs"
    path: str | None = None  # a CSV with prompt, target_word, correlated_word[, id]; null = the paper's examples


@BENCHMARKS.register("correlated_pairs", config_schema=CorrelatedPairsConfig)
def load_correlated_pairs(cfg: CorrelatedPairsConfig) -> list[Prompt]:
    """The built-in paper examples, or the prompts of a user CSV (see the module docstring)."""
    path = cfg.path
    if path is None:
        return [
            Prompt(
                id=f"corr-{row['id']}",
                text=row["text"],
                benchmark="correlated_pairs",
                metadata={
                    "target_word": row["target_word"],
                    "correlated_word": row["correlated_word"],
                    "note": row["note"],
                },
            )
            for row in builtin()
        ]
    prompts = []
    for prompt in read_prompt_file(path, format="csv"):
        meta = dict(prompt.metadata)
        if not str(meta.get("target_word") or "").strip():
            raise T2IBenchError(f"{path}:{meta['line']}: missing target_word")
        target = str(meta["target_word"]).strip()
        if target.lower() not in re.findall(r"[a-z0-9'-]+", prompt.text.lower()):
            raise T2IBenchError(f"{path}:{meta['line']}: target_word {target!r} is not a word of the prompt")
        meta["target_word"] = target
        meta["correlated_word"] = str(meta.get("correlated_word") or "").strip() or None
        prompts.append(Prompt(id=f"corr-{prompt.id}", text=prompt.text, benchmark="correlated_pairs", metadata=meta))
    return prompts
