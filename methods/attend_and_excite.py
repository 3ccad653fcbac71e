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
        loop = _Guidance if self.trace is None else _TracedGuidance
        return loop(self, capture, targets, n_tokens, len(pipe.scheduler.timesteps))


class _Guidance:
    """The loop-iteration hook of one guided batch (steps 1-6 above), made of the official code's three
    operations: :meth:`attend` (a forward and a_s), :meth:`losses_of` (L) and :meth:`update_latent`.
    :class:`_TracedGuidance`, beside it, observes those operations; the algorithm itself records nothing."""

    every_iteration = False  # True: run the cond forward of iterations with nothing to do, as the official code

    def __init__(
        self,
        method: AttendAndExcite,
        capture: CrossAttentionCapture,
        targets: list[list[int]],
        n_tokens: list[int],
        n_steps: int,
    ):
        import numpy as np

        self.method, self.capture, self.targets, self.n_tokens = method, capture, targets, n_tokens
        scale_range = np.linspace(*[float(v) for v in method.cfg.scale_range], n_steps)
        self.step_sizes = [method.cfg.scale_factor * float(np.sqrt(v)) for v in scale_range]  # alpha_i
        self.step = 0  # the loop iteration being guided

    def attend(self, z: Any, t: Any, cond: Any, rows: Sequence[int] | None = None, seen: Any = None) -> list[Any]:
        """a_s of ``z``, the batch's samples ``rows`` (default: all of them), from a forward; or ``seen``, the a_s
        of the forward just run on the same latent (whose graph the gradient then goes through)."""
        if seen is not None:
            return seen
        self.capture.maps_of(z, t, cond)  # the official code discards this forward's noise prediction
        picked = range(len(self.targets)) if rows is None else rows
        return self.method._max_attention(
            self.capture, z.shape[0], [self.targets[r] for r in picked], [self.n_tokens[r] for r in picked]
        )

    def losses_of(self, maxes: list[Any]) -> Any:
        """L of each sample."""
        import torch

        return torch.stack([ae_loss(m) for m in maxes])

    def update_latent(self, z: Any, losses: Any, mask: Any, step_size: float) -> Any:
        """z - alpha dL/dz for the samples in ``mask``."""
        return (z - step_size * self.gradient(z, losses, mask) * mask.view(-1, 1, 1, 1)).detach()

    def gradient(self, z: Any, losses: Any, mask: Any) -> Any:
        import torch

        return torch.autograd.grad((losses * mask).sum(), z)[0]

    def refine(self, z: Any, t: Any, cond: Any, maxes: list[Any], losses: Any, target: float, step_size: float) -> Any:
        """Iterative refinement (step 5) from ``z`` with a_s ``maxes`` and L ``losses``: per sample, one gradient
        step per try while L > ``target``, at most ``max_refinement_steps`` tries; a try forwards only the
        samples still refining (all of them at batch 1)."""
        import torch

        active = losses.detach() > target
        tries = torch.zeros_like(losses, dtype=torch.long)
        reuse = self.method._reuse_first_try
        while bool(active.any()):
            if reuse:  # the first try's forward is the one just run, on the same latent
                reuse = False
                losses = self.losses_of(self.attend(z, t, cond, seen=maxes))
                z = self.update_latent(z, losses, (active & (losses.detach() != 0)).to(z.dtype), step_size)
            else:
                rows = active.nonzero().flatten().tolist()
                sub = z.detach()[rows].requires_grad_(True)
                sub_losses = self.losses_of(self.attend(sub, t, cond[rows], rows))
                sub = self.update_latent(sub, sub_losses, (sub_losses.detach() != 0).to(z.dtype), step_size)
                z, losses = z.detach().clone(), losses.detach().clone()
                z[rows], losses[rows] = sub, sub_losses.detach()
            tries = tries + active.long()
            active = active & (losses.detach() > target) & (tries < self.method.cfg.max_refinement_steps)
        return z.detach()

    def __call__(self, latents: Any, i: int, t: Any, prompt_embeds: Any) -> Any:
        import torch

        cfg, thresholds = self.method.cfg, self.method.thresholds
        refine = i in thresholds
        if i >= cfg.max_iter_to_alter and not refine and not self.every_iteration:
            return latents
        self.step = i
        step_size = self.step_sizes[i]
        cond = prompt_embeds.detach()
        with torch.enable_grad():
            z = latents.detach().requires_grad_(True)
            maxes = self.attend(z, t, cond)
            losses = self.losses_of(maxes)
            target = max(0.0, 1.0 - thresholds[i]) if refine else 0.0
            if refine and bool((losses.detach() > target).any()):
                z = self.refine(z, t, cond, maxes, losses, target, step_size).requires_grad_(True)
                maxes = self.attend(z, t, cond)
                self.losses_of(maxes)  # the official refinement returns this L (recorded when traced)
            if i < cfg.max_iter_to_alter:
                losses = self.losses_of(maxes)  # the official code computes L once more before the update
                z = self.update_latent(z, losses, (losses.detach() != 0).to(z.dtype), step_size)
        return z.detach()


class _TracedGuidance(_Guidance):
    """:class:`_Guidance` observed: every a_s, loss and update goes to the method's ``trace(kind, iteration,
    payload)`` as the official code would print or compute it (``max_attention``, ``loss``, ``update``,
    ``updated_latent``); for the parity tests. Same latents as untraced."""

    every_iteration = True

    def attend(self, z: Any, t: Any, cond: Any, rows: Sequence[int] | None = None, seen: Any = None) -> list[Any]:
        maxes = super().attend(z, t, cond, rows, seen)
        for m in maxes:
            self.method.trace("max_attention", self.step, [float(v) for v in m.detach()])
        return maxes

    def losses_of(self, maxes: list[Any]) -> Any:
        losses = super().losses_of(maxes)
        for loss in losses:
            self.method.trace("loss", self.step, float(loss.detach()))
        return losses

    def gradient(self, z: Any, losses: Any, mask: Any) -> Any:
        self._grad = super().gradient(z, losses, mask)
        return self._grad

    def update_latent(self, z: Any, losses: Any, mask: Any, step_size: float) -> Any:
        moved = super().update_latent(z, losses, mask, step_size)
        for b in range(z.shape[0]):
            if mask[b]:
                loss, grad_norm = float(losses[b].detach()), float(self._grad[b].norm())
                self.method.trace("update", self.step, {"step_size": step_size, "loss": loss, "grad_norm": grad_norm})
                self.method.trace("updated_latent", self.step, moved[b : b + 1].clone())
        return moved
