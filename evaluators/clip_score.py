"""CLIP score: how well an image matches its prompt, as 100 x cosine of CLIP image and text embeddings.

Papers and conventions (``../shared/reference/evaluators.md`` section 4.4):
* Hessel et al., "CLIPScore", EMNLP 2021, Eq. 1: CLIP-S(c, v) = w * max(cos(c, v), 0), w = 2.5, ViT-B/32,
  text prefixed "A photo depicts" (``scale: 2.5, clamp: per_sample, prefix: "A photo depicts "``).
* RespoDiff (VSSILPA/respodiff@d0a6d9c, ``fid_clip_coco.py``) and WinoAlign: ``logits_per_image`` of
  ``openai/clip-vit-base-patch32`` = 100 * cos with **no clamp**, one caption per image, mean over images.
  This is the default (``scale: 100, clamp: none``).
* torchmetrics ``CLIPScore`` (Lightning-AI/torchmetrics 1.x, ``functional/multimodal/clip_score.py``):
  100 * cos per pair, but the clamp ``max(., 0)`` is applied to the **mean**, not per sample
  (``clamp: mean``); its default backbone is ViT-L/14. Numbers of different backbones are not comparable.

Each per-image row holds ``clip_cos`` (the raw cosine) and ``clip_score`` (scale x cosine, clamped at 0
when ``clamp: per_sample``). The table cell is the mean over images with a 95% t-interval; with
``clamp: mean`` the mean and its bounds are clamped at 0 afterwards, as torchmetrics does.

Preprocessing: the backbone's own ``CLIPProcessor`` on the stored PNGs as PIL uint8 images (never float
tensors, which newer transformers rescale a second time: transformers#24857). Text is tokenised with
padding to the longest and truncated to the 77 positions of CLIP, with a warning naming the prompts cut.
``backbone: tiny`` builds a seeded random CLIP in-process (tests, the offline default run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from t2ibench.api import EVALUATORS, Evaluator
from t2ibench.api.config import option, stand_in
from t2ibench.api.evaluator import EvaluatorConfig
from t2ibench.evaluators._clip_score import check_clamp, clip_score_cell, clip_score_rows
from t2ibench.run_store import RunStore
from t2ibench.stats import Cell, MetricSpec


@dataclass
class CLIPScoreConfig(EvaluatorConfig):
    """100 x cos(image, prompt), the RespoDiff / WinoAlign convention by default."""

    backbone: str = stand_in("clip", "openai/clip-vit-base-patch32")  # hub id or folder; tiny = random stand-in
    revision: str = "main"  # pin a commit hash for reproducible numbers
    scale: float = 100.0  # 100 (torchmetrics, RespoDiff) or 2.5 (Hessel et al. CLIPScore)
    clamp: str = "none"  # none (RespoDiff) | per_sample (Hessel et al.) | mean (torchmetrics CLIPScore)
    prefix: str = ""  # e.g. "A photo depicts " for Hessel et al.
    seed: int = 0  # only for the tiny stand-in
    batch_size: int = option(32, runtime=True)


@EVALUATORS.register("clip_score")
class CLIPScoreEvaluator(Evaluator):
    """Per-image CLIP score of each image with its own prompt (see the module docstring).

    Config: ``backbone`` (hub id, local folder or ``tiny``), ``revision``, ``scale`` (100, or 2.5 for
    Hessel et al.), ``clamp`` (none | per_sample | mean), ``prefix`` (prepended to the prompt),
    ``batch_size``, ``device``.
    """

    name = "clip_score"
    config_schema = CLIPScoreConfig
    metrics = ("clip_score",)
    metric_specs = (MetricSpec("clip_score", "scale x cos(image, prompt) (CLIP)", True),)
    backbone_keys = {"CLIP": ("backbone", "revision")}

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        check_clamp(self.cfg, self.name)

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return clip_score_rows(self.cfg, store, records)

    def aggregate(self, frame: Any) -> list[Cell]:
        return [clip_score_cell("clip_score", frame["clip_score"].tolist() if len(frame) else [], self.cfg.clamp)]
