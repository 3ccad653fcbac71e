"""The method interface (:class:`Method`) and the pipeline helpers adapters share.

* :class:`Method`: ``generate(pipe, prompts, seeds) -> images``, an optional ``prepare(pipe, prompts, cache)`` for
  methods that train, ``select_items`` for methods defined on some prompts only, ``required_weights`` (what
  ``t2ibench-fetch`` downloads for it) and ``effective_generation`` (the generation config the pipeline is really
  called with, recorded with every image).
* :func:`apply_scheduler` (``generation.scheduler``) and :func:`padded_ids` (prompt token ids as the SD pipelines
  pad them). Seeds and batches are :mod:`t2ibench.seeding`'s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from t2ibench.api.config import as_dict, keys_with, option, typed
from t2ibench.api.requirements import Requirements
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt
from t2ibench.seeding import Item  # (prompt, key, noise): a named tuple

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from PIL.Image import Image

    from t2ibench.run_store import RunStore
    from t2ibench.seeding import ImageSeed
    from t2ibench.trained_weights import TrainedWeightsCache

# Keys a prompt's ``metadata.generation_overrides`` may set (I2P's per-row guidance with use_guidance_column).
OVERRIDABLE = ("guidance_scale", "num_inference_steps")

log = logging.getLogger(__name__)


def padded_ids(tokenizer: Any, texts: str | Sequence[str]) -> Any:
    """Token ids padded to the tokenizer's maximum length (77 for CLIP), as the SD pipelines encode prompts."""
    return tokenizer(
        texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def apply_scheduler(pipe: DiffusionPipeline, scheduler: str | None) -> None:
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


@dataclass
class MethodConfig:
    """Keys every method config has; each method's schema (``config_schema``) extends it."""

    name: str = "method"  # the registered name (the Method class)
    label: str | None = option(None)  # the row label in tables and the store (default: the name), e.g. sepen_large


class Method:
    """Base class of method adapters.

    Args:
        cfg: the method config (``conf/method/<name>.yaml`` after overrides).
        generation: the resolved generation config: ``scheduler`` (class name or None), ``num_inference_steps``,
            ``guidance_scale``, ``height``, ``width``, ``negative_prompt``.

    Subclasses set ``name`` and ``supported_pipelines`` (diffusers pipeline class names; empty = any) and
    implement :meth:`generate`. Methods that train override :meth:`prepare` and store their weights with
    :class:`t2ibench.trained_weights.TrainedWeightsCache`. A method whose sampler departs from the generation config
    (its own guidance scale or convention) says so in :meth:`sampling_generation`; it then samples every prompt with
    :meth:`effective_generation`, which is what the runner records with each image and hashes into the run store key.
    """

    name: ClassVar[str] = ""
    config_schema: ClassVar[type] = MethodConfig  # the method's options and their official defaults
    supported_pipelines: ClassVar[tuple[str, ...]] = ()
    needs_pipeline: ClassVar[bool] = True  # False: no model is loaded (images made elsewhere)
    # (prompt id, store key) of items the run asked for that select_items had to leave out for want of an image
    # (method=external with allow_missing): recorded with the cell, which is then partial
    absent: Sequence[tuple[str, int]] = ()

    def __init__(self, cfg: Mapping[str, Any] | Any, generation: Mapping[str, Any]):
        # the schema's instance: every option at its type, a partial config completed with the official defaults
        self.cfg = typed(self.config_schema, cfg, "method")
        self.generation = dict(generation)

    def options(self) -> dict[str, Any]:
        """Every option as plain values (what the run store key and the records hold)."""
        return as_dict(self.cfg)

    def training_config(self) -> dict[str, Any]:
        """The options that key the method's trained weights (the schema's ``training=True`` fields)."""
        options = self.options()
        return {key: options[key] for key in keys_with(self.config_schema, "training")}

    def check_pipeline(self, pipe: DiffusionPipeline) -> None:
        """Refuse a pipeline architecture the method does not support, naming the supported ones."""
        kind = type(pipe).__name__
        if self.supported_pipelines and kind not in self.supported_pipelines:
            raise T2IBenchError(
                f"method '{self.name}' does not support {kind}; supported pipelines: {', '.join(self.supported_pipelines)}"
            )

    # -- what the core needs to know ----------------------------------------------------------------
    def required_weights(self) -> Requirements:
        """Hub weights this method loads beyond the model (``t2ibench-fetch``), and notes on other downloads."""
        return Requirements()

    def sampling_generation(self, generation: dict[str, Any]) -> dict[str, Any]:
        """The method's own sampling convention applied to a generation config (default: none)."""
        return generation

    def effective_generation(self, prompt: Prompt | None = None) -> dict[str, Any] | None:
        """The generation config the pipeline is called with for ``prompt`` (None: the cell's, without per-prompt
        overrides): the resolved generation config, the prompt's ``metadata.generation_overrides``, then the
        method's :meth:`sampling_generation`. None for methods that sample nothing (``needs_pipeline`` false)."""
        if not self.needs_pipeline:
            return None
        generation = dict(self.generation)
        overrides = dict((prompt.metadata.get("generation_overrides") or {}) if prompt is not None else {})
        unknown = sorted(set(overrides) - set(OVERRIDABLE))
        if unknown:
            raise T2IBenchError(
                f"prompt {prompt.id}: generation_overrides {', '.join(unknown)} not supported; valid: {', '.join(OVERRIDABLE)}"
            )
        generation.update(overrides)
        return self.sampling_generation(generation)

    def by_generation(
        self,
        prompts: Sequence[Prompt],
        seeds: Sequence[int | ImageSeed],
        sample: Callable[[list[Prompt], list[int | ImageSeed], dict[str, Any]], list[Image]],
    ) -> list[Image]:
        """``sample(prompts, seeds, generation)`` for each group of prompts that share one :meth:`effective_generation`
        (sub-batches split by a rule that depends only on the batch, so re-runs stay identical); images come back in
        the order of ``prompts``."""
        groups: dict[str, list[int]] = {}
        configs: dict[str, dict[str, Any]] = {}
        for i, prompt in enumerate(prompts):
            generation = self.effective_generation(prompt) or {}
            key = json.dumps(generation, sort_keys=True, default=str)
            configs[key] = generation
            groups.setdefault(key, []).append(i)
        images: list[Any] = [None] * len(prompts)
        for key, members in groups.items():
            out = sample([prompts[i] for i in members], [seeds[i] for i in members], configs[key])
            for i, image in zip(members, out, strict=True):
                images[i] = image
        return images

    # -- the cell's images -----------------------------------------------------------------------------
    def select_items(self, items: list[Item], store: RunStore | None) -> list[Item]:
        """The (prompt, store key, noise seed) items this method makes, from the run's (default: all of them)."""
        return items

    def items_with_metadata(self, items: list[Item], key: str, needs: str) -> list[Item]:
        """The items whose prompt has ``metadata[key]``, for methods defined only on such prompts (``needs`` says
        which). The others are skipped with one warning (the cell then holds fewer images); none left is an error."""
        kept = [item for item in items if item.prompt.metadata.get(key)]
        skipped = sorted({item.prompt.id for item in items if not item.prompt.metadata.get(key)})
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

    def prepare(self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], cache: TrainedWeightsCache) -> None:
        """Train or load what the method needs before generating (default: nothing)."""

    def generate(
        self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]
    ) -> list[Image]:
        """One PIL image per (prompts[i], seeds[i]) pair."""
        raise NotImplementedError
