"""The schemas of the run's own sections: ``model``, ``generation``, ``run`` and ``results`` (typed, with their defaults
in one place; see :mod:`t2ibench.api.config`). The plugins' schemas live beside their code."""

from __future__ import annotations

from dataclasses import dataclass, fields

from t2ibench.api.config import option
from t2ibench.stand_ins import StandIns


@dataclass
class GenerationConfig:
    """Sampler settings; null takes the model's ``generation_defaults`` (its model card's recommended values)."""

    scheduler: str | None = None  # a diffusers scheduler class name, e.g. DDIMScheduler (from the model's config)
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    negative_prompt: str | None = None


GENERATION_KEYS = tuple(f.name for f in fields(GenerationConfig))


@dataclass
class RunConfig:
    """Seeds, batching and where images and trained weights are kept."""

    seeds: list[int] = option(factory=lambda: [0])  # one image per (prompt, seed)
    seed_source: str = "auto"  # config (run.seeds) | dataset (each prompt's dataset_seed) | auto (the benchmark's)
    images_per_prompt: int | None = None  # with seed_source dataset: images per prompt from the prompt's seed
    batch_size: int = 4  # images per forward pass; the fixed batching rule makes re-runs rebuild the same batches
    root: str = "outputs/runs"  # the run store (images, samples.jsonl, scores/)
    cache_dir: str | None = None  # trained method weights; null = $T2IBENCH_CACHE or ~/.cache/t2ibench, + /trained
    progress: bool = True
    # a generated image is encoded as JPEG at this quality and decoded again before it is stored and scored: what an
    # official scorer reading the JPEGs its own script saved sees (GenAI-Bench's generate.py: PIL's default, 75);
    # null = none (the image as sampled). Part of the run store's key when set.
    jpeg_quality: int | None = None


@dataclass
class ResultsConfig:
    """Where tables go, and the papers' numbers they are compared with."""

    root: str = "results"
    published: str | None = None  # the papers' numbers (results/published/<experiment>.csv); null = the checkout's


@dataclass
class ModelConfig:
    """The pipeline a run uses (``conf/model/<name>.yaml`` sets these; see :mod:`t2ibench.models`)."""

    name: str = "model"  # the label in the run store and tables
    source: str = "hub"  # hub (id at revision) | local (path) | tiny (built in-process) | external (no model)
    id: str | None = None
    revision: str | None = "main"  # pin a commit hash for reproducible runs; the resolved commit is recorded
    path: str | None = None  # a save_pretrained folder (source local)
    variant: str | None = None
    pipeline: str = "auto"  # auto (AutoPipelineForText2Image) or a diffusers pipeline class name
    dtype: str = "auto"  # auto (float16 on CUDA, float32 on CPU) | float32 | float16 | bfloat16
    device: str = option("auto", runtime=True)  # auto (CUDA when available) | cpu | cuda | cuda:1 ...
    generation_defaults: GenerationConfig = option(factory=GenerationConfig, runtime=True)
    # the tiny model only (source tiny)
    seed: int = option(0, tiny_only=True)
    tokenizer: str = option("tiny", tiny_only=True)  # tiny (embedded) | clip-bpe (the real CLIP tokenizer)
    tokenizer_bpe_path: str | None = option(None, tiny_only=True)  # null = $T2IBENCH_CLIP_BPE or ../shared/clip-bpe
    attn_sharpen: float = option(4.0, tiny_only=True)  # cross-attention to_q/to_k scale, as in the parity model
    stand_ins: StandIns | None = option(None, tiny_only=True)  # what the tiny flow uses instead of downloads


def register() -> None:
    """Store the schemas of the run's sections (``conf/config.yaml`` and every model YAML start from them)."""
    from t2ibench.api.config import register as store

    for section, schema in (
        ("generation", GenerationConfig),
        ("run", RunConfig),
        ("results", ResultsConfig),
        ("model", ModelConfig),
        ("stand_ins", StandIns),
    ):
        store("core", section, schema)
