"""DVMP-style prompts (Diverse Visual Modifier Prompts; Rassin et al., "Linguistic Binding in Diffusion Models"
(SynGen), NeurIPS 2023), from a seeded re-implementation of the official generator.

The paper's prompt set is not published and the official generator (``dvmp.py`` of
RoyiRa/Linguistic-Binding-in-Diffusion-Models@50b8eab175dc9b31ce9c7c4b2eba28c817fc440e) is unseeded, so these
prompts are **DVMP-style**, not the paper's. The rules, from that generator: a prompt is 1-3 distinct
phrases (uniform) joined by " and "; a phrase draws a category (animal / object / fruit, uniform), 0 to
``max_non_color_modifiers`` distinct category modifiers, and with probability 1/3 a colour put first; a
phrase with no modifier is drawn again; the article is "an" before a vowel; prompts are distinct. The
vocabulary is ``benchmarks/data/dvmp.yaml``. Generation is sequential from ``random.Random(seed)``, so the
first n prompts do not depend on ``size``.

Options: ``size`` (default 600, the size reported for the paper's set; the upstream default is 200),
``seed`` (default 0).

Metadata: num_phrases, num_modifiers (colours included), subjects (the nouns, in order), phrases
(per phrase: noun, category, color or null, modifiers), generator_seed.
"""

from __future__ import annotations

import random
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
def vocabulary() -> dict[str, Any]:
    """The parsed ``benchmarks/data/dvmp.yaml``."""
    return yaml.safe_load(resources.files("t2ibench.benchmarks").joinpath("data/dvmp.yaml").read_text(encoding="utf-8"))


def _phrase(rng: random.Random, vocab: dict[str, Any]) -> dict[str, Any]:
    categories = sorted(vocab["categories"])
    while True:
        category = rng.choice(categories)
        spec = vocab["categories"][category]
        count = rng.randint(0, spec["max_non_color_modifiers"])
        modifiers = rng.sample(spec["modifiers"], count)
        color = rng.choice(vocab["colors"]) if rng.random() < vocab["color_probability"] else None
        if color is None and not modifiers:
            continue  # the generator resamples phrases without any modifier
        noun = rng.choice(spec["nouns"])
        words = ([color] if color else []) + modifiers
        article = "an" if words[0][0] in "aeiou" else "a"
        return {
            "text": f"{article} {' '.join(words)} {noun}",
            "noun": noun,
            "category": category,
            "color": color,
            "modifiers": modifiers,
        }


def generate(size: int, seed: int = 0) -> list[dict[str, Any]]:
    """``size`` distinct DVMP-style prompts with their structure."""
    vocab = vocabulary()
    rng = random.Random(seed)
    seen: set[str] = set()
    out = []
    while len(out) < size:
        count = rng.choice(vocab["phrases_per_prompt"])
        phrases: list[dict[str, Any]] = []
        while len(phrases) < count:
            candidate = _phrase(rng, vocab)
            if all(candidate["text"] != p["text"] for p in phrases):
                phrases.append(candidate)
        text = vocab["phrase_joiner"].join(p["text"] for p in phrases)
        if text in seen:
            continue
        seen.add(text)
        out.append({"text": text, "phrases": phrases})
    return out


@dataclass
class DVMPConfig(BenchmarkConfig):
    name: str = "dvmp"
    size: int = 600  # prompts generated (the first n do not depend on size)
    seed: int = 0  # generator seed


@BENCHMARKS.register("dvmp", config_schema=DVMPConfig)
def load_dvmp(cfg: DVMPConfig) -> list[Prompt]:
    """DVMP-style prompts (see the module docstring)."""
    size = cfg.size
    seed = cfg.seed
    if size < 1:
        raise T2IBenchError(f"dvmp.size must be >= 1, got {size}")
    prompts = []
    for index, item in enumerate(generate(size, seed)):
        phrases = [{k: p[k] for k in ("noun", "category", "color", "modifiers")} for p in item["phrases"]]
        prompts.append(
            Prompt(
                id=f"dvmp-s{seed}-{index}",
                text=item["text"],
                benchmark="dvmp",
                metadata={
                    "num_phrases": len(phrases),
                    "num_modifiers": sum(len(p["modifiers"]) + (p["color"] is not None) for p in phrases),
                    "subjects": [p["noun"] for p in phrases],
                    "phrases": phrases,
                    "generator_seed": seed,
                },
            )
        )
    return prompts
