"""WinoAlign: the CLIP score of each Winobias image with its own generating prompt, averaged over all images
(RespoDiff, NeurIPS 2025, ``CLIP_classify.py::evaluate_alignment`` at VSSILPA/respodiff@d0a6d9c: ``logits_per_image``
of CLIP ViT-B/32 = 100 cos, no clamp; ``../shared/reference/evaluators.md`` §5.2; the name is unverified against
the paper). It is the ``clip_score`` evaluator with that configuration (no separate implementation); rows and the
table cell are named ``wino_align``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from t2ibench.evaluators import EVALUATORS
from t2ibench.evaluators.clip_score import CLIPScoreEvaluator
from t2ibench.run_store import RunStore
from t2ibench.stats import Cell, MetricSpec


@EVALUATORS.register("wino_align")
class WinoAlignEvaluator(CLIPScoreEvaluator):
    """CLIP score (ViT-B/32, 100 cos, no clamp) under the name ``wino_align``."""

    name = "wino_align"
    metrics = ("wino_align",)
    metric_specs = (MetricSpec("wino_align", "100 x cos(image, prompt) (CLIP ViT-B/32)", True),)

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [{"wino_align": row["clip_score"], "clip_cos": row["clip_cos"]} for row in super().score(store, records)]

    def aggregate(self, frame: Any) -> list[Cell]:
        renamed = frame.rename(columns={"wino_align": "clip_score"}) if len(frame) else frame
        return [Cell("wino_align", c.value, c.ci_low, c.ci_high, c.n) for c in super().aggregate(renamed)]
