"""The VQAScore pair cache and cached scoring of run-store images, shared by the VQAScore and role-bias evaluators."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from t2ibench.atomic import append_line
from t2ibench.backbones.vqa import VQAConfig, backend_key, score_native, score_t2v_metrics
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import stable_hash
from t2ibench.run_store import RunStore


class PairCache:
    """VQAScore of (image sha256, text) pairs under one backend key, in ``<store>/scores/vqa_pairs.jsonl``."""

    def __init__(self, store: RunStore, cfg: VQAConfig):
        self.path = store.scores_dir / "vqa_pairs.jsonl"
        self.key = stable_hash(backend_key(cfg))
        self.values: dict[tuple[str, str], float] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if row.get("key") == self.key:
                    self.values[(row["image_sha256"], row["text"])] = float(row["score"])

    def get(self, sha: str, text: str) -> float | None:
        return self.values.get((sha, text))

    def put(self, sha: str, text: str, score: float) -> None:
        self.values[(sha, text)] = score
        append_line(self.path, json.dumps({"key": self.key, "image_sha256": sha, "text": text, "score": score}))


def vqa_scores(
    cfg: VQAConfig, store: RunStore, records: Sequence[Mapping[str, Any]], texts: Sequence[str]
) -> list[float]:
    """VQAScore of each (records[i]'s image, texts[i]), from the pair cache where possible."""
    cache = PairCache(store, cfg)
    todo = [i for i, (r, t) in enumerate(zip(records, texts, strict=True)) if cache.get(r["image_sha256"], t) is None]
    if todo:
        if cfg.backend == "t2v_metrics":
            values = score_t2v_metrics(
                cfg, [str(store.path / records[i]["image"]) for i in todo], [texts[i] for i in todo]
            )
        elif cfg.backend == "transformers":
            values = score_native(cfg, [store.load_image(records[i]) for i in todo], [texts[i] for i in todo])
        else:
            raise T2IBenchError(f"vqascore.backend={cfg.backend!r}; valid: transformers, t2v_metrics")
        for i, value in zip(todo, values, strict=True):
            cache.put(records[i]["image_sha256"], texts[i], value)
    return [float(cache.get(r["image_sha256"], t)) for r, t in zip(records, texts, strict=True)]
