"""ReBind (Malakouti & Kovashka, "Role Bias in Diffusion Models: Diagnosing and Mitigating through
Intermediate Decomposition", NeurIPS 2025), as in the official code sinamalakouti/ReBind@19ea3fa481f1dfa7f7fc3904f2c77e363e6d4720
(``rebind/scripts/sdxl/rebind_lora_sdxl.py``: ``train_step_active_passive``, ``exp_ramp_up``; ``train_sdxl.sh``);
``../shared/reference/methods.md`` §7. The official model is SDXL at 1024 px; this is a port to the harness's
model (SD-1.x pipelines; SDXL training is not ported yet and is refused with a clear message).

A LoRA (peft; rank 32, alpha 32, gaussian init) on ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of every UNet attention
is trained per rare composition on images of its two intermediate compositions (RoleBench's ``passive``: another
agent acting on the rare object; ``active``: the rare subject acting on another patient), captioned with
their base prompts "A photo of one {s} ... one {o}". Per micro-step one active and one passive sample: epsilon
MSE per sample (mean over C, H, W) at DDPM t ~ U{0..999}; 5% of micro-steps use empty prompts; weights
[active lambda_s, passive 1] with lambda_s = 0.5 + (lambda - 0.5) (exp(3 s / S) - 1) / (exp(3) - 1) (the exponential
ramp from 0.5 at step 0 to ``active_weight`` lambda at S = ``max_train_steps``); L = mean_i w_i MSE_i (the
official ``sup_only`` objective). AdamW 1e-4 (weight decay 1e-2), gradient clipping 1.0, accumulation 4,
1,000 optimiser steps, seed 42. ``active_weight`` is a command-line value of the official script (argparse
default 2; the value behind the paper's numbers is not recorded), so it is a config value here.

Intermediate images: the official ones come from GPT-4o prompts and DALL-E 3 (API-only), filtered by a
VQAScore margin. Here they come from ``image_dir`` (``<image_dir>/<intermediate prompt id>/*.png``), or are generated
by the loaded pipeline itself (``images_per_intermediate`` seeds); the VQAScore filter (``vqa_margin``) is not
applied until the VQAScore evaluator lands (recorded with the cache entry).
Sampling: the pipeline with the relation's LoRA (frequent and rare prompts of that relation use it).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from t2ibench.errors import T2IBenchError
from t2ibench.methods import METHODS
from t2ibench.methods.base import ImageSeed, Method, padded_ids
from t2ibench.methods.sd import StableDiffusionBaseline
from t2ibench.prompt import Prompt
from t2ibench.trained_weights import TrainedWeightsCache, training_key

log = logging.getLogger(__name__)
TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
TRAINING_KEYS = (
    "rank",
    "alpha",
    "init_lora_weights",
    "learning_rate",
    "adam_weight_decay",
    "max_grad_norm",
    "gradient_accumulation_steps",
    "max_train_steps",
    "active_weight",
    "empty_prompt_probability",
    "seed",
    "images_per_intermediate",
    "image_dir",
    "resolution",
)


def exp_ramp_up(initial: float, final: float, max_steps: int, step: int) -> float:
    """The official ramp: initial + (final - initial) (exp(3 step / max_steps) - 1) / (exp(3) - 1), final from max_steps on."""
    if step >= max_steps:
        return float(final)
    return float(initial + (final - initial) * (math.exp(3.0 * step / max_steps) - 1.0) / (math.exp(3.0) - 1.0))


def weighted_loss(model_pred: Any, target: Any, weights: Any) -> tuple[Any, Any]:
    """(mean_i w_i MSE_i, per-sample MSE) with MSE_i the mean over (C, H, W) of sample i."""
    per_sample = ((model_pred.float() - target.float()) ** 2).mean(dim=list(range(1, model_pred.ndim)))
    return (per_sample * weights).mean(), per_sample


def lora_config(cfg: dict[str, Any]) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=int(cfg.get("rank", 32)),
        lora_alpha=int(cfg.get("alpha", 32)),
        init_lora_weights=cfg.get("init_lora_weights", "gaussian"),
        target_modules=TARGET_MODULES,
    )


@METHODS.register("rebind")
class ReBind(Method):
    """ReBind (see the module docstring)."""

    name = "rebind"
    supported_pipelines = ("StableDiffusionPipeline",)

    def __init__(self, cfg: dict[str, Any], generation: dict[str, Any]):
        super().__init__(cfg, generation)
        self.loras: dict[str, dict[str, Any]] = {}  # relation -> LoRA state dict

    def check_pipeline(self, pipe: Any) -> None:
        if type(pipe).__name__ == "StableDiffusionXLPipeline":
            raise T2IBenchError("rebind: training on SDXL (the official model) is not ported yet; use an SD-1.x model")
        super().check_pipeline(pipe)

    def training_config(self) -> dict[str, Any]:
        return {k: self.cfg.get(k) for k in TRAINING_KEYS}

    def intermediates(self, relation: str) -> dict[str, Prompt]:
        from t2ibench import benchmarks

        found = {
            p.metadata["role"]: p
            for p in benchmarks.load("rolebench", split="intermediates")
            if p.metadata["relation"] == relation
        }
        if set(found) != {"active", "passive"}:
            raise T2IBenchError(f"rebind: no active/passive intermediates for relation {relation!r}")
        return found

    def prepare(self, pipe: Any, prompts: Sequence[Prompt], cache: TrainedWeightsCache) -> None:
        self.check_pipeline(pipe)
        identity = getattr(pipe, "_t2ibench_identity", None) or {"class": type(pipe).__name__}
        relations = []
        for prompt in prompts:
            relation = prompt.metadata.get("relation")
            if not relation:
                raise T2IBenchError(f"rebind needs RoleBench prompts (metadata.relation); prompt {prompt.id} has none")
            relations.append(relation)
        for relation in dict.fromkeys(relations):
            inter = self.intermediates(relation)
            key = training_key(
                identity,
                self.training_config(),
                {"rare": f"rolebench-{relation}-rare", "captions": {r: p.text for r, p in inter.items()}},
            )

            def train(
                relation: str = relation, inter: dict[str, Prompt] = inter
            ) -> tuple[dict[str, Any], dict[str, Any]]:
                state, losses = self.train(pipe, inter)
                return state, {
                    "relation": relation,
                    "captions": {r: p.text for r, p in inter.items()},
                    "losses": losses,
                    "vqa_filter": "not applied (VQAScore evaluator not available)",
                    "config": self.training_config(),
                }

            self.loras[relation], _ = cache.load_or_train(self.name, key, None, train)

    # -- training data ----------------------------------------------------------------------------
    def intermediate_latents(self, pipe: Any, prompt: Prompt) -> Any:
        """VAE latents (N, C, h, w) of the intermediate's images: from ``image_dir`` or generated by ``pipe``."""
        import numpy as np
        import torch
        from PIL import Image

        size = int(
            self.cfg.get("resolution")
            or self.generation.get("height")
            or pipe.unet.config.sample_size * pipe.vae_scale_factor
        )
        image_dir = self.cfg.get("image_dir")
        if image_dir:
            files = sorted(Path(image_dir, prompt.id).glob("*.png"))
            if not files:
                raise T2IBenchError(f"rebind: no intermediate images in {Path(image_dir, prompt.id)} (*.png)")
            images = [Image.open(f).convert("RGB").resize((size, size), Image.LANCZOS) for f in files]
        else:
            count = int(self.cfg.get("images_per_intermediate", 4))
            generation = {**self.generation, "height": size, "width": size}
            images = StableDiffusionBaseline({"name": "sd"}, generation).generate(
                pipe, [prompt] * count, list(range(count))
            )
        pixels = torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) / 127.5 - 1.0 for i in images])).permute(
            0, 3, 1, 2
        )
        with torch.no_grad():
            latents = pipe.vae.encode(pixels.to(device=pipe.vae.device, dtype=pipe.vae.dtype)).latent_dist.sample(
                torch.Generator().manual_seed(0)
            )
        return latents * pipe.vae.config.scaling_factor

    def train(self, pipe: Any, inter: dict[str, Prompt]) -> tuple[dict[str, Any], list[float]]:
        """Train one LoRA on the active and passive intermediates; returns its state dict and the losses.
        The pipeline's UNet is left without the adapter."""
        import torch
        from diffusers import DDPMScheduler
        from peft.utils import get_peft_model_state_dict
        from tqdm.auto import tqdm

        cfg, unet = self.cfg, pipe.unet
        data = {role: self.intermediate_latents(pipe, prompt) for role, prompt in inter.items()}
        with torch.no_grad():
            embeds = {
                role: pipe.text_encoder(padded_ids(pipe.tokenizer, prompt.text).to(unet.device))[0]
                for role, prompt in inter.items()
            }
            empty = pipe.text_encoder(padded_ids(pipe.tokenizer, "").to(unet.device))[0]
        ddpm = DDPMScheduler.from_config(pipe.scheduler.config)
        seed = int(cfg.get("seed", 42))
        generator, rng = torch.Generator().manual_seed(seed), random.Random(seed)
        requires = {n: p.requires_grad for n, p in unet.named_parameters()}
        unet.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the gaussian LoRA init
            unet.add_adapter(lora_config(cfg), adapter_name="rebind_train")
        lora = [p for n, p in unet.named_parameters() if "lora_" in n]
        for p in lora:
            p.data = p.data.float()
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(
            lora,
            lr=float(cfg.get("learning_rate", 1e-4)),
            betas=(0.9, 0.999),
            weight_decay=float(cfg.get("adam_weight_decay", 1e-2)),
            eps=1e-8,
        )
        steps, accumulation = int(cfg.get("max_train_steps", 1000)), int(cfg.get("gradient_accumulation_steps", 4))
        losses: list[float] = []
        unet.train()
        try:
            for step in tqdm(range(steps), desc="train rebind", unit="step", disable=not cfg.get("progress", True)):
                weights = torch.tensor([exp_ramp_up(0.5, float(cfg.get("active_weight", 2.0)), steps, step), 1.0])
                total = 0.0
                for _ in range(accumulation):
                    x0 = torch.cat(
                        [
                            data["active"][rng.randrange(len(data["active"]))][None],
                            data["passive"][rng.randrange(len(data["passive"]))][None],
                        ]
                    )
                    noise = torch.randn(x0.shape, generator=generator)
                    t = torch.randint(0, ddpm.config.num_train_timesteps, (2,), generator=generator)
                    noisy = ddpm.add_noise(x0.cpu(), noise, t).to(unet.device, unet.dtype)
                    drop = rng.random() < float(cfg.get("empty_prompt_probability", 0.05))
                    cond = torch.cat([empty, empty]) if drop else torch.cat([embeds["active"], embeds["passive"]])
                    pred = unet(noisy, t.to(unet.device), encoder_hidden_states=cond).sample
                    loss, _ = weighted_loss(pred, noise.to(pred), weights.to(pred.device))
                    (loss / accumulation).backward()
                    total += float(loss) / accumulation
                torch.nn.utils.clip_grad_norm_(lora, float(cfg.get("max_grad_norm", 1.0)))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(total)
            state = {
                k: v.detach().cpu().clone()
                for k, v in get_peft_model_state_dict(unet, adapter_name="rebind_train").items()
            }
        finally:
            unet.eval()
            unet.unload_lora()  # removes the peft wrappers: the cached pipeline keeps its original modules
            for n, p in unet.named_parameters():
                p.requires_grad_(requires.get(n, False))
        return state, losses

    # -- sampling -------------------------------------------------------------------------------
    def generate(self, pipe: Any, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]) -> list[Any]:
        from peft.utils import set_peft_model_state_dict

        self.check_pipeline(pipe)
        images: list[Any] = [None] * len(prompts)
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt.metadata.get("relation", ""), []).append(i)
        sampler = StableDiffusionBaseline({"name": "sd"}, self.generation)
        for relation, members in groups.items():
            if relation not in self.loras:
                raise T2IBenchError(f"rebind: no LoRA prepared for relation {relation!r}")
            pipe.unet.add_adapter(lora_config(self.cfg), adapter_name="rebind")
            try:
                set_peft_model_state_dict(pipe.unet, self.loras[relation], adapter_name="rebind")
                out = sampler.generate(pipe, [prompts[i] for i in members], [seeds[i] for i in members])
            finally:
                pipe.unet.unload_lora()
            for i, image in zip(members, out, strict=True):
                images[i] = image
        return images
