"""Plain sampling with the loaded pipeline, shared by the SD baseline and the methods that change the model
(SepEn's keys, RespoDiff's mid-block hook, ReBind's LoRA) and then sample as the pipeline does.

:func:`plain_sample` calls the diffusers pipeline with the scheduler, steps, guidance, size and negative prompt of
one generation config. Each (prompt, seed) image has its own CPU generator, so its initial latent does not depend on
the batch; seed streams (:class:`t2ibench.seeding.ImageSeed`, I2P's 10 images from one seed) pass explicit latents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from t2ibench.api import apply_scheduler
from t2ibench.prompt import Prompt
from t2ibench.seeding import ImageSeed, as_image_seed, initial_latents, latent_shape, seeded_generators

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def baseline_generate(
    method: Any, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]
) -> list[Any]:
    """The SD baseline's ``generate``: :func:`plain_sample` per generation config (prompts with
    ``generation_overrides`` in their own sub-batches, :meth:`t2ibench.api.Method.by_generation`)."""
    return method.by_generation(prompts, seeds, lambda ps, ss, gen: plain_sample(pipe, ps, ss, gen))


def plain_sample(
    pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed], gen: Mapping[str, Any]
) -> list[Any]:
    """The pipeline's own sampler on ``prompts`` with the generation config ``gen`` (see the module docstring)."""
    import torch

    apply_scheduler(pipe, gen.get("scheduler"))
    specs = [as_image_seed(s) for s in seeds]
    kwargs: dict[str, Any] = {
        "prompt": [p.text for p in prompts],
        "num_inference_steps": int(gen["num_inference_steps"]),
        "guidance_scale": float(gen["guidance_scale"]),
        "output_type": "pil",
    }
    if gen.get("height"):
        kwargs["height"] = int(gen["height"])
    if gen.get("width"):
        kwargs["width"] = int(gen["width"])
    if all(s.count == 1 for s in specs):
        kwargs["generator"] = seeded_generators([s.seed for s in specs])
    else:
        latents = initial_latents(specs, latent_shape(pipe, gen.get("height"), gen.get("width")))
        kwargs["latents"] = latents.to(device=pipe.device, dtype=pipe.dtype)
    if gen.get("negative_prompt") is not None and float(gen["guidance_scale"]) > 1:
        kwargs["negative_prompt"] = [gen["negative_prompt"]] * len(prompts)
    with torch.inference_mode():
        return list(pipe(**kwargs).images)
