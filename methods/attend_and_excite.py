"""Attend-and-Excite (Chefer, Alaluf, Vinker, Wolf, Cohen-Or, "Attend-and-Excite: Attention-Based Semantic
Guidance for Text-to-Image Diffusion Models", SIGGRAPH 2023), as in the official code
yuval-alaluf/Attend-and-Excite@163efdfd341bf3590df3c0c2b582935fbc8e8343 (``pipeline_attend_and_excite.py``,
``utils/ptp_utils.py``, ``utils/gaussian_smoothing.py``, ``config.py``); ``../shared/reference/methods.md`` §2.

Per loop iteration i of N (N = number of scheduler timesteps, 51 for PNDM at 50 steps):
1. a conditional-only UNet forward on the unscaled latent z_t, with gradients; A = the mean of the raw
   cross-attention probabilities over every (layer, head) of the 16x16 layers, (16, 16, 77);
2. ``softmax(100 * A[..., 1:-1])`` over tokens (SD-1.x keeps padding inside the softmax; ``sd_2_1`` slices
   to the prompt's tokens instead); target indices shift by -1;
3. a_s = max over pixels of the map of token s after reflect padding and a 3x3 "Gaussian" whose 1-D weights
   are exp(-((x - 1) / (2 sigma))^2) normalised (sigma 0.5: [0.2119, 0.5761, 0.2119]; the official kernel);
4. loss L = max_s max(0, 1 - a_s) (paper Eq. 1-2);
5. at i in ``thresholds`` {0: 0.05, 10: 0.5, 20: 0.8}: while the loss of the current latent exceeds 1 - thr,
   one forward + gradient step (at most ``max_refinement_steps`` = 20 tries), then one more forward to
   recompute the loss (iterative refinement, paper §3.2);
6. for i < ``max_iter_to_alter`` (25) and L != 0: z_t <- z_t - alpha_i dL/dz_t with
   alpha_i = ``scale_factor`` * sqrt(linspace(1.0, 0.5, N)[i]) (20 -> 14.1);
7. the usual classifier-free-guidance step on the updated z_t.

Target tokens (CLIP positions, BOS = 0): the prompt's ``metadata.token_indices``, else its
``metadata.subject_words`` aligned to CLIP word pieces (the first piece of a multi-piece word), else the
nouns of a spaCy parse (``parser``). Deviations, each behind a flag whose default is the official behaviour:
``batched`` (default false: one prompt at a time, as the official pipeline) guides a whole batch at once with
per-sample refinement: a try forwards only the samples still refining, so a batch does the work of its prompts run
one by one (plus the loss-recomputing forward of a sample already within the threshold, where another refines).
Without effect on outputs: the refinement loop's two unused no-grad UNet calls per try are not run; its first try
reuses the forward the iteration has just run on the same latent instead of running it again; the cond forward of
iterations past ``max_iter_to_alter`` is skipped unless tracing. Supports SD-1.x/2.x (``StableDiffusionPipeline``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from t2ibench.api import METHODS, Requirements
from t2ibench.api.config import option, stand_in, tiny_preset
from t2ibench.api.method import MethodConfig
from t2ibench.errors import T2IBenchError
from t2ibench.methods._attention import CrossAttentionCapture, smoothing_kernel
from t2ibench.methods._guidance import GuidedMethod, Trace
from t2ibench.methods._prompt_parse import (
    _Word,
    align_groups,
    extract_entities,
    parse_text,
    parser_requirements,
    word_pieces,
)
from t2ibench.prompt import Prompt

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def max_attention_per_token(
    maps: Any,
    indices: Sequence[int],
    last: int | None = -1,
    smooth: bool = True,
    kernel_size: int = 3,
    sigma: float = 0.5,
) -> Any:
    """a_s for each CLIP position in ``indices`` from one aggregated map (res, res, 77); steps 2-3 above."""
    import torch
    import torch.nn.functional as F

    text = torch.softmax(maps[:, :, 1:last] * 100, dim=-1)
    images = torch.stack([text[:, :, i - 1] for i in indices]).unsqueeze(1)  # (K, 1, res, res)
    if smooth:
        images = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="reflect"), smoothing_kernel(kernel_size, sigma).to(images))
    return images.flatten(1).max(dim=1).values


def ae_loss(max_attention: Any) -> Any:
    """L = max_s max(0, 1 - a_s)."""
    return (1.0 - max_attention).clamp(min=0).max()


@dataclass
class AttendAndExciteConfig(MethodConfig):
    """The official defaults of yuval-alaluf/Attend-and-Excite@163efdf (``config.py``)."""

    name: str = "attend_and_excite"
    max_iter_to_alter: int = 25  # gradient updates on the first 25 loop iterations
    scale_factor: float = 20.0  # alpha_i = scale_factor * sqrt(linspace(scale_range, N)[i])
    scale_range: list[float] = option(factory=lambda: [1.0, 0.5])
    thresholds: dict[int, float] = option(factory=lambda: {0: 0.05, 10: 0.5, 20: 0.8})  # iteration -> threshold
    max_refinement_steps: int = tiny_preset(20, 3)  # 3 on the tiny random model, whose maps never reach the thresholds
    attention_res: int = 16  # 16x16 cross-attention maps (SD-1.x at 512 px, the tiny model at 256 px)
    smooth_attentions: bool = True
    sigma: float = 0.5
    kernel_size: int = 3
    sd_2_1: bool = False  # true: drop EOT and padding before the x100 softmax (the SD-2.1 path)
    parser: str = stand_in("parser", "en_core_web_trf")  # only when a prompt has no token_indices / subject_words
    preset: str = tiny_preset("official", "tiny")  # which values above apply (tiny: the tiny model's preset, README)
    batched: bool = False  # true: guide a whole batch at once (same images to float tolerance)


@METHODS.register("attend_and_excite")
class AttendAndExcite(GuidedMethod):
    """Attend-and-Excite guidance (see the module docstring). ``trace(kind, step, payload)`` records events."""

    name = "attend_and_excite"
    config_schema = AttendAndExciteConfig
    # The official refinement loop starts with a forward on the latent the iteration's forward has just seen:
    # same input, same maps and loss (the forwards are deterministic), so that forward's graph is reused. False
    # runs it again, as the official code does (tests compare both: the same bits).
    _reuse_first_try = True

    def __init__(self, cfg: dict[str, Any], generation: dict[str, Any], trace: Trace | None = None):
        super().__init__(cfg, generation)
        self.trace = trace
        self.thresholds = {int(k): float(v) for k, v in (self.cfg.thresholds or {}).items()}

    def required_weights(self) -> Requirements:
        return parser_requirements(self.cfg.parser)

    # -- targets --------------------------------------------------------------------------------
    def token_indices(self, pipe: DiffusionPipeline, prompt: Prompt) -> list[int]:
        meta = prompt.metadata
        if meta.get("token_indices"):
            return [int(i) for i in meta["token_indices"]]
        pieces = word_pieces(pipe.tokenizer, prompt.text)
        if meta.get("subject_words"):
            words = [[_Word(w)] for w in meta["subject_words"]]
        else:
            words = extract_entities(parse_text(self.cfg.parser, prompt.text))
        aligned = [group[0] for group in align_groups(pieces, words)]
        indices = [item[0] if isinstance(item, list) else item for item in aligned]
        if not indices:
            raise T2IBenchError(
                f"attend_and_excite: no target token found in {prompt.text!r}; give metadata.token_indices or subject_words"
            )
        return indices

    # -- guidance -------------------------------------------------------------------------------
    def _max_attention(
        self, capture: CrossAttentionCapture, batch: int, targets: Sequence[Sequence[int]], n_tokens: Sequence[int]
    ) -> list[Any]:
        maps = capture.mean_map(batch)
        out = []
        for b in range(batch):
            last = n_tokens[b] + 1 if self.cfg.sd_2_1 else -1
            out.append(
                max_attention_per_token(
                    maps[b],
                    targets[b],
                    last,
                    self.cfg.smooth_attentions,
                    self.cfg.kernel_size,
                    self.cfg.sigma,
                )
            )
        return out

    def _hook(
        self,
        pipe: DiffusionPipeline,
        capture: CrossAttentionCapture,
        targets: list[list[int]],
        n_tokens: list[int],
        n_steps: int,
    ) -> Callable:
        import numpy as np
        import torch

        scale_range = np.linspace(*[float(v) for v in self.cfg.scale_range], n_steps)
        scale_factor = self.cfg.scale_factor
        max_iter = self.cfg.max_iter_to_alter
        max_tries = self.cfg.max_refinement_steps
        trace = self.trace

        def emit(maxes: list[Any], losses: Any) -> None:
            if trace is not None:
                for m, loss in zip(maxes, losses, strict=True):
                    trace("max_attention", current_step[0], [float(v) for v in m.detach()])
                    trace("loss", current_step[0], float(loss.detach()))

        def forward(z: Any, t: Any, cond: Any, rows: Sequence[int] | None = None) -> tuple[Any, list[Any]]:
            """Losses and a_s of ``z``, the batch's samples ``rows`` (default: all of them)."""
            capture.maps_of(z, t, cond)  # the official code discards this forward's noise prediction
            picked = range(len(targets)) if rows is None else rows
            maxes = self._max_attention(
                capture, z.shape[0], [targets[r] for r in picked], [n_tokens[r] for r in picked]
            )
            losses = torch.stack([ae_loss(m) for m in maxes])
            emit(maxes, losses)
            return losses, maxes

        def update(z: Any, losses: Any, mask: Any, step_size: float) -> Any:
            grad = torch.autograd.grad((losses * mask).sum(), z)[0]
            if trace is not None:
                for b in range(z.shape[0]):
                    if mask[b]:
                        trace(
                            "update",
                            current_step[0],
                            {
                                "step_size": step_size,
                                "loss": float(losses[b].detach()),
                                "grad_norm": float(grad[b].norm()),
                            },
                        )
            z = (z - step_size * grad * mask.view(-1, 1, 1, 1)).detach()
            if trace is not None:
                for b in range(z.shape[0]):
                    if mask[b]:
                        trace("updated_latent", current_step[0], z[b : b + 1].clone())
            return z

        current_step = [0]

        def hook(latents: Any, i: int, t: Any, prompt_embeds: Any) -> Any:
            refine = i in self.thresholds
            if i >= max_iter and not refine and trace is None:
                return latents
            current_step[0] = i
            step_size = scale_factor * float(np.sqrt(scale_range[i]))
            cond = prompt_embeds.detach()
            with torch.enable_grad():
                z = latents.detach().requires_grad_(True)
                losses, maxes = forward(z, t, cond)
                if refine:
                    target = max(0.0, 1.0 - self.thresholds[i])
                    active = losses.detach() > target
                    if bool(active.any()):
                        tries = torch.zeros_like(losses, dtype=torch.long)
                        reuse = self._reuse_first_try
                        while bool(active.any()):
                            if reuse:  # the first try's forward is the one just run, on the same latent
                                reuse = False
                                emit(maxes, losses)
                                z = update(z, losses, (active & (losses.detach() != 0)).to(z.dtype), step_size)
                            else:  # a forward of the samples still refining only (all of them at batch 1)
                                rows = active.nonzero().flatten().tolist()
                                sub = z.detach()[rows].requires_grad_(True)
                                sub_losses, maxes = forward(sub, t, cond[rows], rows)
                                sub = update(sub, sub_losses, (sub_losses.detach() != 0).to(z.dtype), step_size)
                                z, losses = z.detach().clone(), losses.detach().clone()
                                z[rows], losses[rows] = sub, sub_losses.detach()
                            tries = tries + active.long()
                            active = active & (losses.detach() > target) & (tries < max_tries)
                        z = z.detach().requires_grad_(True)
                        losses, _ = forward(z, t, cond)
                if i < max_iter:
                    if trace is not None:
                        for loss in losses:
                            trace("loss", i, float(loss.detach()))
                    z = update(z, losses, (losses.detach() != 0).to(z.dtype), step_size)
            return z.detach()

        return hook

    def make_hook(
        self,
        pipe: DiffusionPipeline,
        capture: CrossAttentionCapture,
        prompts: Sequence[Prompt],
        generation: Mapping[str, Any],
    ) -> Callable:
        targets = [self.token_indices(pipe, p) for p in prompts]
        n_tokens = [len(pipe.tokenizer(p.text).input_ids) - 2 for p in prompts]
        pipe.scheduler.set_timesteps(int(generation["num_inference_steps"]))
        return self._hook(pipe, capture, targets, n_tokens, len(pipe.scheduler.timesteps))
