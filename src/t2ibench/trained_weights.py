"""The cache of trained method weights (SepEn, Decorrelation, RespoDiff, ReBind train before generating).

Weights are stored as safetensors under ``<cache_dir>/<method>/<key>/weights.safetensors`` with a
``meta.json`` beside them. The key is a hash of everything that changes the weights: the base model and
its revision, the method config, and the prompts or concepts trained on (:func:`training_key`). A sweep
therefore trains once; a second run finds the cache. Writes are atomic, so a killed training never
leaves a half-written entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from t2ibench.atomic import atomic_write_bytes, atomic_write_json
from t2ibench.hashing import stable_hash


def default_cache_dir() -> Path:
    """``$T2IBENCH_CACHE`` or ``~/.cache/t2ibench``, plus ``trained``."""
    base = os.environ.get("T2IBENCH_CACHE") or Path.home() / ".cache" / "t2ibench"
    return Path(base) / "trained"


def training_key(model: Mapping[str, Any], method_cfg: Mapping[str, Any], trained_on: Any) -> str:
    """The cache key: a hash of the model identity, the method config and what was trained on."""
    return stable_hash({"model": dict(model), "method": dict(method_cfg), "trained_on": trained_on}, 16)


class TrainedWeightsCache:
    """Save and load trained tensors by (method, key)."""

    def __init__(self, cache_dir: str | Path | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()

    def entry(self, method: str, key: str) -> Path:
        return self.cache_dir / method / key

    def exists(self, method: str, key: str) -> bool:
        return (self.entry(method, key) / "weights.safetensors").is_file()

    def save(
        self, method: str, key: str, tensors: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> Path:
        """Store ``tensors`` (name -> torch.Tensor) and JSON ``metadata``; returns the entry folder."""
        from safetensors.torch import save

        folder = self.entry(method, key)
        contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        atomic_write_json(folder / "meta.json", {"method": method, "key": key, **dict(metadata or {})})
        atomic_write_bytes(folder / "weights.safetensors", save(contiguous, metadata={"method": method, "key": key}))
        return folder

    def load(self, method: str, key: str) -> dict[str, Any] | None:
        """The stored tensors, or None when the entry does not exist."""
        from safetensors.torch import load_file

        path = self.entry(method, key) / "weights.safetensors"
        return load_file(path) if path.is_file() else None

    def metadata(self, method: str, key: str) -> dict[str, Any] | None:
        path = self.entry(method, key) / "meta.json"
        return json.loads(path.read_text()) if path.is_file() else None
