"""Separate-and-Enhance (Bao, Kumar, Ginzburg, Wang, Hsu, "Separate-and-Enhance: Compositional Finetuning for
Text2Image Diffusion Models", SIGGRAPH 2024), as in the official code
adobe/SeperateAndEnhance@2ddc822c6fcc87abbaa763fc99e725ef10e9c10d (``src/train_individual.py``,
``src/train_large.py``, ``src/utils.py``, ``src/ptp_utils.py``, ``src/config.py``); ``../shared/reference/methods.md`` §4.

Only the cross-attention key projections (every ``attn2.to_k``) train. A data-free step: x0 = 0.18215 N(0, I),
t ~ U{0..999}, x_t = DDPM ``add_noise``; one UNet forward on the training prompt; A = the raw cross-attention
probabilities (BOS inside the softmax) of the 16x16 layers, averaged over **layers only**, per (sample, head):
* Separate loss (paper Eq. 3): L_sep = max over heads and pixels of A_1 A_2 / (A_1 + A_2) (a soft IoU);
* Enhance loss (paper Eq. 4): L_en = 1 - min(max S(A_1), max S(A_2)) with S the reflect-padded 3x3 smoothing of
  Attend-and-Excite (the official, quirky kernel);
* L = 1.0 mean_b L_sep + 0.5 mean_b L_en; AdamW (0.9, 0.999), weight decay 1e-2; gradients clipped to norm 1.0
  over the ``attn2`` parameters; constant learning rate; seed 0.
Recipes (``recipe``): ``individual``: one model per concept pair, prompt "a photo of {c1} and {c2}", bs 4,
lr 2e-6 x 4 (scale_lr) = 8e-6, 200 steps; ``large``: one model for a concept collection, prompts "a photo of a {A}
{and|with} a {B}", lr 5e-7 x 4 x 2 = 4e-6, 10,000 steps, plus the prior-preservation term MSE(eps(x_t, "a photo of
{c}"), eps_original(...)) with weight 0.5 as a second optimiser step of the same iteration. Sampling: the plain
pipeline with the finetuned keys at CFG 6.0.

Official conventions and t2ibench's choices (flags; defaults = official unless noted):
* ``half_batch_quirk`` (true): the official prompt-to-prompt controller keeps only the second half of the
  (batch x heads) rows (it assumes a CFG batch): with bs 4 and 8 heads, samples 2 and 3 become 4 pseudo-samples
  of 4 heads each, and samples 0 and 1 get no attention loss. False: every sample, all heads.
* token indices always come from the tokenised training prompt (first word piece of each concept). The
  official large-scale script's fixed indices 6 and 9 point at "and" and end-of-text; they are not reproduced.
* the official collection of 220 concepts is not published: ``concepts`` in config, default the object nouns
  of the chosen benchmark (t2ibench's choice); the official large script draws one prompt per step, here each
  batch element draws its own (t2ibench's choice).
* the concept pair of a benchmark prompt comes from its metadata (``subject_words``, ``subjects``,
  ``subject``/``object``) or the nouns of a spaCy parse; a prompt with fewer than two objects is generated with
  the unmodified model (logged).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from t2ibench.api import METHODS, Method, Requirements, padded_ids
from t2ibench.api.config import follows, option, stand_in, tiny_preset
from t2ibench.api.method import MethodConfig
from t2ibench.errors import T2IBenchError
from t2ibench.methods._attention import CrossAttentionCapture, smoothing_kernel
from t2ibench.methods._frozen import frozen
from t2ibench.methods._prompt_parse import extract_entities, first_piece, parse_text, parser_requirements
from t2ibench.methods._sampling import plain_sample
from t2ibench.models import pipeline_identity
from t2ibench.prompt import Prompt
from t2ibench.seeding import ImageSeed, latent_shape
from t2ibench.trained_weights import TrainedWeightsCache, training_key

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger(__name__)


# -- the losses (parity-tested against the official code) -----------------------------------------
def sepen_maps(capture: CrossAttentionCapture, batch: int, half_batch_quirk: bool = True) -> Any:
    """(batch, groups, res, res, tokens): layer-mean maps per sample and head group (see the module docstring)."""
    import torch

    layers = []
    for _, maps in capture.layer_maps(batch):  # (batch, heads, res, res, tokens)
        if half_batch_quirk:
            heads = maps.shape[1]
            rows = maps.reshape(batch * heads, *maps.shape[2:])[batch * heads // 2 :]
            maps = rows.reshape(batch, -1, *maps.shape[2:])
        layers.append(maps)
    stacked = torch.stack(layers)
    return stacked.sum(0) / stacked.shape[0]


def separate_loss(maps: Any, index_1: int, index_2: int) -> Any:
    """max over heads and pixels of A1 A2 / (A1 + A2) for one sample's maps (groups, res, res, tokens)."""
    a1, a2 = maps[..., index_1], maps[..., index_2]
    return (a1 * a2 / (a1 + a2)).max()


def enhance_loss(maps: Any, index_1: int, index_2: int, kernel_size: int = 3, sigma: float = 0.5) -> Any:
    """1 - min(max S(A1), max S(A2)), S the official reflect-padded depthwise smoothing."""
    import torch.nn.functional as F

    kernel = smoothing_kernel(kernel_size, sigma).to(maps)

    def smoothed_max(a: Any) -> Any:
        x = F.pad(a.unsqueeze(1), (1, 1, 1, 1), mode="reflect")  # (groups, 1, res + 2, res + 2)
        return F.conv2d(x, kernel).max()

    return 1 - min(smoothed_max(maps[..., index_1]), smoothed_max(maps[..., index_2]))


def sepen_loss(
    maps: Any, indices: Sequence[tuple[int, int]], lambda_sep: float = 1.0, lambda_en: float = 0.5
) -> tuple[Any, list[tuple[float, float]]]:
    """L = lambda_sep mean_b L_sep + lambda_en mean_b L_en over the (pseudo-)samples of ``maps``."""
    seps = [separate_loss(maps[b], *indices[b]) for b in range(maps.shape[0])]
    ens = [enhance_loss(maps[b], *indices[b]) for b in range(maps.shape[0])]
    total = lambda_sep * sum(seps) / len(seps) + lambda_en * sum(ens) / len(ens)
    return total, [(float(s.detach()), float(e.detach())) for s, e in zip(seps, ens, strict=True)]


def data_free_batch(ddpm: Any, batch: int, shape: Sequence[int], scaling: float, generator: Any) -> tuple[Any, Any]:
    """The official data-free training input: x0 = scaling * N(0, I), t ~ U{0..T-1}, x_t = DDPM add_noise(x0, eps, t)."""
    import torch

    x0 = torch.randn((batch, *shape), generator=generator) * scaling
    noise = torch.randn((batch, *shape), generator=generator)
    t = torch.randint(0, ddpm.config.num_train_timesteps, (batch,), generator=generator)
    return ddpm.add_noise(x0, noise, t), t


def map_samples(batch: int, half_batch_quirk: bool) -> list[int]:
    """The sample behind each map of :func:`sepen_maps`: with the quirk, pseudo-sample b holds the heads of sample
    (batch + b) // 2 (the second half of the batch), so it uses that sample's token indices."""
    return [(batch + b) // 2 for b in range(batch)] if half_batch_quirk else list(range(batch))


def to_k_parameters(unet: Any) -> dict[str, Any]:
    """The trainable parameters: every cross-attention key projection."""
    return {name: p for name, p in unet.named_parameters() if "attn2.to_k" in name}


@dataclass
class SepEnConfig(MethodConfig):
    """The official defaults of adobe/SeperateAndEnhance@2ddc822 (the individual recipe; ``sepen_large.yaml`` the
    large-scale one)."""

    name: str = "sepen"
    recipe: str = option("individual", training=True)  # individual (one model per concept pair) | large
    learning_rate: float = option(8.0e-6, training=True)  # individual: 2e-6 x 4; large: 5e-7 x 4 x 2 = 4e-6
    max_train_steps: int = tiny_preset(200, 3, training=True)  # individual: 200 (3 per pair on the tiny model)
    train_batch_size: int = option(4, training=True)
    lambda_sep: float = option(1.0, training=True)
    lambda_en: float = option(0.5, training=True)
    use_norm: bool = option(False, training=True)  # the prior-preservation term (large: true, weight 0.5)
    norm_weight: float = option(1.0, training=True)
    max_grad_norm: float = option(1.0, training=True)
    adam_weight_decay: float = option(0.01, training=True)
    seed: int = option(0, training=True)
    attention_res: int = option(16, training=True)
    resolution: int | None = option(None, training=True)  # training latent size; null = the model's default size
    half_batch_quirk: bool = option(True, training=True)  # official: only the second half of the batch gets the loss
    template: str = option("a photo of {} and {}", training=True)
    large_template: str = option("a photo of a {} {} a {}", training=True)
    connectors: list[str] = option(factory=lambda: ["and", "with"], training=True)
    prior_template: str = option("a photo of {}", training=True)
    concepts: list[str] | None = option(None, training=True)  # large: the concept list; null = the benchmark's nouns
    guidance_scale: float = 6.0  # sampling CFG of the official evaluation (overrides generation.guidance_scale)
    parser: str = stand_in("parser", "en_core_web_trf")  # nouns of prompts whose metadata names no objects
    log_every: int = option(50, runtime=True)
    preset: str = tiny_preset("official", "tiny", training=True)  # tiny: the tiny model's training preset (README)
    progress: bool = follows("run.progress", True, runtime=True)


@METHODS.register("sepen")
class SeparateAndEnhance(Method):
    """Separate-and-Enhance (see the module docstring)."""

    name = "sepen"
    config_schema = SepEnConfig
    supported_pipelines = ("StableDiffusionPipeline",)

    def __init__(self, cfg: dict[str, Any], generation: dict[str, Any]):
        super().__init__(cfg, generation)
        self.weights: dict[str, dict[str, Any] | None] = {}  # prompt id -> to_k tensors (None: the base model)
        self.losses: dict[str, list[float]] = {}

    def required_weights(self) -> Requirements:
        return parser_requirements(self.cfg.parser)

    # -- concepts -------------------------------------------------------------------------------
    def concept_pair(self, prompt: Prompt) -> tuple[str, str] | None:
        meta = prompt.metadata
        for key in ("subject_words", "subjects"):
            if isinstance(meta.get(key), list) and len(meta[key]) >= 2:
                return str(meta[key][0]), str(meta[key][1])
        if meta.get("subject") and meta.get("object"):
            return str(meta["subject"]), str(meta["object"])
        groups = extract_entities(parse_text(self.cfg.parser, prompt.text))
        # words only: a parser may tag an emoji or a symbol as a noun, which no training prompt can align
        nouns = [group[0].text for group in groups if any(c.isalpha() for c in group[0].text)]
        return (nouns[0], nouns[1]) if len(nouns) >= 2 else None

    # -- training -------------------------------------------------------------------------------
    def prepare(self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], cache: TrainedWeightsCache) -> None:
        self.check_pipeline(pipe)
        identity = pipeline_identity(pipe)
        if self.cfg.recipe == "large":
            concepts = list(
                self.cfg.concepts or dict.fromkeys(c for p in prompts for c in (self.concept_pair(p) or ()))
            )
            if len(concepts) < 2:
                raise T2IBenchError(
                    "sepen recipe=large needs at least two concepts (method.concepts or the benchmark's object nouns)"
                )
            key = training_key(identity, self.training_config(), {"concepts": concepts})
            tensors = self._cached_or_trained(pipe, cache, key, {"concepts": concepts})
            self.weights = {p.id: tensors for p in prompts}
            return
        for prompt in prompts:
            pair = self.concept_pair(prompt)
            if pair is None:
                log.warning(
                    "sepen: prompt %s has fewer than two objects; it is generated with the unmodified model", prompt.id
                )
                self.weights[prompt.id] = None
                continue
            key = training_key(identity, self.training_config(), {"pair": list(pair)})
            self.weights[prompt.id] = self._cached_or_trained(pipe, cache, key, {"pair": list(pair)})

    def _cached_or_trained(
        self, pipe: DiffusionPipeline, cache: TrainedWeightsCache, key: str, trained_on: dict[str, Any]
    ) -> dict[str, Any]:
        expected = {name: tuple(p.shape) for name, p in to_k_parameters(pipe.unet).items()}

        def train() -> tuple[dict[str, Any], dict[str, Any]]:
            tensors, losses = self.train(pipe, trained_on)
            return tensors, {"trained_on": trained_on, "config": self.training_config(), "losses": losses}

        return cache.load_or_train(self.name, key, expected, train)[0]

    def train(self, pipe: DiffusionPipeline, trained_on: dict[str, Any]) -> tuple[dict[str, Any], list[float]]:
        """Finetune ``to_k`` on ``trained_on`` (a pair or a concept list); returns the tensors and the losses.
        The pipeline's weights are restored afterwards."""
        import torch
        from diffusers import DDPMScheduler
        from tqdm.auto import tqdm

        unet, cfg = pipe.unet, self.cfg
        params = to_k_parameters(unet)
        original = {name: p.detach().clone() for name, p in params.items()}
        attn2 = [p for name, p in unet.named_parameters() if "attn2" in name]
        with frozen(unet, params.values()):
            ddpm = DDPMScheduler.from_config(pipe.scheduler.config)
            generator = torch.Generator().manual_seed(cfg.seed)
            rng = random.Random(cfg.seed)
            optimizer = torch.optim.AdamW(
                list(params.values()),
                lr=cfg.learning_rate,
                betas=(0.9, 0.999),
                weight_decay=cfg.adam_weight_decay,
                eps=1e-8,
            )
            batch = cfg.train_batch_size
            shape = latent_shape(pipe, cfg.resolution, cfg.resolution)
            capture = CrossAttentionCapture(unet, cfg.attention_res).install()
            device, dtype = unet.device, unet.dtype
            losses: list[float] = []
            steps = cfg.max_train_steps
            unet.train()
            try:
                for step in tqdm(range(steps), desc="train sepen", unit="step", disable=not cfg.progress):
                    texts, pairs = self._training_texts(trained_on, batch, rng)
                    ids = padded_ids(pipe.tokenizer, texts)
                    indices = [
                        (first_piece(pipe.tokenizer, text, a), first_piece(pipe.tokenizer, text, b))
                        for text, (a, b) in zip(texts, pairs, strict=True)
                    ]
                    with torch.no_grad():
                        embeds = pipe.text_encoder(ids.to(device))[0]
                    noisy, t = data_free_batch(ddpm, batch, shape, pipe.vae.config.scaling_factor, generator)
                    noisy = noisy.to(device=device, dtype=dtype)
                    with capture.recording():
                        unet(noisy, t.to(device), encoder_hidden_states=embeds)
                    quirk = cfg.half_batch_quirk
                    maps = sepen_maps(capture, batch, quirk)
                    loss, _ = sepen_loss(
                        maps,
                        [indices[s] for s in map_samples(batch, quirk)],
                        cfg.lambda_sep,
                        cfg.lambda_en,
                    )
                    if cfg.use_norm and cfg.recipe != "large":
                        loss = loss + cfg.norm_weight * self._prior_loss(
                            pipe, trained_on, batch, shape, ddpm, generator, rng, original, params
                        )
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(attn2, cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    if cfg.use_norm and cfg.recipe == "large":
                        prior = cfg.norm_weight * self._prior_loss(
                            pipe, trained_on, batch, shape, ddpm, generator, rng, original, params
                        )
                        prior.backward()
                        torch.nn.utils.clip_grad_norm_(attn2, cfg.max_grad_norm)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                    losses.append(float(loss.detach()))
                    if (step + 1) % cfg.log_every == 0 or step + 1 == steps:
                        log.info("sepen step %d/%d: loss %.5f", step + 1, steps, float(loss.detach()))
                trained = {name: p.detach().cpu().clone() for name, p in params.items()}
            finally:
                capture.remove()
                unet.eval()
                with torch.no_grad():
                    for name, p in params.items():
                        p.copy_(original[name])
        return trained, losses

    def _training_texts(
        self, trained_on: dict[str, Any], batch: int, rng: random.Random
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """The batch's training prompts and their concept pairs."""
        if "pair" in trained_on:
            c1, c2 = trained_on["pair"]
            return [self.cfg.template.format(c1, c2)] * batch, [(c1, c2)] * batch
        texts, pairs = [], []
        for _ in range(batch):
            a, b = rng.sample(list(trained_on["concepts"]), 2)
            connector = rng.choice(list(self.cfg.connectors))
            pairs.append((a, b))
            texts.append(self.cfg.large_template.format(a, connector, b))
        return texts, pairs

    def _prior_loss(
        self,
        pipe: DiffusionPipeline,
        trained_on: dict[str, Any],
        batch: int,
        shape: tuple,
        ddpm: Any,
        generator: Any,
        rng: random.Random,
        original: dict[str, Any],
        params: dict[str, Any],
    ) -> Any:
        """MSE between the finetuned and the original UNet on single-concept prompts (prior preservation)."""
        import torch

        concepts = trained_on.get("concepts") or trained_on["pair"]
        texts = [self.cfg.prior_template.format(rng.choice(concepts)) for _ in range(batch)]
        ids = padded_ids(pipe.tokenizer, texts)
        device, dtype = pipe.unet.device, pipe.unet.dtype
        with torch.no_grad():
            embeds = pipe.text_encoder(ids.to(device))[0]
        noisy, t = data_free_batch(ddpm, batch, shape, pipe.vae.config.scaling_factor, generator)
        noisy = noisy.to(device=device, dtype=dtype)
        with torch.no_grad():
            trained = {name: p.detach().clone() for name, p in params.items()}
            for name, p in params.items():
                p.copy_(original[name])
            target = pipe.unet(noisy, t.to(device), encoder_hidden_states=embeds).sample
            for name, p in params.items():
                p.copy_(trained[name])
        pred = pipe.unet(noisy, t.to(device), encoder_hidden_states=embeds).sample
        return torch.nn.functional.mse_loss(pred.float(), target.float())

    # -- sampling -------------------------------------------------------------------------------
    def sampling_generation(self, generation: dict[str, Any]) -> dict[str, Any]:
        """The official evaluation samples at the method's ``guidance_scale`` (6.0), whatever generation.* says."""
        return {**generation, "guidance_scale": self.cfg.guidance_scale}

    def generate(
        self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]
    ) -> list[Any]:
        import torch

        self.check_pipeline(pipe)
        params = to_k_parameters(pipe.unet)
        original = {name: p.detach().clone() for name, p in params.items()}
        images: list[Any] = [None] * len(prompts)
        groups: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            if prompt.id not in self.weights:
                raise T2IBenchError(f"sepen: prompt {prompt.id} was not prepared (call prepare first)")
            groups.setdefault(id(self.weights[prompt.id]), []).append(i)
        try:
            for members in groups.values():
                tensors = self.weights[prompts[members[0]].id]
                with torch.no_grad():
                    for name, p in params.items():
                        p.copy_(original[name] if tensors is None else tensors[name].to(p))
                out = self.by_generation(
                    [prompts[i] for i in members],
                    [seeds[i] for i in members],
                    lambda ps, ss, gen: plain_sample(pipe, ps, ss, gen),
                )
                for i, image in zip(members, out, strict=True):
                    images[i] = image
        finally:
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(original[name])
        return images
