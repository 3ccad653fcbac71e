"""RoleBench (Malakouti & Kovashka, "Role Bias in Diffusion Models", NeurIPS 2025): role compositions.

Definition transcribed from the official code, sinamalakouti/ReBind@19ea3fa481f1dfa7f7fc3904f2c77e363e6d4720
(``rebind/dataset/rolebench.py``, ``rebind/prompts/prompt_utils.py``, ``rebind/dataset/generate_rolebench.py``),
kept in ``benchmarks/data/rolebench.yaml``: 10 action relations, each a frequent composition (e.g. cat chasing
mouse) and its rare reverse (mouse chasing cat). Prompts are ``prefix + template`` with each entity written
"one {x}": "A photorealistic image of one mouse chasing one cat" (benchmark prefix); ReBind's training captions
use "A photo of " (``split=intermediates``).

**Role questions.** The official yes/no questions are written by GPT-4o at run time and are not published.
t2ibench ships its own frozen, versioned set (``question_set_version`` in the YAML), following the scheme of
``../shared/reference/evaluators.md`` section 2.3: per composition ``{category: {weight, questions, statements}}``
for the paper's four categories (spatial, orientation, pose, facial_expression) plus ``detection`` (the gate
of the code's QA score). Scores with them are comparable across t2ibench runs, not with the paper's numbers.

Options: ``split`` = ``benchmark`` (10 frequent + 10 rare, default), ``intermediates`` (the 20 passive/active
ReBind training compositions) or ``all``; ``prefix`` overrides the prompt prefix.

Metadata of benchmark prompts:
    subject, relation, object: the composition (entities as words, e.g. "zoo trainer").
    frequency: "frequent" or "rare".
    reverse_id: id of the reversed composition's prompt.
    vqa_text, vqa_text_reverse: the bare phrase VQAScore scores, no prefix or determiners ("mouse chasing cat").
    questions, questions_reverse: the role questions of this composition and of its reverse.
    question_set_version: version of the frozen question set.
Metadata of intermediate prompts: subject, relation, object, role ("passive" | "active"), rare_id (the rare
composition it helps), vqa_text, vqa_text_reverse (ReBind's VQAScore margin compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import BenchmarkConfig
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt

SPLITS = ("benchmark", "intermediates", "all")
CATEGORIES = ("detection", "spatial", "orientation", "pose", "facial_expression")


@lru_cache(maxsize=1)
def definition() -> dict[str, Any]:
    """The parsed ``benchmarks/data/rolebench.yaml``."""
    return yaml.safe_load(
        resources.files("t2ibench.benchmarks").joinpath("data/rolebench.yaml").read_text(encoding="utf-8")
    )


def phrase(template: str, subject: str, obj: str, determiner: str = "") -> str:
    """The relation phrase, e.g. ``phrase("{s} riding on {o}", "horse", "astronaut", "one ")``."""
    return template.format(s=determiner + subject, o=determiner + obj)


def role_questions(relation: str, subject: str, obj: str) -> dict[str, dict[str, Any]]:
    """The frozen question set of one composition: {category: {weight, questions, statements}}."""
    data = definition()
    per_category = {"detection": data["detection"], **data["questions"][relation]}
    out = {}
    for category in CATEGORIES:
        pairs = per_category[category]
        out[category] = {
            "weight": data["category_weights"][category],
            "questions": [q.format(s=subject, o=obj) for q, _ in pairs],
            "statements": [s.format(s=subject, o=obj) for _, s in pairs],
        }
    return out


@dataclass
class RoleBenchConfig(BenchmarkConfig):
    name: str = "rolebench"
    split: str = "benchmark"  # benchmark (20 prompts) | intermediates (ReBind's 20 training compositions) | all
    prefix: str | None = None  # null: "A photorealistic image of " (benchmark), "A photo of " (intermediates)


@BENCHMARKS.register("rolebench", config_schema=RoleBenchConfig)
def load_rolebench(cfg: RoleBenchConfig) -> list[Prompt]:
    """RoleBench prompts (see the module docstring)."""
    split = cfg.split
    prefix = cfg.prefix
    if split not in SPLITS:
        raise T2IBenchError(f"rolebench.split={split!r}; valid: {', '.join(SPLITS)}")
    data = definition()
    det = data["determiner"]

    def composition(relation: str, label: str, prefix_: str, subject: str, obj: str, **extra: Any) -> Prompt:
        template = data["relations"][relation]["template"]
        return Prompt(
            id=f"rolebench-{relation}-{label}",
            text=prefix_ + phrase(template, subject, obj, det),
            benchmark="rolebench",
            metadata={
                "subject": subject,
                "relation": relation,
                "object": obj,
                "vqa_text": phrase(template, subject, obj),
                **extra,
            },
        )

    prompts: list[Prompt] = []
    for relation, spec in data["relations"].items():
        if split in ("benchmark", "all"):
            bench_prefix = data["benchmark_prefix"] if prefix is None else prefix
            roles = {"frequent": (spec["subject"], spec["object"]), "rare": (spec["object"], spec["subject"])}
            for frequency, (subject, obj) in roles.items():
                other = "rare" if frequency == "frequent" else "frequent"
                prompts.append(
                    composition(
                        relation,
                        frequency,
                        bench_prefix,
                        subject,
                        obj,
                        frequency=frequency,
                        reverse_id=f"rolebench-{relation}-{other}",
                        vqa_text_reverse=phrase(spec["template"], obj, subject),
                        questions=role_questions(relation, subject, obj),
                        questions_reverse=role_questions(relation, obj, subject),
                        question_set_version=data["question_set_version"],
                    )
                )
        if split in ("intermediates", "all"):
            train_prefix = data["training_prefix"] if prefix is None else prefix
            for role in ("passive", "active"):
                subject, obj = spec[role]
                prompts.append(
                    composition(
                        relation,
                        role,
                        train_prefix,
                        subject,
                        obj,
                        role=role,
                        rare_id=f"rolebench-{relation}-rare",
                        vqa_text_reverse=phrase(spec["template"], obj, subject),
                    )
                )
    return prompts
