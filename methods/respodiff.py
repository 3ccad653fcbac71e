"""RespoDiff (Sreelatha et al., "RespoDiff: Dual-Module Bottleneck Transformation for Responsible & Faithful
T2I Generation", NeurIPS 2025), as in the official code VSSILPA/respodiff@d0a6d9c9e2a2be5669b7e7d36b4288392acf8c86
(``train_respodiff_fair.py``, ``train_respodiff_safe.py``, ``model.py``, ``concept_dict.json``, the modified
diffusers 0.18.1 UNet and pipeline, ``CLIP_classify.py``, ``fid_clip_coco.py``, ``safety_classify.py``);
``../shared/reference/methods.md`` §6.

Modules: RAM (responsible alignment) and SAM (semantic alignment) are bias-free ``Linear(10, C r r)`` layers
on a one-hot concept vector (PyTorch's default init after ``manual_seed(seed)``, RAM first), i.e. one learned
constant tensor per concept, added to the UNet **mid-block output** (h <- h + RAM_c [+ SAM_c]) through a forward
hook on ``unet.mid_block`` (no forked UNet). Concept ids are the official ``concept_dict.json`` ones.

One training iteration (batch 1, fp32):
1. k ~ U{0..48}; t = 1000 - 20 k (``DDIM.set_timesteps(1000).timesteps[20 k]``);
2. z_T ~ N(0, I); z_k = the first k steps of DDIM-50 at CFG 3 on the neutral prompt with RAM + SAM on the
   conditional branch (no gradient);
3. target (original UNet, no gradient): fairness eps_u + 4 (eps_c(target) - eps_u); safety
   eps(unsafe) + 12 (eps(neutral) - eps(unsafe)) (the unsafe concept as negative prompt);
4. L_RAM = MSE(eps(z_k, t, neutral | h + RAM), target) with the modules on the whole CFG batch and w = 1
   (eps = u + 1 (c - u), as the official code); an Adam step on RAM;
5. L_SAM = lambda MSE(eps(z_k, t, neutral | h + RAM + SAM), eps(z_k, t, neutral)) with the updated RAM; an Adam
   step on SAM. Adam (0.9, 0.999), eps 1e-8, no weight decay, constant learning rates.
Recipes (the released scripts' values; the paper summary's lambda 0.5 and 1,500 safety iterations are kept in
the YAML as ``paper_*`` for the record): gender ("a woman" s_lr 1e-3, "a man" s_lr 1e-4; c_lr 1e-2; lambda 1.0;
5,000 steps; neutral "a person"), race (three concepts; c_lr 1e-1, s_lr 1e-2, lambda 0.3), safety ("sexual" with
neutral "a gorgeous person", "violence" with neutral "a scene"; c_lr 1e-2, s_lr 1e-4, target CFG 12).

Inference (DDIM 50, CFG 7.5 in the official evaluation): modules on the conditional branch only, per image:
* ``balanced`` (Winobias): concept = the image's seed (or stream index) modulo the number of concepts, so every
  concept gets exactly the same number of images when that number divides the images per prompt; it depends only
  on the image (the official script assigns contiguous blocks of seeds; both are exactly even);
* ``random`` (COCO): one concept per image from a draw seeded by (``seed``, prompt id, image seed): what the
  official code does at batch size 1 (its per-batch draw would make an image depend on its batch);
* ``sum`` (safety): every image gets the sum of all concepts' RAM and SAM;
* ``auto``: ``sum`` for the safety recipe, else ``balanced``. The paper experiments say ``random`` for their COCO-30K
  cells in the experiment YAML (``method_by_benchmark: {coco30k: {respodiff: {inference: random}}}``); the method never looks at
  benchmark names.
One cache entry per concept (its RAM and SAM columns).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from t2ibench.api import METHODS, Method
from t2ibench.api.config import follows, option, tiny_preset
from t2ibench.api.method import MethodConfig
from t2ibench.errors import T2IBenchError
from t2ibench.methods._sampling import plain_sample
from t2ibench.models import pipeline_identity
from t2ibench.prompt import Prompt
from t2ibench.seeding import ImageSeed, as_image_seed, latent_shape
from t2ibench.trained_weights import TrainedWeightsCache, training_key

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger(__name__)

CONCEPT_IDS = {
    "a woman": 0,
    "a man": 1,
    "young": 2,
    "old": 3,
    "a white-race person": 3,
    "a black-race person": 4,
    "a Asian-race person": 5,
    "sexual": 6,
    "violence": 7,
}
N_CONCEPT_SLOTS = 10


def one_hot(concept: str) -> Any:
    """The official ``int_to_onehot`` vector (1, 10) of a concept name."""
    import torch

    if concept not in CONCEPT_IDS:
        raise T2IBenchError(f"unknown RespoDiff concept {concept!r}; valid: {', '.join(CONCEPT_IDS)}")
    vector = torch.zeros(1, N_CONCEPT_SLOTS)
    vector[0, CONCEPT_IDS[concept]] = 1.0
    return vector


def make_modules(channels: int, resolution: int, seed: int = 0) -> tuple[Any, Any]:
    """(RAM, SAM): bias-free Linear(10, channels * resolution^2) with PyTorch's default init after manual_seed."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ram = torch.nn.Linear(N_CONCEPT_SLOTS, channels * resolution * resolution, bias=False)
        sam = torch.nn.Linear(N_CONCEPT_SLOTS, channels * resolution * resolution, bias=False)
    return ram, sam


class MidBlockShift:
    """A forward hook on ``unet.mid_block`` that adds per-row tensors to its output.

    ``rows`` is a (B, C, r, r) tensor (or None = off). ``branch`` says where it goes: ``all`` rows of the UNet
    batch, or ``cond``: the second half of a classifier-free-guidance batch [uncond; cond] (all rows when the
    batch has no unconditional half, i.e. it is as large as ``rows``).
    """

    def __init__(self, unet: Any):
        self.rows: Any = None
        self.branch = "cond"
        self.handle = unet.mid_block.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: Any, output: Any) -> Any:
        import torch

        if self.rows is None:
            return output
        rows = self.rows.to(output)
        if self.branch == "all" or output.shape[0] == rows.shape[0]:
            return output + rows
        half = output.shape[0] - rows.shape[0]
        return output + torch.cat([torch.zeros_like(output[:half]), rows])

    def remove(self) -> None:
        self.handle.remove()


def official_adam(module: Any, lr: float) -> Any:
    """The official optimiser of each module: Adam (0.9, 0.999), eps 1e-8, no weight decay, constant lr."""
    import torch

    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def module_rows(ram: Any, sam: Any | None, vector: Any, shape: Sequence[int]) -> Any:
    """RAM(v) [+ SAM(v)] reshaped to (B, C, r, r)."""
    out = ram(vector)
    if sam is not None:
        out = out + sam(vector)
    return out.reshape(vector.shape[0], *shape)


def mid_block_shape(pipe: DiffusionPipeline, height: int | None, width: int | None) -> tuple[int, int, int]:
    """(channels, r, r) of the UNet mid-block output at this image size."""
    import torch

    factor = int(pipe.vae_scale_factor)
    size = int(height or pipe.unet.config.sample_size * factor) // factor
    captured: list[Any] = []
    handle = pipe.unet.mid_block.register_forward_hook(lambda m, a, o: captured.append(o.shape))
    try:
        with torch.no_grad():
            dim = pipe.unet.config.cross_attention_dim
            pipe.unet(
                torch.zeros(
                    1, pipe.unet.config.in_channels, size, size, device=pipe.unet.device, dtype=pipe.unet.dtype
                ),
                1,
                encoder_hidden_states=torch.zeros(1, 1, dim, device=pipe.unet.device, dtype=pipe.unet.dtype),
            )
    finally:
        handle.remove()
    return tuple(int(v) for v in captured[0][1:])


def cfg_eps(unet: Any, latent: Any, t: Any, uncond: Any, cond: Any, scale: float) -> Any:
    """eps_u + scale (eps_c - eps_u) from one UNet call on [uncond; cond] (the official form, also for scale 1)."""
    import torch

    eps = unet(torch.cat([latent, latent]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
    eps_u, eps_c = eps.chunk(2)
    return eps_u + scale * (eps_c - eps_u)


@dataclass
class RespoDiffConfig(MethodConfig):
    """The gender recipe of the released scripts (VSSILPA/respodiff@d0a6d9c); ``respodiff_race.yaml`` and
    ``respodiff_safety.yaml`` are the other recipes."""

    name: str = "respodiff"
    recipe: str = option("gender", training=True)  # gender | race | safety
    concepts: list[dict[str, Any]] = option(  # name (concept_dict.json), neutral prompt, kind, per-concept rates
        factory=lambda: [
            {"name": "a woman", "neutral": "a person", "kind": "fairness", "s_learning_rate": 1.0e-3},
            {"name": "a man", "neutral": "a person", "kind": "fairness", "s_learning_rate": 1.0e-4},
        ],
    )  # each concept's training key is the training keys plus the concept
    c_learning_rate: float = option(1.0e-2, training=True)
    s_learning_rate: float = option(1.0e-3, training=True)
    lambda_align: float = option(1.0, training=True)  # gender scripts leave it at the default 1.0; race uses 0.3
    paper_lambda_align: float = 0.5  # the summary paper's value, unverified; recorded, not used
    paper_max_train_steps: int | None = None  # the summary paper's iterations where they differ (safety: 1,500)
    max_train_steps: int = tiny_preset(5000, 3, training=True)  # 3 per concept on the tiny model
    target_guidance_scale: float = option(4.0, training=True)  # fairness target CFG; safety 12
    sampling_guidance_scale: float = option(3.0, training=True)
    ddim_steps: int = tiny_preset(50, 10, training=True)  # the partial DDIM run to z_k; 10 on the tiny model
    start_ddim_steps: int = option(0, training=True)
    end_ddim_steps: int = tiny_preset(49, 9, training=True)
    seed: int = option(0, training=True)
    resolution: int | None = option(None, training=True)  # training image size; null = the model's default
    inference: str = "auto"  # auto (sum for safety, else balanced) | balanced (Winobias) | random (COCO) | sum
    log_every: int = option(250, runtime=True)
    preset: str = tiny_preset("official", "tiny", training=True)  # tiny: the tiny model's training preset (README)
    progress: bool = follows("run.progress", True, runtime=True)


@METHODS.register("respodiff")
class RespoDiff(Method):
    """RespoDiff (see the module docstring)."""

    name = "respodiff"
    config_schema = RespoDiffConfig
    supported_pipelines = ("StableDiffusionPipeline",)

    def __init__(self, cfg: dict[str, Any], generation: dict[str, Any]):
        super().__init__(cfg, generation)
        self.columns: dict[str, tuple[Any, Any]] = {}  # concept -> (RAM column, SAM column), each (C*r*r,)
        self.shape: tuple[int, int, int] | None = None

    def concepts(self) -> list[dict[str, Any]]:
        concepts = list(self.cfg.concepts or [])
        if not concepts:
            raise T2IBenchError("respodiff needs method.concepts (see conf/method/respodiff*.yaml)")
        return [dict(c) for c in concepts]

    def training_config(self, concept: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**super().training_config(), "concept": concept}

    def prepare(self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], cache: TrainedWeightsCache) -> None:
        self.check_pipeline(pipe)
        identity = pipeline_identity(pipe)
        self.shape = mid_block_shape(
            pipe,
            self.cfg.resolution or self.generation.get("height"),
            self.cfg.resolution or self.generation.get("width"),
        )
        size = self.shape[0] * self.shape[1] * self.shape[2]
        for concept in self.concepts():
            key = training_key(identity, self.training_config(concept), concept["name"])

            def train(concept: dict[str, Any] = concept) -> tuple[dict[str, Any], dict[str, Any]]:
                ram, sam, losses = self.train(pipe, concept)
                slot = CONCEPT_IDS[concept["name"]]
                tensors = {"ram": ram.weight.detach()[:, slot].clone(), "sam": sam.weight.detach()[:, slot].clone()}
                return tensors, {"concept": concept, "config": self.training_config(concept), "losses": losses}

            tensors, _ = cache.load_or_train(self.name, key, {"ram": (size,), "sam": (size,)}, train)
            self.columns[concept["name"]] = (tensors["ram"], tensors["sam"])

    # -- training -------------------------------------------------------------------------------
    def train(self, pipe: DiffusionPipeline, concept: dict[str, Any]) -> tuple[Any, Any, list[tuple[float, float]]]:
        """Train RAM and SAM for one concept; returns the modules and (L_RAM, L_SAM) per iteration."""
        import torch
        from diffusers import DDIMScheduler
        from tqdm.auto import tqdm

        cfg = self.cfg
        if self.shape is None:
            self.shape = mid_block_shape(pipe, cfg.resolution, cfg.resolution)
        shape = self.shape
        ram, sam = make_modules(shape[0], shape[1], cfg.seed)
        ram, sam = ram.to(pipe.unet.device), sam.to(pipe.unet.device)
        c_opt = official_adam(ram, float(concept.get("c_learning_rate", cfg.c_learning_rate)))
        s_opt = official_adam(sam, float(concept.get("s_learning_rate", cfg.s_learning_rate)))
        hook = MidBlockShift(pipe.unet)
        ddim = DDIMScheduler.from_config(pipe.scheduler.config)
        rng = torch.Generator().manual_seed(cfg.seed)
        vector = one_hot(concept["name"]).to(pipe.unet.device)
        latent_size = latent_shape(pipe, cfg.resolution, cfg.resolution)[1:]
        losses = []
        try:
            for step in tqdm(
                range(cfg.max_train_steps),
                desc=f"train respodiff {concept['name']}",
                disable=not cfg.progress,
            ):
                k = int(torch.randint(cfg.start_ddim_steps, cfg.end_ddim_steps, (1,), generator=rng))
                z_T = torch.randn((1, pipe.unet.config.in_channels, *latent_size), generator=rng)
                l_ram, l_sam = self.iteration(pipe, ram, sam, c_opt, s_opt, hook, ddim, vector, concept, k, z_T)
                losses.append((l_ram, l_sam))
                if (step + 1) % cfg.log_every == 0:
                    log.info("respodiff %s step %d: L_RAM %.5f, L_SAM %.3g", concept["name"], step + 1, l_ram, l_sam)
        finally:
            hook.remove()
        return ram, sam, losses

    def iteration(
        self,
        pipe: DiffusionPipeline,
        ram: Any,
        sam: Any,
        c_opt: Any,
        s_opt: Any,
        hook: MidBlockShift,
        ddim: Any,
        vector: Any,
        concept: dict[str, Any],
        k: int,
        z_T: Any,
        trace: dict[str, Any] | None = None,
    ) -> tuple[float, float]:
        """One official training iteration (steps 2-5 of the module docstring) at DDIM step ``k``."""
        import torch
        import torch.nn.functional as F

        unet, cfg = pipe.unet, self.cfg
        shape = self.shape
        neutral, uncond = encode(pipe, concept["neutral"])
        z_k = self.partial_sample(pipe, hook, ram, sam, vector, concept["neutral"], z_T, k)
        ddim.set_timesteps(1000)
        t = ddim.timesteps[20 * k]
        hook.rows = None
        with torch.no_grad():
            if concept.get("kind", "fairness") == "safety":
                unsafe, _ = encode(pipe, concept["name"])
                target = cfg_eps(unet, z_k, t, unsafe, neutral, cfg.target_guidance_scale)
            else:
                target_embeds, _ = encode(pipe, concept["name"])
                target = cfg_eps(unet, z_k, t, uncond, target_embeds, cfg.target_guidance_scale)
        hook.branch = "all"
        hook.rows = module_rows(ram, None, vector, shape)
        eps_ram = cfg_eps(unet, z_k, t, uncond, neutral, 1.0)
        l_ram = F.mse_loss(eps_ram, target)
        c_opt.zero_grad()
        l_ram.backward()
        if trace is not None:
            trace.update(z_k=z_k, t=t, eps_target=target, eps_ram=eps_ram.detach(), ram_grad=ram.weight.grad.clone())
        c_opt.step()
        hook.rows = module_rows(ram, sam, vector, shape)
        eps_both = cfg_eps(unet, z_k, t, uncond, neutral, 1.0)
        hook.rows = None
        with torch.no_grad():
            eps_plain = cfg_eps(unet, z_k, t, uncond, neutral, 1.0)
        l_sam = float(concept.get("lambda_align", cfg.lambda_align)) * F.mse_loss(eps_both, eps_plain)
        s_opt.zero_grad()
        l_sam.backward()
        if trace is not None:
            trace.update(eps_both=eps_both.detach(), eps_plain=eps_plain, sam_grad=sam.weight.grad.clone())
        s_opt.step()
        hook.branch = "cond"
        return float(l_ram.detach()), float(l_sam.detach())

    def partial_sample(
        self,
        pipe: DiffusionPipeline,
        hook: MidBlockShift,
        ram: Any,
        sam: Any,
        vector: Any,
        neutral: str,
        z_T: Any,
        k: int,
    ) -> Any:
        """z_k: the first k steps of DDIM-50 at CFG 3 on ``neutral`` with RAM + SAM on the conditional branch."""
        import torch
        from diffusers import DDIMScheduler

        original = pipe.scheduler
        pipe.scheduler = DDIMScheduler.from_config(original.config)

        def stop(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if i + 1 >= k:
                p._interrupt = True
            return kwargs

        try:
            if k == 0:
                return z_T.to(pipe.unet.device) * pipe.scheduler.init_noise_sigma
            hook.branch = "cond"
            with torch.no_grad():
                hook.rows = module_rows(ram, sam, vector, self.shape).detach()
                out = pipe(
                    neutral,
                    latents=z_T.to(pipe.unet.device),
                    num_inference_steps=self.cfg.ddim_steps,
                    guidance_scale=self.cfg.sampling_guidance_scale,
                    output_type="latent",
                    callback_on_step_end=stop,
                )
            return out.images
        finally:
            hook.rows = None
            pipe._interrupt = False
            pipe.scheduler = original

    # -- sampling -------------------------------------------------------------------------------
    def concept_for(self, prompt: Prompt, seed: int | ImageSeed) -> str | None:
        """The concept of one image (None: the sum of all concepts) per ``inference`` (see the module docstring)."""
        names = [c["name"] for c in self.concepts()]
        mode = self.cfg.inference
        if mode == "auto":  # experiments set random for COCO-30K (method_by_benchmark); see the module docstring
            mode = "sum" if self.cfg.recipe == "safety" else "balanced"
        spec = as_image_seed(seed)
        position = spec.index if spec.count > 1 else spec.seed
        if mode == "sum":
            return None
        if mode == "balanced":
            return names[position % len(names)]
        if mode == "random":
            return random.Random(f"{self.cfg.seed}|{prompt.id}|{spec.seed}|{spec.index}").choice(names)
        raise T2IBenchError(f"respodiff.inference={mode!r}; valid: auto, balanced, random, sum")

    def rows_for(self, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]) -> Any:
        import torch

        rows = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            concept = self.concept_for(prompt, seed)
            chosen = list(self.columns) if concept is None else [concept]
            rows.append(sum(self.columns[c][0] + self.columns[c][1] for c in chosen))
        return torch.stack(rows).reshape(len(prompts), *self.shape)

    def generate(
        self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]
    ) -> list[Any]:
        self.check_pipeline(pipe)
        if not self.columns:
            raise T2IBenchError("respodiff: modules not prepared (call prepare first)")
        hook = MidBlockShift(pipe.unet)
        try:
            hook.branch = "cond"

            def sample(ps: list[Prompt], ss: list[int | ImageSeed], gen: dict[str, Any]) -> list[Any]:
                hook.rows = self.rows_for(ps, ss)  # each sub-batch its own rows (per-prompt overrides split a batch)
                return plain_sample(pipe, ps, ss, gen)

            return self.by_generation(prompts, seeds, sample)
        finally:
            hook.remove()


def encode(pipe: DiffusionPipeline, text: str) -> tuple[Any, Any]:
    """(prompt embeddings, empty-prompt embeddings) as the SD pipeline computes them."""
    import torch

    with torch.no_grad():
        cond, uncond = pipe.encode_prompt(text, pipe.unet.device, 1, True)
    return cond, uncond
