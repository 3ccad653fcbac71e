"""CLIP backbones (``transformers.CLIPModel`` + ``CLIPProcessor``), shared by CLIP score, WinoAlign, DevRat and Q16.

:func:`load` takes a hub id (at a revision), a local folder, or ``tiny`` (a seeded random CLIP of the real
architecture, :func:`t2ibench.tiny_models.build_tiny_clip`), built once per process; :func:`cosines` is the cosine of
image and text embeddings with the backbone's own preprocessing (PIL images, never float tensors).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from t2ibench.backbones import cached
from t2ibench.errors import T2IBenchError

log = logging.getLogger(__name__)


def load(
    backbone: str, revision: str | None = None, device: str = "cpu", seed: int = 0, projection_dim: int = 16
) -> tuple[Any, Any]:
    """(CLIPModel, CLIPProcessor) for a hub id or local folder, or ``tiny`` (with ``projection_dim``); cached per process."""
    key = (backbone, revision, device, seed, projection_dim if backbone == "tiny" else None)

    def build() -> tuple[Any, Any]:
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
        return model.to(device).eval(), processor

    return cached("clip", key, build)


def embedding(output: Any) -> Any:
    """transformers 5 returns a model output from ``get_*_features``; 4.x returns the tensor."""
    return output if hasattr(output, "norm") else output.pooler_output


def cosines(
    model: Any, processor: Any, images: Sequence[Any], texts: Sequence[str], device: str = "cpu"
) -> list[float]:
    """Cosine similarity of CLIP embeddings of ``images[i]`` (PIL) and ``texts[i]``."""
    import torch

    tokenizer = processor.tokenizer
    limit = int(getattr(model.config.text_config, "max_position_embeddings", 77))
    cut = [t for t in texts if len(tokenizer(t).input_ids) > limit]
    if cut:
        log.warning("CLIP: %d prompt(s) longer than %d tokens were truncated, e.g. %r", len(cut), limit, cut[0][:80])
    text_inputs = tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
    pixel_values = processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        image_emb = embedding(model.get_image_features(pixel_values=pixel_values.to(device)))
        text_emb = embedding(
            model.get_text_features(
                input_ids=text_inputs["input_ids"].to(device), attention_mask=text_inputs["attention_mask"].to(device)
            )
        )
    image_emb = image_emb / image_emb.norm(p=2, dim=-1, keepdim=True)
    text_emb = text_emb / text_emb.norm(p=2, dim=-1, keepdim=True)
    return (image_emb * text_emb).sum(dim=-1).float().cpu().tolist()
