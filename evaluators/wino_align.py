"""WinoAlign: the CLIP score of each Winobias image with its own generating prompt, averaged over all images
(RespoDiff, NeurIPS 2025, ``CLIP_classify.py::evaluate_alignment`` at VSSILPA/respodiff@d0a6d9c: ``logits_per_image``
of CLIP ViT-B/32 = 100 cos, no clamp; ``../shared/reference/evaluators.md`` §5.2; the name is unverified against
the paper). It is the CLIP-score computation of ``clip_score`` with that configuration (one shared implementation,
``evaluators/_clip_score.py``); rows and the table cell are named ``wino_align``.
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
class WinoAlignConfig(EvaluatorConfig):
    """CLIP score of each Winobias image with its prompt: ViT-B/32, 100 cos, no clamp (RespoDiff)."""

    backbone: str = stand_in("clip", "openai/clip-vit-base-patch32")
    revision: str = "main"
    scale: float = 100.0
    clamp: str = "none"
    prefix: str = ""
    seed: int = 0
    batch_size: int = option(32, runtime=True)


@EVALUATORS.register("wino_align")
class WinoAlignEvaluator(Evaluator):
    """CLIP score (ViT-B/32, 100 cos, no clamp) under the name ``wino_align``."""

    name = "wino_align"
    config_schema = WinoAlignConfig
    metrics = ("wino_align",)
    metric_specs = (MetricSpec("wino_align", "100 x cos(image, prompt) (CLIP ViT-B/32)", True),)
    backbone_keys = {"CLIP": ("backbone", "revision")}

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        check_clamp(self.cfg, self.name)

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        rows = clip_score_rows(self.cfg, store, records)
        return [{"wino_align": row["clip_score"], "clip_cos": row["clip_cos"]} for row in rows]

    def aggregate(self, frame: Any) -> list[Cell]:
        return [clip_score_cell("wino_align", frame["wino_align"].tolist() if len(frame) else [], self.cfg.clamp)]
