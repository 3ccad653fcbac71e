"""CLIP score rows and cells, shared by the CLIP-score and WinoAlign evaluators (see ``clip_score.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from t2ibench.backbones import clip
from t2ibench.errors import T2IBenchError
from t2ibench.run_store import RunStore
from t2ibench.stats import Cell, mean_cell

CLAMP_RULES = ("none", "per_sample", "mean")


def check_clamp(cfg: Any, name: str) -> None:
    if cfg.clamp not in CLAMP_RULES:
        raise T2IBenchError(f"{name}.clamp={cfg.clamp!r}; valid: {', '.join(CLAMP_RULES)}")


def clip_score_rows(cfg: Any, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    """``clip_cos`` (the raw cosine) and ``clip_score`` (scale x cosine, clamped at 0 with ``clamp: per_sample``) of
    each record's image with its prompt (``prefix`` + text)."""
    from t2ibench.models import resolve_device

    device = resolve_device(cfg.device)
    model, processor = clip.load(cfg.backbone, cfg.revision, device, cfg.seed)
    scale = cfg.scale
    prefix = cfg.prefix or ""
    batch = max(1, cfg.batch_size)
    rows: list[dict[str, float]] = []
    for start in range(0, len(records), batch):
        part = records[start : start + batch]
        images = [store.load_image(r) for r in part]
        for cos in clip.cosines(model, processor, images, [prefix + r["prompt"]["text"] for r in part], device):
            value = scale * cos
            if cfg.clamp == "per_sample":
                value = max(value, 0.0)
            rows.append({"clip_cos": cos, "clip_score": value})
    return rows


def clip_score_cell(metric: str, values: Sequence[float], clamp: str | None) -> Cell:
    """The mean and its 95% t-interval; with ``clamp: mean`` the mean and its bounds clamped at 0 (torchmetrics)."""
    cell = mean_cell(metric, list(values))
    if clamp == "mean":
        bound = lambda v: None if v is None else max(v, 0.0)  # noqa: E731
        cell = Cell(cell.metric, max(cell.value, 0.0), bound(cell.ci_low), bound(cell.ci_high), cell.n)
    return cell
