"""Seeds and batches: which noise each image starts from, and how a cell's images are cut into batches.

* :func:`make_items`: the (prompt, store key, noise seed) items of a cell, in the fixed order (benchmark order,
  images inner). Seeds come from ``run.seeds`` (``seed_source: config``, one image per seed) or from each prompt's
  ``metadata.dataset_seed`` (``dataset``: ``images_per_prompt`` images as one seed stream); :func:`resolve_seeding`.
* :func:`make_batches`: the fixed batching rule. The items are cut into consecutive chunks of ``batch_size``. The
  rule depends only on that list and the batch size, so a re-run or a resumed run rebuilds the same batches and
  hence the same bytes.
* :func:`seeded_generators`: one CPU ``torch.Generator`` per image, seeded with the image's seed.
  diffusers draws the initial latent of each image from its own generator, so an image does not depend
  on the batch it is in (batched kernels can still round differently at float precision).
* :class:`ImageSeed` and :func:`initial_latents`: a seed *stream*, for protocols that draw K images from one
  generator (I2P: 10 images per prompt from the row's ``sd_seed``). Image k of the stream has the initial
  latent ``randn((K, C, h, w), generator=CPU generator seeded with seed)[k]``, which is what diffusers gives
  with ``num_images_per_prompt=K`` and one CPU generator; it is computed per image, so it too is
  independent of the batch. A plain int seed is the stream of length 1 (identical to the generator path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from t2ibench.errors import T2IBenchError

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from torch import Tensor


def make_batches(items: Sequence[Any], batch_size: int) -> list[list[Any]]:
    """Consecutive chunks of ``batch_size`` items (the last may be shorter; the plan checks the size)."""
    size = int(batch_size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def seeded_generators(seeds: Sequence[int]) -> list[Any]:
    """One CPU generator per image (CPU so that GPU and CPU runs start from the same noise)."""
    import torch

    return [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]


class ImageSeed(NamedTuple):
    """Image ``index`` of the ``count`` images drawn from one CPU generator seeded with ``seed``."""

    seed: int
    index: int = 0
    count: int = 1


def as_image_seed(seed: int | ImageSeed) -> ImageSeed:
    """An int seed is the stream of length 1."""
    return seed if isinstance(seed, ImageSeed) else ImageSeed(int(seed))


def latent_shape(pipe: DiffusionPipeline, height: int | None, width: int | None) -> tuple[int, int, int]:
    """(channels, height / f, width / f) of an SD-style (unpacked) latent for ``pipe``."""
    if type(pipe).__name__.startswith(("Flux", "AuraFlow")):
        raise T2IBenchError(
            f"seed streams (images_per_prompt > 1 from one dataset seed) are not supported for {type(pipe).__name__}"
        )
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    factor = int(pipe.vae_scale_factor)
    default = int(getattr(pipe, "default_sample_size", None) or denoiser.config.sample_size) * factor
    return (int(denoiser.config.in_channels), int(height or default) // factor, int(width or default) // factor)


def initial_latents(seeds: Sequence[int | ImageSeed], shape: Sequence[int]) -> Tensor:
    """Unscaled initial latents (B, *shape) on the CPU in float32, one per seed (see the module docstring)."""
    import torch

    streams: dict[tuple[int, int], Any] = {}
    out = []
    for spec in map(as_image_seed, seeds):
        key = (spec.seed, spec.count)
        if key not in streams:
            streams[key] = torch.randn(
                (spec.count, *shape), generator=torch.Generator(device="cpu").manual_seed(spec.seed)
            )
        out.append(streams[key][spec.index])
    return torch.stack(out)


def positive_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise T2IBenchError(f"{name} must be an integer, got {value!r}") from None
    if number < 1 or str(value).strip() != str(number):
        raise T2IBenchError(f"{name} must be a positive integer, got {value!r}")
    return number


SEED_SOURCES = ("auto", "config", "dataset")


def resolve_seeding(run_cfg: Mapping[str, Any], seeding: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where image seeds come from: ``config`` (``run.seeds``, one image per seed) or ``dataset`` (each prompt's
    ``metadata.dataset_seed``, ``images_per_prompt`` images as one seed stream). ``run.seed_source=auto``
    takes the benchmark's ``seeding`` (e.g. I2P's official 10 images from the row's seed), else ``config``."""
    source = run_cfg.get("seed_source", "auto") or "auto"
    if source not in SEED_SOURCES:
        raise T2IBenchError(f"run.seed_source={source!r}; valid: {', '.join(SEED_SOURCES)}")
    seeding = dict(seeding or {})
    if source == "auto":
        source = seeding.get("source", "config")
    if source == "config":
        return {"source": "config"}
    count = run_cfg.get("images_per_prompt") or seeding.get("images_per_prompt") or 1
    return {"source": "dataset", "images_per_prompt": positive_int(count, "run.images_per_prompt")}


class Item(NamedTuple):
    """One image of a cell: its prompt, its store key (the seed, or the image's index with dataset seeds) and the
    noise it is sampled from (an int seed, or an :class:`ImageSeed`)."""

    prompt: Any
    key: int
    noise: Any


def make_items(prompts: list[Any], seeds: list[int], seeding: Mapping[str, Any]) -> list[Item]:
    """One :class:`Item` per image, in the fixed order: prompts in benchmark order, images inner."""
    if seeding["source"] == "config":
        return [Item(p, s, s) for p in prompts for s in seeds]
    count = seeding["images_per_prompt"]
    items = []
    for prompt in prompts:
        if "dataset_seed" not in prompt.metadata:
            raise T2IBenchError(
                f"prompt {prompt.id} has no metadata.dataset_seed; use run.seed_source=config with run.seeds"
            )
        base = int(prompt.metadata["dataset_seed"])
        items += [Item(prompt, k, ImageSeed(base, k, count)) for k in range(count)]
    return items


SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # torch.Generator.manual_seed's range


def parse_seeds(value: Any) -> list[int]:
    values = value if isinstance(value, list | tuple) else [value]
    try:
        seeds = [int(s) for s in values]
    except (TypeError, ValueError):
        raise T2IBenchError(f"run.seeds must be a list of integers, got {value!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise T2IBenchError(f"run.seeds must be a non-empty list of distinct integers, got {value!r}")
    outside = [s for s in seeds if not SEED_MIN <= s <= SEED_MAX]
    if outside:
        raise T2IBenchError(
            f"run.seeds: {outside[0]} is outside the range a torch generator takes ({SEED_MIN} to {SEED_MAX})"
        )
    return seeds
