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

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from t2ibench.errors import T2IBenchError
from t2ibench.evaluators import EVALUATORS
from t2ibench.evaluators.base import Evaluator
from t2ibench.run_store import RunStore
from t2ibench.stats import Cell, MetricSpec, mean_cell

log = logging.getLogger(__name__)

CLAMP_RULES = ("none", "per_sample", "mean")
_BACKBONES: dict[tuple, tuple[Any, Any]] = {}


def load_clip(
    backbone: str, revision: str | None = None, device: str = "cpu", seed: int = 0, projection_dim: int = 16
) -> tuple[Any, Any]:
    """(CLIPModel, CLIPProcessor) for a hub id or local folder, or ``tiny`` (with ``projection_dim``); cached per process."""
    key = (backbone, revision, device, seed, projection_dim if backbone == "tiny" else None)
    if key not in _BACKBONES:
        if backbone == "tiny":
            from t2ibench.tiny_models import build_tiny_clip

            model, processor = build_tiny_clip(seed, projection_dim=projection_dim)
        else:
            from transformers import CLIPModel, CLIPProcessor

            try:
                model = CLIPModel.from_pretrained(backbone, revision=revision or "main")
                processor = CLIPProcessor.from_pretrained(backbone, revision=revision or "main")
            except (OSError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise T2IBenchError(
                    f"CLIP backbone {backbone}@{revision or 'main'} is not available offline ({first}); download it "
                    f"with `huggingface-cli download {backbone} --local-dir DIR` where there is internet and set "
                    "the evaluator's backbone=DIR"
                ) from None
        _BACKBONES[key] = (model.to(device).eval(), processor)
    return _BACKBONES[key]


def _embedding(output: Any) -> Any:
    """transformers 5 returns a model output from ``get_*_features``; 4.x returns the tensor."""
    return output if hasattr(output, "norm") else output.pooler_output


def clip_cosines(
    model: Any, processor: Any, images: Sequence[Any], texts: Sequence[str], device: str = "cpu"
) -> list[float]:
    """Cosine similarity of CLIP embeddings of ``images[i]`` (PIL) and ``texts[i]``."""
    import torch

    tokenizer = processor.tokenizer
    limit = int(getattr(model.config.text_config, "max_position_embeddings", 77))
    cut = [t for t in texts if len(tokenizer(t).input_ids) > limit]
    if cut:
        log.warning(
            "CLIP score: %d prompt(s) longer than %d tokens were truncated, e.g. %r", len(cut), limit, cut[0][:80]
        )
    text_inputs = tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
    pixel_values = processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        image_emb = _embedding(model.get_image_features(pixel_values=pixel_values.to(device)))
        text_emb = _embedding(
            model.get_text_features(
                input_ids=text_inputs["input_ids"].to(device), attention_mask=text_inputs["attention_mask"].to(device)
            )
        )
    image_emb = image_emb / image_emb.norm(p=2, dim=-1, keepdim=True)
    text_emb = text_emb / text_emb.norm(p=2, dim=-1, keepdim=True)
    return (image_emb * text_emb).sum(dim=-1).float().cpu().tolist()


@EVALUATORS.register("clip_score")
class CLIPScoreEvaluator(Evaluator):
    """Per-image CLIP score of each image with its own prompt (see the module docstring).

    Config: ``backbone`` (hub id, local folder or ``tiny``), ``revision``, ``scale`` (100, or 2.5 for
    Hessel et al.), ``clamp`` (none | per_sample | mean), ``prefix`` (prepended to the prompt),
    ``batch_size``, ``device``.
    """

    name = "clip_score"
    metrics = ("clip_score",)
    metric_specs = (MetricSpec("clip_score", "scale x cos(image, prompt) (CLIP)", True),)
    backbone_keys = {"CLIP": ("backbone", "revision")}

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        if self.cfg.get("clamp", "none") not in CLAMP_RULES:
            raise T2IBenchError(f"clip_score.clamp={self.cfg.get('clamp')!r}; valid: {', '.join(CLAMP_RULES)}")

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        from t2ibench.models import resolve_device

        device = resolve_device(self.cfg.get("device", "auto"))
        model, processor = load_clip(
            self.cfg.get("backbone", "tiny"), self.cfg.get("revision"), device, int(self.cfg.get("seed", 0))
        )
        scale = float(self.cfg.get("scale", 100.0))
        prefix = self.cfg.get("prefix", "") or ""
        batch = max(1, int(self.cfg.get("batch_size", 32)))
        rows: list[dict[str, Any]] = []
        for start in range(0, len(records), batch):
            part = records[start : start + batch]
            images = [store.load_image(r) for r in part]
            cosines = clip_cosines(model, processor, images, [prefix + r["prompt"]["text"] for r in part], device)
            for cos in cosines:
                value = scale * cos
                if self.cfg.get("clamp") == "per_sample":
                    value = max(value, 0.0)
                rows.append({"clip_cos": cos, "clip_score": value})
        return rows

    def aggregate(self, frame: Any) -> list[Cell]:
        cell = mean_cell("clip_score", frame["clip_score"].tolist() if len(frame) else [])
        if self.cfg.get("clamp") == "mean":
            clamp = lambda v: None if v is None else max(v, 0.0)  # noqa: E731
            cell = Cell(cell.metric, max(cell.value, 0.0), clamp(cell.ci_low), clamp(cell.ci_high), cell.n)
        return [cell]
