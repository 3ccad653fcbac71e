"""The Stable Diffusion baseline: the plain diffusers text-to-image pipeline.

Paper: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022 (the
classifier-free-guided sampler of their Eq. for epsilon-prediction, as implemented by diffusers).
Official code: the diffusers pipelines themselves (``StableDiffusionPipeline`` and the other classes that
``AutoPipelineForText2Image`` loads), huggingface/diffusers, the version recorded with every image.

Works with every text-to-image pipeline diffusers loads (SD-1.x, SD-2.x, SDXL, SD3/3.5, AuraFlow, FLUX).
Each (prompt, seed) image has its own CPU generator, so its initial latent does not depend on the batch
(seed streams use explicit latents, see :mod:`t2ibench.seeding`); scheduler, steps, guidance, size and
negative prompt come from the resolved generation config, and a prompt's ``metadata.generation_overrides``
(``guidance_scale``, ``num_inference_steps``) replace them for that prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from t2ibench.api import METHODS, Method
from t2ibench.api.method import MethodConfig
from t2ibench.methods._sampling import baseline_generate
from t2ibench.prompt import Prompt
from t2ibench.seeding import ImageSeed

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


@dataclass
class SDConfig(MethodConfig):
    """The SD baseline has no options of its own."""

    name: str = "sd"


@METHODS.register("sd")
class StableDiffusionBaseline(Method):
    """Plain sampling with the loaded pipeline (see the module docstring)."""

    name = "sd"
    config_schema = SDConfig

    def generate(
        self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]
    ) -> list[Any]:
        # Prompts that carry generation_overrides (e.g. I2P's guidance column) are sampled in their own sub-batches.
        return baseline_generate(self, pipe, prompts, seeds)
