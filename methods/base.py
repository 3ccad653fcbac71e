"""The method interface and the pieces every adapter shares.

* :class:`Method`: ``generate(pipe, prompts, seeds) -> images`` and an optional
  ``prepare(pipe, prompts, cache)`` for methods that train.
* :func:`make_batches`: the fixed batching rule. The (prompt, seed) items of a cell are listed in the
  benchmark's prompt order, seeds inner, and cut into consecutive chunks of ``batch_size``. The rule
  depends only on that list and the batch size, so a re-run or a resumed run rebuilds the same batches
  and hence the same bytes.
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

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt

log = logging.getLogger(__name__)


def make_batches(items: Sequence[Any], batch_size: int) -> list[list[Any]]:
    """Consecutive chunks of ``batch_size`` items (the last may be shorter)."""
    if int(batch_size) < 1:
        raise T2IBenchError(f"run.batch_size must be >= 1, got {batch_size}")
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


def latent_shape(pipe: Any, height: int | None, width: int | None) -> tuple[int, int, int]:
    """(channels, height / f, width / f) of an SD-style (unpacked) latent for ``pipe``."""
    if type(pipe).__name__.startswith(("Flux", "AuraFlow")):
        raise T2IBenchError(
            f"seed streams (images_per_prompt > 1 from one dataset seed) are not supported for {type(pipe).__name__}"
        )
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    factor = int(pipe.vae_scale_factor)
    default = int(getattr(pipe, "default_sample_size", None) or denoiser.config.sample_size) * factor
    return (int(denoiser.config.in_channels), int(height or default) // factor, int(width or default) // factor)


def initial_latents(seeds: Sequence[int | ImageSeed], shape: Sequence[int]) -> Any:
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


def padded_ids(tokenizer: Any, texts: str | Sequence[str]) -> Any:
    """Token ids padded to the tokenizer's maximum length (77 for CLIP), as the SD pipelines encode prompts."""
    return tokenizer(
        texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def apply_scheduler(pipe: Any, scheduler: str | None) -> None:
    """Use the diffusers scheduler class ``scheduler`` (built from the model's own scheduler config),
    or restore the model's original scheduler when None."""
    import diffusers

    original = getattr(pipe, "_t2ibench_original_scheduler", pipe.scheduler)
    if not scheduler:
        pipe.scheduler = original
        return
    cls = getattr(diffusers, scheduler, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise T2IBenchError(f"generation.scheduler '{scheduler}' is not a diffusers scheduler class")
    pipe.scheduler = cls.from_config(original.config)


class Method:
    """Base class of method adapters.

    Args:
        cfg: the method config (``conf/method/<name>.yaml`` after overrides).
        generation: the resolved generation config: ``scheduler`` (class name or None), ``num_inference_steps``,
            ``guidance_scale``, ``height``, ``width``, ``negative_prompt``.

    Subclasses set ``name`` and ``supported_pipelines`` (diffusers pipeline class names; empty = any) and
    implement :meth:`generate`. Methods that train override :meth:`prepare` and store their weights with
    :class:`t2ibench.trained_weights.TrainedWeightsCache`.
    """

    name: ClassVar[str] = ""
    supported_pipelines: ClassVar[tuple[str, ...]] = ()
    needs_pipeline: ClassVar[bool] = True  # False: no model is loaded (images made elsewhere)

    def __init__(self, cfg: Mapping[str, Any], generation: Mapping[str, Any]):
        self.cfg = dict(cfg)
        self.generation = dict(generation)

    def check_pipeline(self, pipe: Any) -> None:
        """Refuse a pipeline architecture the method does not support, naming the supported ones."""
        kind = type(pipe).__name__
        if self.supported_pipelines and kind not in self.supported_pipelines:
            raise T2IBenchError(
                f"method '{self.name}' does not support {kind}; supported pipelines: {', '.join(self.supported_pipelines)}"
            )

    def select_items(self, items: list[tuple[Prompt, int, Any]], store: Any) -> list[tuple[Prompt, int, Any]]:
        """The (prompt, store key, noise seed) items this method makes, from the run's (default: all of them)."""
        return items

    def items_with_metadata(
        self, items: list[tuple[Prompt, int, Any]], key: str, needs: str
    ) -> list[tuple[Prompt, int, Any]]:
        """The items whose prompt has ``metadata[key]``, for methods defined only on such prompts (``needs`` says
        which). The others are skipped with one warning (the cell then holds fewer images); none left is an error."""
        kept = [item for item in items if item[0].metadata.get(key)]
        skipped = sorted({p.id for p, _, _ in items if not p.metadata.get(key)})
        if not kept:
            raise T2IBenchError(f"{self.name} needs {needs}; no prompt of this benchmark has metadata.{key}")
        if skipped:
            log.warning(
                "%s needs %s: %d prompt(s) without metadata.%s are skipped (%s); the cell has %d of %d images",
                self.name,
                needs,
                len(skipped),
                key,
                ", ".join(skipped[:4]) + (" ..." if len(skipped) > 4 else ""),
                len(kept),
                len(items),
            )
        return kept

    def prepare(self, pipe: Any, prompts: Sequence[Prompt], cache: Any) -> None:
        """Train or load what the method needs before generating (default: nothing)."""

    def generate(self, pipe: Any, prompts: Sequence[Prompt], seeds: Sequence[int]) -> list[Any]:
        """One PIL image per (prompts[i], seeds[i]) pair."""
        raise NotImplementedError
