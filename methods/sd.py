"""The Stable Diffusion baseline: the plain diffusers text-to-image pipeline.

Paper: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022 (the
classifier-free-guided sampler of their Eq. for epsilon-prediction, as implemented by diffusers).
Official code: the diffusers pipelines themselves (``StableDiffusionPipeline`` and the other classes that
``AutoPipelineForText2Image`` loads), huggingface/diffusers, the version recorded with every image.

Works with every text-to-image pipeline diffusers loads (SD-1.x, SD-2.x, SDXL, SD3/3.5, AuraFlow, FLUX).
Each (prompt, seed) image has its own CPU generator, so its initial latent does not depend on the batch;
scheduler, steps, guidance, size and negative prompt come from the resolved generation config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from t2ibench.methods import METHODS
from t2ibench.methods.base import Method, apply_scheduler, seeded_generators

from t2ibench.prompt import Prompt


@METHODS.register("sd")
class StableDiffusionBaseline(Method):
    """Plain sampling with the loaded pipeline (see the module docstring)."""

    name = "sd"

    def generate(self, pipe: Any, prompts: Sequence[Prompt], seeds: Sequence[int]) -> list[Any]:
        import torch

        gen = self.generation
        apply_scheduler(pipe, gen.get("scheduler"))
        kwargs: dict[str, Any] = {
            "prompt": [p.text for p in prompts],
            "num_inference_steps": int(gen["num_inference_steps"]),
            "guidance_scale": float(gen["guidance_scale"]),
            "generator": seeded_generators(seeds),
            "output_type": "pil",
        }
        if gen.get("height"):
            kwargs["height"] = int(gen["height"])
        if gen.get("width"):
            kwargs["width"] = int(gen["width"])
        if gen.get("negative_prompt") is not None and float(gen["guidance_scale"]) > 1:
            kwargs["negative_prompt"] = [gen["negative_prompt"]] * len(prompts)
        with torch.inference_mode():
            return list(pipe(**kwargs).images)
