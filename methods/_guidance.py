"""One guided denoising loop, shared by the attention-guided methods (Attend-and-Excite, SynGen).

The loop is the diffusers pipeline's own: :func:`guided_sample` calls ``pipe(...)`` with the prompt
embeddings, the initial latents and ``callback_on_step_end``. A latent-update hook ``hook(latents, i, t,
cond_embeds) -> latents`` runs **before** the classifier-free-guidance forward of every loop iteration i, as
in the official code (update z_t, then the CFG step on the updated z_t): for i = 0 on the initial latents
before the call, for i > 0 in the callback at the end of iteration i - 1. No pipeline code is copied.

The hook receives the conditional prompt embeddings (``encode_prompt``'s positive half) and runs its own
gradient-enabled forwards; it returns the (possibly) updated latents. ``trace`` (optional) receives
``("step_latents", i, latents)`` after every scheduler step, for parity tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from t2ibench.api import Method, apply_scheduler
from t2ibench.errors import T2IBenchError
from t2ibench.methods._attention import CrossAttentionCapture
from t2ibench.methods._frozen import frozen
from t2ibench.seeding import ImageSeed, initial_latents, latent_shape

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

LatentHook = Callable[[Any, int, Any, Any], Any]
Trace = Callable[[str, int, Any], None]  # (kind, loop iteration, payload): the events parity tests compare
GUIDED_PIPELINES = ("StableDiffusionPipeline",)


def check_guidable(pipe: DiffusionPipeline, method: str) -> None:
    """Attention guidance needs an SD-1.x/2.x UNet pipeline with explicit cross-attention."""
    kind = type(pipe).__name__
    if kind not in GUIDED_PIPELINES:
        raise T2IBenchError(
            f"method '{method}' guides SD-1.x/2.x UNet cross-attention; {kind} is not supported (supported: {', '.join(GUIDED_PIPELINES)})"
        )


def guided_sample(
    pipe: DiffusionPipeline,
    texts: Sequence[str],
    latents: Any,
    generation: Mapping[str, Any],
    hook: LatentHook,
    output_type: str = "pil",
    trace: Callable[[str, int, Any], None] | None = None,
) -> Any:
    """Sample ``texts`` from unscaled initial ``latents`` (B, C, h, w) with ``hook`` updating the latents."""
    import torch

    device = pipe._execution_device
    guidance = float(generation["guidance_scale"])
    negative = generation.get("negative_prompt")
    with torch.no_grad():
        prompt_embeds, negative_embeds = pipe.encode_prompt(
            list(texts),
            device,
            1,
            guidance > 1.0,
            negative_prompt=[negative] * len(texts) if negative is not None else None,
        )
    steps = int(generation["num_inference_steps"])
    pipe.scheduler.set_timesteps(steps, device=device)
    timesteps = pipe.scheduler.timesteps.clone()
    sigma = pipe.scheduler.init_noise_sigma
    latents = latents.to(device=device, dtype=prompt_embeds.dtype) * sigma
    latents = hook(latents, 0, timesteps[0], prompt_embeds)

    def on_step_end(_pipe: DiffusionPipeline, i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if trace is not None:
            trace("step_latents", i, kwargs["latents"].detach().clone())
        if i + 1 < len(timesteps):
            kwargs["latents"] = hook(kwargs["latents"], i + 1, timesteps[i + 1], prompt_embeds)
        return kwargs

    out = pipe(
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_embeds,
        latents=latents / sigma,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=generation.get("height"),
        width=generation.get("width"),
        callback_on_step_end=on_step_end,
        callback_on_step_end_tensor_inputs=["latents"],
        output_type=output_type,
    )
    return out.images


class GuidedMethod(Method):
    """Base of the attention-guided methods: :meth:`guide` samples one guided batch from initial latents;
    :meth:`generate` draws the per-image initial latents and guides either the whole batch
    (``cfg.batched``) or one prompt at a time (the official batch-1 behaviour)."""

    supported_pipelines = GUIDED_PIPELINES

    def check_pipeline(self, pipe: DiffusionPipeline) -> None:
        check_guidable(pipe, self.name)

    def make_hook(
        self,
        pipe: DiffusionPipeline,
        capture: CrossAttentionCapture,
        prompts: Sequence[Any],
        generation: Mapping[str, Any],
    ) -> LatentHook:
        """The method's latent-update hook for one guided batch (the capture is installed)."""
        raise NotImplementedError

    def guide(
        self,
        pipe: DiffusionPipeline,
        prompts: Sequence[Any],
        latents: Any,
        output_type: str = "pil",
        generation: Mapping[str, Any] | None = None,
    ) -> Any:
        """Sample ``prompts`` (one guided batch) from unscaled initial ``latents`` with ``generation`` (default: the
        method's resolved generation config): the scheduler, the attention capture, the method's hook, the loop."""
        generation = dict(generation or self.generation)
        apply_scheduler(pipe, generation.get("scheduler"))  # the pipeline was checked once, by generate
        capture = CrossAttentionCapture(pipe.unet, self.cfg.attention_res).install()
        try:
            hook = self.make_hook(pipe, capture, prompts, generation)
            texts = [p.text for p in prompts]
            with frozen(pipe.unet):  # gradients with respect to the latents only (see t2ibench.methods._frozen)
                return guided_sample(pipe, texts, latents, generation, hook, output_type, getattr(self, "trace", None))
        finally:
            capture.remove()

    def generate(self, pipe: DiffusionPipeline, prompts: Sequence[Any], seeds: Sequence[int | ImageSeed]) -> list[Any]:
        self.check_pipeline(pipe)
        return self.by_generation(prompts, seeds, lambda ps, ss, gen: self._guide_all(pipe, ps, ss, gen))

    def _guide_all(
        self,
        pipe: DiffusionPipeline,
        prompts: Sequence[Any],
        seeds: Sequence[int | ImageSeed],
        generation: Mapping[str, Any],
    ) -> list[Any]:
        latents = initial_latents(seeds, latent_shape(pipe, generation.get("height"), generation.get("width")))
        if self.cfg.batched:
            return list(self.guide(pipe, prompts, latents, generation=generation))
        return [self.guide(pipe, [p], latents[i : i + 1], generation=generation)[0] for i, p in enumerate(prompts)]
