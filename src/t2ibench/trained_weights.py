"""The cache of trained method weights (SepEn, Decorrelation, RespoDiff, ReBind train before generating).

Weights are stored as safetensors under ``<cache_dir>/<method>/<key>/weights.safetensors`` with a
``meta.json`` beside them. The key is a hash of everything that changes the weights: the base model and
its revision, the method config, and the prompts or concepts trained on (:func:`training_key`). A sweep
therefore trains once; a second run finds the cache. Writes are atomic, so a killed training never
leaves a half-written entry. ``meta.json`` (written last) records the weights' sha256; a file that does not
match it, cannot be read or holds other tensors raises :class:`CorruptCacheError`, and the methods retrain.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from t2ibench.atomic import atomic_write_bytes, atomic_write_json
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import file_sha256, stable_hash

log = logging.getLogger(__name__)


class CorruptCacheError(T2IBenchError):
    """A cache entry that cannot be trusted (unreadable, wrong hash, wrong tensors): retrain, never use it."""


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
        folder = self.entry(method, key)
        return (folder / "weights.safetensors").is_file() and (folder / "meta.json").is_file()

    def save(
        self, method: str, key: str, tensors: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> Path:
        """Store ``tensors`` (name -> torch.Tensor) and JSON ``metadata``; returns the entry folder."""
        import hashlib

        from safetensors.torch import save

        folder = self.entry(method, key)
        contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        data = save(contiguous, metadata={"method": method, "key": key})
        # The weights first, then the metadata with their hash: an entry without meta.json is incomplete.
        atomic_write_bytes(folder / "weights.safetensors", data)
        meta = {
            "method": method,
            "key": key,
            "weights_sha256": hashlib.sha256(data).hexdigest(),
            **dict(metadata or {}),
        }
        atomic_write_json(folder / "meta.json", meta)
        return folder

    def load(
        self, method: str, key: str, expected: Mapping[str, tuple[int, ...]] | None = None
    ) -> dict[str, Any] | None:
        """The stored tensors, or None when there is no complete entry.

        Raises :class:`CorruptCacheError` when the file does not match the hash recorded at save time, cannot be
        read, or (with ``expected`` = name -> shape) holds other tensors than expected.
        """
        from safetensors.torch import load_file

        folder = self.entry(method, key)
        path, meta_path = folder / "weights.safetensors", folder / "meta.json"
        if not path.is_file() or not meta_path.is_file():
            return None
        try:
            recorded = json.loads(meta_path.read_text()).get("weights_sha256")
        except (OSError, ValueError) as err:
            raise CorruptCacheError(f"corrupt cache entry {folder}: unreadable meta.json ({err})") from None
        if recorded != file_sha256(path):
            raise CorruptCacheError(
                f"corrupt cache entry {folder}: weights.safetensors does not match its recorded sha256"
            )
        try:
            tensors = load_file(path)
        except Exception as err:  # safetensors raises its own error types
            raise CorruptCacheError(f"corrupt cache entry {folder}: {err}") from None
        if expected is not None:
            shapes = {name: tuple(t.shape) for name, t in tensors.items()}
            if shapes != {name: tuple(shape) for name, shape in expected.items()}:
                raise CorruptCacheError(
                    f"corrupt cache entry {folder}: its tensors do not match the model's parameters"
                )
        return tensors

    def metadata(self, method: str, key: str) -> dict[str, Any] | None:
        path = self.entry(method, key) / "meta.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def load_or_train(
        self,
        method: str,
        key: str,
        expected: Mapping[str, tuple[int, ...]] | None,
        train: Callable[[], tuple[Mapping[str, Any], Mapping[str, Any]]],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The cached (tensors, metadata) of ``key``, or ``train()``'s, saved; a corrupt entry is reported and retrained."""
        try:
            tensors = self.load(method, key, expected)
        except CorruptCacheError as err:
            log.error("%s; retraining", err)
            tensors = None
        if tensors is not None:
            log.info("%s: loaded trained weights %s from the cache", method, key)
            return tensors, self.metadata(method, key) or {}
        tensors, metadata = train()
        self.save(method, key, tensors, metadata)
        return dict(tensors), dict(metadata)
