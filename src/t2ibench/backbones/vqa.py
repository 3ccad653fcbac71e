"""VQA models (VQAScore's families), shared by the VQAScore, role-bias and BERTScore evaluators and ReBind's filter.

Families (:mod:`t2ibench.backbones.chat_vlm`'s ``FAMILIES``, t2v-metrics 3.0's presets): ``clip-flant5`` (t2ibench's
re-implementation, :mod:`t2ibench.backbones.clip_flant5`), ``llava`` (LLaVA-1.5, :mod:`t2ibench.backbones.llava15`) and
``qwen2_vl`` (Qwen2-VL-Instruct, :mod:`t2ibench.backbones.chat_vlm`),
each with its question template, answer and probability rule. :func:`load` builds a family's model once per process;
:func:`scores_for_images` scores (image, text) pairs with the ``transformers`` backend (in-process) or the
``t2v_metrics`` backend (the reference package run in its own environment, ``_t2v_metrics_entry.py``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2ibench.api.config import option, stand_in, typed
from t2ibench.api.requirements import Requirements
from t2ibench.backbones import cached
from t2ibench.backbones.chat_vlm import family
from t2ibench.errors import T2IBenchError

log = logging.getLogger(__name__)


# Raised whenever the transformers backend's numbers change, so that cached pair scores and score files made before
# are not reused under the same key. 2 (2026-12-07): CLIP-FlanT5 scores over the tokenizer's vocabulary, pad ids in
# a text are masked (CLIP-FlanT5, LLaVA), as t2v-metrics does.
SCORER_REVISION = 2


@dataclass
class VQAConfig:
    """A VQAScore configuration (the vqascore evaluator's, role bias's ``vqa``, ReBind's filter): null template, answer
    and rule take the family's t2v-metrics 3.0 values, a null model the family's checkpoint."""

    backend: str = "transformers"  # transformers (t2ibench's implementation) | t2v_metrics (the reference, own env)
    family: str = "clip-flant5"  # clip-flant5 (the papers' default) | llava (LLaVA-1.5) | qwen2_vl (Qwen2-VL)
    # null: the family's checkpoint (the composed config shows it, ${vqa_checkpoint:FAMILY}); tiny = a random stand-in
    model: str | None = stand_in("vqa", None, otherwise="${vqa_checkpoint:${.family}}")
    revision: str = "main"  # pin a commit hash for reproducible numbers
    tokenizer: str = "google/flan-t5-xxl"  # clip-flant5 only (the slow flan-t5-xxl tokenizer)
    template: str | None = None  # null: the family's ('Does this figure show "{}"? Please answer yes or no.')
    answer: str | None = None  # null: "Yes"
    rule: str | None = None  # null: the family's (geometric for CLIP-FlanT5 / LLaVA, first_token for Qwen2-VL)
    dtype: str | None = None  # null: bfloat16 on CUDA (the reference, with its autocast), float32 on CPU
    # qwen2_vl only: sdpa | flash_attention_2 (t2v-metrics' preset; needs flash-attn and a CUDA GPU) | eager
    attn_implementation: str = "sdpa"
    python: str | None = option(None, runtime=True)  # backend t2v_metrics: an environment with t2v-metrics==3.0
    timeout: float = option(86400.0, runtime=True)  # backend t2v_metrics: seconds
    seed: int = 0  # the tiny stand-in's
    batch_size: int = option(8, runtime=True)
    device: str = option("auto", runtime=True)


def vqa_options(cfg: VQAConfig | Mapping[str, Any]) -> VQAConfig:
    """A VQA config as a :class:`VQAConfig` (or the subclass it is): an instance as it is, a mapping (a script's or
    a test's dict) over the defaults, keys that are not VQA options left out (an evaluator's ``text``, ...)."""
    if isinstance(cfg, VQAConfig):
        return cfg
    names = {f.name for f in dataclasses.fields(VQAConfig)}
    return typed(VQAConfig, {k: v for k, v in dict(cfg).items() if k in names}, "vqa")


def resolve_family(cfg: VQAConfig | Mapping[str, Any]) -> VQAConfig:
    """``cfg`` with ``family`` (default clip-flant5) and its template, answer, rule and checkpoint filled where left
    null (the values that will be used)."""
    cfg = vqa_options(cfg)
    name = cfg.family or "clip-flant5"
    preset = family(name)
    out = dataclasses.replace(
        cfg,
        family=name,
        template=preset.template if cfg.template is None else cfg.template,
        answer=preset.answer if cfg.answer is None else cfg.answer,
        rule=preset.rule if cfg.rule is None else cfg.rule,
        model=preset.hub_default if cfg.model is None else cfg.model,
        attn_implementation=cfg.attn_implementation or "sdpa",
    )
    if name == "clip-flant5" and out.rule != "geometric":
        raise T2IBenchError("vqascore: the clip-flant5 family supports rule=geometric only")
    return out


def resolved_values(cfg: VQAConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The family's resolved model, template, answer and rule, and the native scorer's revision (what a score key
    and an evaluator's provenance record)."""
    cfg = vqa_options(cfg)
    resolved = resolve_family(cfg)
    return {
        **{k: getattr(resolved, k) for k in ("family", "model", "template", "answer", "rule")},
        "scorer_revision": SCORER_REVISION if resolved.backend == "transformers" else None,
    }


def backend_key(cfg: VQAConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Everything that changes a VQAScore number."""
    cfg = vqa_options(cfg)
    resolved = resolve_family(cfg)
    keys = ("backend", "family", "model", "revision", "tokenizer", "template", "answer", "rule", "dtype")
    keys += ("attn_implementation",) if resolved.family == "qwen2_vl" else ()
    return {**{k: getattr(resolved, k) for k in keys}, "scorer_revision": resolved_values(cfg)["scorer_revision"]}


def load(cfg: VQAConfig | Mapping[str, Any]) -> Any:
    """The VQA model of a family config (``model: tiny``: a seeded random one of the real structure), built once per
    process (:func:`t2ibench.backbones.cached`)."""
    from t2ibench.models import resolve_device

    cfg = resolve_family(cfg)
    device = resolve_device(cfg.device)
    name = cfg.family or "clip-flant5"
    attention = cfg.attn_implementation or "sdpa"
    key = (name, cfg.model, cfg.revision, cfg.tokenizer, cfg.dtype, attention, device)
    seed = cfg.seed
    dtype = cfg.dtype or ("bfloat16" if device.startswith("cuda") else "float32")

    def build() -> Any:
        if name == "llava_next":
            from t2ibench.backbones.llava_next import LLaVANext, tiny_llava_next

            if cfg.model == "tiny":
                return tiny_llava_next(seed).to(device)
            return LLaVANext.from_pretrained(cfg.model, cfg.revision, dtype, device)
        if name == "llava":
            from t2ibench.backbones.llava15 import LLaVA15, tiny_llava15

            if cfg.model == "tiny":
                return tiny_llava15(seed).to(device)
            return LLaVA15.from_pretrained(cfg.model, cfg.revision, dtype, device)
        if name != "clip-flant5":
            from t2ibench.backbones.chat_vlm import ChatVLM, tiny_chat_vlm

            if cfg.model == "tiny":
                return tiny_chat_vlm(name, seed).to(device)
            return ChatVLM.from_pretrained(name, cfg.model, cfg.revision, dtype, device, attention)
        from t2ibench.backbones.clip_flant5 import CLIPFlanT5, tiny_clip_flant5

        if cfg.model == "tiny":
            return tiny_clip_flant5(seed).to(device)
        return CLIPFlanT5.from_pretrained(cfg.model, cfg.revision, cfg.tokenizer, dtype, device)

    return cached("vqa", key + (seed,), build)


def score_native(cfg: VQAConfig | Mapping[str, Any], images: Sequence[Any], texts: Sequence[str]) -> list[float]:
    """VQAScore of each (images[i], texts[i]) with the transformers backend, in batches of ``batch_size``."""
    cfg = resolve_family(cfg)
    model = load(cfg)
    template, answer, rule = cfg.template, cfg.answer, cfg.rule
    batch = max(1, cfg.batch_size)
    out: list[float] = []
    for start in range(0, len(texts), batch):
        questions = [template.format(t) for t in texts[start : start + batch]]
        out += model.answer_probability(list(images[start : start + batch]), questions, answer, rule)
    return out


def score_t2v_metrics(
    cfg: VQAConfig | Mapping[str, Any], image_paths: Sequence[str], texts: Sequence[str]
) -> list[float]:
    """VQAScore through the reference package in its own environment (see the module docstring)."""
    cfg = vqa_options(cfg)
    python = cfg.python
    if not python:
        raise T2IBenchError(
            "vqascore backend t2v_metrics needs evaluator.vqascore.python=<python of an environment with t2v-metrics==3.0>"
        )
    entry = Path(__file__).with_name("_t2v_metrics_entry.py")
    with tempfile.TemporaryDirectory(prefix="t2ibench-t2v-") as folder:
        request, output = Path(folder, "pairs.json"), Path(folder, "scores.json")
        request.write_text(json.dumps([{"image": str(p), "text": t} for p, t in zip(image_paths, texts, strict=True)]))
        try:
            result = subprocess.run(
                [
                    python,
                    str(entry),
                    "--model",
                    str(cfg.model),
                    "--request",
                    str(request),
                    "--output",
                    str(output),
                ],
                capture_output=True,
                text=True,
                env={**os.environ},
                timeout=cfg.timeout,
            )
        except FileNotFoundError:
            raise T2IBenchError(f"vqascore: the t2v-metrics python {python} does not exist") from None
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise T2IBenchError(f"vqascore: t2v-metrics failed in {python}: {last}")
        data = json.loads(output.read_text())
    log.info(
        "vqascore: scored %d pairs with t2v-metrics %s (%s)",
        len(texts),
        data.get("t2v_metrics_version"),
        data.get("model"),
    )
    return [float(row["score"]) for row in data["scores"]]


def scores_for_images(cfg: VQAConfig | Mapping[str, Any], images: Sequence[Any], texts: Sequence[str]) -> list[float]:
    """VQAScore of in-memory PIL images (no run store, no cache): the native backend, or t2v-metrics via temporary PNGs."""
    cfg = vqa_options(cfg)
    if cfg.backend == "t2v_metrics":
        with tempfile.TemporaryDirectory(prefix="t2ibench-vqa-") as folder:
            paths = []
            for i, image in enumerate(images):
                paths.append(str(Path(folder, f"{i}.png")))
                image.save(paths[-1])
            return score_t2v_metrics(cfg, paths, texts)
    return score_native(cfg, images, texts)


def vqa_requirements(cfg: VQAConfig | Mapping[str, Any]) -> Requirements:
    """The hub weights of a VQA config: the family's checkpoint, and CLIP-FlanT5's T5 tokenizer."""
    cfg = resolve_family(cfg)
    needs = Requirements()
    needs.add_weight(cfg.model, cfg.revision)
    if cfg.family == "clip-flant5":
        needs.add_weight(cfg.tokenizer)
    if cfg.family == "llava" and needs.weights:  # a hub checkpoint's config names the hub tower (mm_vision_tower)
        from t2ibench.backbones.llava15 import DEFAULT_TOWER

        needs.add_weight(DEFAULT_TOWER)
    return needs
