"""Loading the text-to-image pipeline a run uses, once per process.

``model`` config (``conf/model/*.yaml``):
    name: label used in the run store and tables.
    source: ``tiny`` (built in-process, see :mod:`t2ibench.tiny_models`), ``hub`` (``id`` at a pinned
        ``revision``) or ``local`` (``path``, a folder written by ``save_pretrained``).
    id, revision, path, variant: where the weights are. ``revision`` should be a commit hash.
    pipeline: ``auto`` (``AutoPipelineForText2Image``, which covers SD-1.x, SD-2.x, SDXL, SD3/3.5, AuraFlow,
        FLUX) or a diffusers pipeline class name.
    dtype: ``auto`` (float16 on CUDA, float32 on CPU), ``float32``, ``float16`` or ``bfloat16``.
    device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
    generation_defaults: the model card's sampler settings (scheduler, steps, guidance, size), used for
        every ``generation.*`` value left null.
    tiny only: seed, tokenizer (``tiny`` or ``clip-bpe``), tokenizer_bpe_path, attn_sharpen.

Weights are never loaded with ``trust_remote_code`` and always from safetensors. When they are not
available offline, the error says how to point ``model.path`` at a local copy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2ibench.api.config import keys_with
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import stable_hash
from t2ibench.schema import ModelConfig

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger(__name__)

_CACHE: dict[str, Any] = {}
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Keys of the model config that do not change the weights or numerics (left out of cache and store keys), and the
# tiny model's own keys (left out of other models' identity): both from the schema, t2ibench.schema.ModelConfig.
RUNTIME_KEYS = keys_with(ModelConfig, "runtime")
TINY_ONLY_KEYS = keys_with(ModelConfig, "tiny_only")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> float16 on CUDA, float32 elsewhere; names map to torch dtypes."""
    import torch

    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    except KeyError:
        raise T2IBenchError(f"unknown dtype '{dtype}'; valid dtypes: auto, bfloat16, float16, float32") from None


def model_identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the model config that determines the weights and numerics (no device)."""
    identity = {k: v for k, v in dict(cfg).items() if k not in RUNTIME_KEYS}
    if identity.get("source") != "tiny":
        identity = {k: v for k, v in identity.items() if k not in TINY_ONLY_KEYS}
    if identity.get("source") == "tiny":
        from t2ibench.tiny_models import TINY_MODEL_VERSION

        identity["tiny_model_version"] = TINY_MODEL_VERSION
    return identity


def model_record(identity: Mapping[str, Any]) -> dict[str, Any]:
    """What produced the images, for the records and tables. For the tiny model it names the tiny random pipeline that
    really ran and, under ``stands_in_for``, the model it stands in for (``+tiny=all`` keeps the real config's id)."""
    if identity.get("source") == "tiny":
        record = {
            "name": identity.get("name"),
            "source": "tiny",
            "pipeline": tiny_description(identity),
            "dtype": identity.get("dtype"),
        }
        real = identity.get("id") or identity.get("path")
        if real and identity.get("name") != "tiny":
            record["stands_in_for"] = f"{real}@{identity.get('revision') or 'main'}" if identity.get("id") else real
        return {k: v for k, v in record.items() if v is not None}
    return {
        k: identity.get(k) for k in ("name", "source", "id", "revision", "path", "dtype") if identity.get(k) is not None
    }


def tiny_description(identity: Mapping[str, Any]) -> str:
    """One line naming the tiny random pipeline of a tiny model config."""
    from t2ibench.tiny_models import TINY_MODEL_VERSION

    return (
        f"tiny random SD-1.x pipeline (t2ibench.tiny_models v{identity.get('tiny_model_version', TINY_MODEL_VERSION)}, "
        f"seed {identity.get('seed', 0)}, tokenizer {identity.get('tokenizer', 'tiny')})"
    )


def pipeline_identity(pipe: DiffusionPipeline) -> dict[str, Any]:
    """What identifies a pipeline's weights in cache keys: the identity recorded by :func:`load_pipeline`, or, for a
    pipeline built elsewhere, its class and UNet config (never the class alone: two models would share keys)."""
    recorded = getattr(pipe, "_t2ibench_identity", None)
    if recorded:
        return recorded
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    return {"class": type(pipe).__name__, "denoiser": dict(denoiser.config) if denoiser is not None else None}


def _dtype_argument() -> str:
    """The name of ``from_pretrained``'s dtype argument: ``dtype`` where diffusers has it (``torch_dtype`` warns of
    its removal there), ``torch_dtype`` in older releases."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401  (the release that added ``dtype``)
    except ImportError:
        return "torch_dtype"
    return "dtype"


def load_pipeline(cfg: Mapping[str, Any]):
    """The diffusers pipeline for ``cfg``, built once per process and cached by its identity."""
    cfg = dict(cfg)
    key = _cache_key(cfg)
    if key not in _CACHE:
        register_pipeline(cfg, _build(cfg, resolve_device(cfg.get("device", "auto"))))
    return _CACHE[key]


def _cache_key(cfg: Mapping[str, Any]) -> str:
    """The process cache's key of a model config: its identity and the device it resolves to."""
    return stable_hash({**model_identity(cfg), "device": resolve_device(cfg.get("device", "auto"))}, 16)


def register_pipeline(cfg: Mapping[str, Any], pipe: DiffusionPipeline) -> DiffusionPipeline:
    """Cache ``pipe`` (built elsewhere, e.g. random weights of a full-size shape in a benchmark) as the pipeline of the
    model config ``cfg``: runs whose ``model`` is ``cfg`` then use it instead of building one."""
    cfg = dict(cfg)
    pipe._t2ibench_original_scheduler = pipe.scheduler  # restored per run: a cell may swap the sampler
    pipe._t2ibench_identity = model_identity(cfg)  # keys trained-weight caches
    _CACHE[_cache_key(cfg)] = pipe
    return pipe


def clear_cache() -> None:
    """Drop the loaded pipelines (tests, memory)."""
    _CACHE.clear()


def _build(cfg: dict[str, Any], device: str):
    source = cfg.get("source", "hub")
    dtype = resolve_dtype(cfg.get("dtype", "auto"), device)
    if source == "tiny":
        import torch

        from t2ibench.tiny_models import build_tiny_sd_pipeline, tiny_tokenizer

        tokenizer = tiny_tokenizer(cfg.get("tokenizer", "tiny"), cfg.get("tokenizer_bpe_path"))
        pipe = build_tiny_sd_pipeline(int(cfg.get("seed", 0)), tokenizer, float(cfg.get("attn_sharpen", 4.0)))
        pipe = pipe.to(device)
        return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)
    if source not in ("hub", "local"):
        raise T2IBenchError(f"unknown model.source '{source}'; valid sources: hub, local, tiny")
    where = cfg.get("path") if source == "local" else cfg.get("id")
    if not where:
        raise T2IBenchError(
            f"model '{cfg.get('name')}': source={source} needs model.{'path' if source == 'local' else 'id'}"
        )
    pipeline_class = _pipeline_class(cfg.get("pipeline", "auto"))
    dtype_key = _dtype_argument()
    kwargs: dict[str, Any] = {dtype_key: dtype, "use_safetensors": True}
    if cfg.get("variant"):
        kwargs["variant"] = cfg["variant"]
    resolved = None
    try:
        if source == "hub":
            from diffusers import DiffusionPipeline

            revision = cfg.get("revision") or "main"
            if not _COMMIT_RE.match(revision):
                log.warning(
                    "model '%s': revision %r is not a commit hash; pin one for reproducible runs",
                    cfg.get("name"),
                    revision,
                )
            where = DiffusionPipeline.download(
                where, revision=revision, **{k: v for k, v in kwargs.items() if k != dtype_key}
            )
            resolved = Path(where).name  # the hub cache names snapshot folders by commit hash
        pipe = pipeline_class.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as err:
        raise T2IBenchError(_missing_weights_message(cfg, source, cfg.get("path") or cfg.get("id"), err)) from None
    pipe._t2ibench_resolved_revision = resolved if resolved and _COMMIT_RE.match(resolved) else None
    if getattr(pipe, "safety_checker", None) is not None:
        # Benchmarks score raw model outputs (the I2P protocol evaluates unfiltered images).
        pipe.safety_checker = None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _pipeline_class(name: str):
    import diffusers

    if name == "auto":
        return diffusers.AutoPipelineForText2Image
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise T2IBenchError(f"model.pipeline '{name}' is not a diffusers pipeline class")
    return cls


def _missing_weights_message(cfg: Mapping[str, Any], source: str, where: str, err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if source == "local":
        return f"cannot load model '{cfg.get('name')}' from model.path={where}: {first}"
    revision = cfg.get("revision") or "main"
    return (
        f"weights for model '{cfg.get('name')}' ({where}@{revision}) are not available offline ({first}). "
        f"On a machine with internet run `huggingface-cli download {where} --revision {revision} --local-dir DIR`, "
        "copy DIR here and run with model.source=local model.path=DIR (or fill the Hugging Face cache and unset HF_HUB_OFFLINE)"
    )
