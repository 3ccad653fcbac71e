"""The Stable Diffusion baseline: the plain diffusers text-to-image pipeline.

Paper: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022 (the
classifier-free-guided sampler of their Eq. for epsilon-prediction, as implemented by diffusers).
Official code: the diffusers pipelines themselves (``StableDiffusionPipeline`` and the other classes that
``AutoPipelineForText2Image`` loads), huggingface/diffusers, the version recorded with every image.

Works with every text-to-image pipeline diffusers loads (SD-1.x, SD-2.x, SDXL, SD3/3.5, AuraFlow, FLUX).
Each (prompt, seed) image has its own CPU generator, so its initial latent does not depend on the batch
(seed streams use explicit latents, see :mod:`t2ibench.methods.base`); scheduler, steps, guidance, size and
negative prompt come from the resolved generation config, and a prompt's ``metadata.generation_overrides``
(``guidance_scale``, ``num_inference_steps``) replace them for that prompt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from t2ibench.errors import T2IBenchError
from t2ibench.methods import METHODS
from t2ibench.methods.base import (
    ImageSeed,
    Method,
    apply_scheduler,
    as_image_seed,
    initial_latents,
    latent_shape,
    seeded_generators,
)
from t2ibench.prompt import Prompt

OVERRIDABLE = {"guidance_scale", "num_inference_steps"}


@METHODS.register("sd")
class StableDiffusionBaseline(Method):
    """Plain sampling with the loaded pipeline (see the module docstring)."""

    name = "sd"

    def generate(self, pipe: Any, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]) -> list[Any]:
        apply_scheduler(pipe, self.generation.get("scheduler"))
        images: list[Any] = [None] * len(prompts)
        # Prompts that carry generation_overrides (e.g. I2P's guidance column) are sampled in their own
        # sub-batches; the split depends only on the batch, so re-runs stay identical.
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(json.dumps(prompt.metadata.get("generation_overrides") or {}, sort_keys=True), []).append(
                i
            )
        for overrides, members in groups.items():
            unknown = sorted(set(json.loads(overrides)) - OVERRIDABLE)
            if unknown:
                raise T2IBenchError(
                    f"prompt {prompts[members[0]].id}: generation_overrides {', '.join(unknown)} not supported; valid: {', '.join(sorted(OVERRIDABLE))}"
                )
            generation = {**self.generation, **json.loads(overrides)}
            out = self._sample(pipe, [prompts[i] for i in members], [seeds[i] for i in members], generation)
            for i, image in zip(members, out, strict=True):
                images[i] = image
        return images

    def _sample(
        self, pipe: Any, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed], gen: dict[str, Any]
    ) -> list[Any]:
        import torch

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
