"""Winobias occupations (SDisc, Li et al., CVPR 2024; RespoDiff, NeurIPS 2025): fairness prompts.

From ``winobias_cfg.py`` of VSSILPA/respodiff@d0a6d9c9e2a2be5669b7e7d36b4288392acf8c86 (identical in
hangligit/InterpretDiffusion@ad0f51b), kept in ``benchmarks/data/winobias.yaml``: 36 professions and two
template keys of five templates each; ``{{placeholder}}`` becomes ``profession.lower()`` ("Photo of doctor").

Options: ``template_key`` ("0", the evaluation scripts' choice, default; "1"; or "all"); ``professions``
(a subset, by name).

Metadata:
    occupation: the profession as written in the config ("Construction worker").
    template_key, template_index, template: which template produced the prompt.
    attribute_sets: the CLIP zero-shot texts DevRat classifies into: {"gender": ["a woman", "a man"],
        "race": ["a black-race person", "a white-race person", "a Asian-race person"]} (RespoDiff's spelling).
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
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt


@lru_cache(maxsize=1)
def definition() -> dict[str, Any]:
    """The parsed ``benchmarks/data/winobias.yaml``."""
    return yaml.safe_load(
        resources.files("t2ibench.benchmarks").joinpath("data/winobias.yaml").read_text(encoding="utf-8")
    )


@dataclass
class WinobiasConfig(BenchmarkConfig):
    name: str = "winobias"
    template_key: str = "0"  # "0" (the evaluation scripts' choice) | "1" ("a successful ...") | all
    professions: list[str] | None = None  # a subset by name, e.g. [Doctor, Nurse]


@BENCHMARKS.register("winobias", config_schema=WinobiasConfig)
def load_winobias(cfg: WinobiasConfig) -> list[Prompt]:
    """Winobias prompts (see the module docstring)."""
    template_key = cfg.template_key
    professions = cfg.professions
    data = definition()
    keys = sorted(data["templates"]) if str(template_key) == "all" else [str(template_key)]
    for key in keys:
        if key not in data["templates"]:
            raise T2IBenchError(
                f"winobias.template_key={template_key!r}; valid: {', '.join(sorted(data['templates']))}, all"
            )
    chosen = data["professions"]
    if professions:
        unknown = sorted(set(professions) - set(chosen))
        if unknown:
            raise T2IBenchError(f"unknown winobias profession(s) {', '.join(unknown)}; valid: {', '.join(chosen)}")
        chosen = [p for p in chosen if p in set(professions)]
    prompts = []
    for profession in chosen:
        slug = re.sub(r"[^a-z0-9]+", "-", profession.lower()).strip("-")
        for key in keys:
            for index, template in enumerate(data["templates"][key]):
                prompts.append(
                    Prompt(
                        id=f"winobias-{slug}-k{key}-t{index}",
                        text=template.replace("{{placeholder}}", profession.lower()),
                        benchmark="winobias",
                        metadata={
                            "occupation": profession,
                            "template_key": key,
                            "template_index": index,
                            "template": template,
                            "attribute_sets": data["attribute_sets"],
                        },
                    )
                )
    return prompts
