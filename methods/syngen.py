"""SynGen (Rassin, Hirsch, Glickman, Ravfogel, Goldberg, Chechik, "Linguistic Binding in Diffusion Models:
Enhancing Attribute Correspondence through Attention Map Alignment", NeurIPS 2023), as in the official code
RoyiRa/Linguistic-Binding-in-Diffusion-Models@50b8eab175dc9b31ce9c7c4b2eba28c817fc440e
(``syngen_diffusion_pipeline.py``, ``compute_loss.py``, ``run.py``); ``../shared/reference/methods.md`` §3.

1. Parse: a spaCy dependency parse (``parser``: ``en_core_web_trf`` as the official code, any installed English
   model, or a parse injected in the prompt's ``metadata.parse``) gives (modifier..., noun) groups of CLIP
   positions (:mod:`t2ibench.methods._prompt_parse`: three extractors, word-piece alignment, merging).
2. Maps: A = the mean of the raw cross-attention probabilities (softmax over all 77 tokens, BOS included) over
   every (layer, head) of the 16x16 layers, times 100; each token's 16x16 map is normalised into a spatial
   distribution P (``torch.distributions.Categorical``).
3. Loss (paper Eq. 2-4, summed as in the official code): with symKL(i, j) = (KL(P_i||P_j) + KL(P_j||P_i)) / 2,
   for every group S (noun n = last item, modifiers M) and every m in M:
   pos = symKL(m, n) (max over word-piece pairs for multi-piece words) and
   neg = ( -mean_{o in O} symKL(m, o) - mean_{o in O} symKL(n, o) ) / 2 with O = the prompt positions outside S
   (BOS/EOS excluded; per o, max over the pieces of a multi-piece word); L = sum over S and m of pos + neg.
4. For the first ``num_intervention_steps`` = 25 loop iterations: a conditional-only forward on the unscaled
   latent, and z_t <- z_t - ``step_size`` (20, constant) * dL/dz_t when L != 0; then the usual CFG step.

Official quirks, each a flag (default = official unless it is a plain bug):
* ``reuse_first_prompt_indices`` (default **false**): the official pipeline caches the groups of the first
  prompt forever and reuses them for every later prompt; that is a bug, so indices are recomputed per prompt.
* ``first_noun_only_quirk`` (default true): extractor 3 returns after the first noun, as in the official code.
* ``include_entities`` (default false): the official optional noun-only groups.
* ``batched`` (default false = the official batch-1 behaviour; its batch > 1 path is broken): guides a
  batch at once; per-sample losses are independent, so images equal batch 1 to float tolerance.
Supports SD-1.x/2.x (``StableDiffusionPipeline``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from t2ibench.api import METHODS, Requirements
from t2ibench.api.config import stand_in
from t2ibench.api.method import MethodConfig
from t2ibench.methods._attention import CrossAttentionCapture
from t2ibench.methods._guidance import GuidedMethod, Trace
from t2ibench.methods._prompt_parse import (
    Group,
    attention_map_index_to_wordpiece,
    doc_from_parse,
    flatten,
    parse_text,
    parser_requirements,
    syngen_groups,
)
from t2ibench.prompt import Prompt

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def symmetric_kl(map1: Any, map2: Any) -> Any:
    """(KL(p||q) + KL(q||p)) / 2 of two maps, each normalised over its pixels.

    Computed in float32 whatever the maps' dtype: the official code runs in float32, and ``Categorical`` rejects
    float16 maps (their sum misses 1 by more than its 1e-6 tolerance), so an fp16 pipeline would stop at the first
    guided step. On float32 maps this is the official computation, bit for bit."""
    import torch

    p = torch.distributions.Categorical(probs=map1.reshape(-1).float())
    q = torch.distributions.Categorical(probs=map2.reshape(-1).float())
    return (torch.distributions.kl_divergence(p, q) + torch.distributions.kl_divergence(q, p)) / 2


def _pieces(item: Any) -> list[int]:
    return item if isinstance(item, list) else [item]


def positive_loss(maps: Any, modifier: Any, noun: Any) -> Any:
    """symKL(modifier, noun), the max over word-piece pairs."""
    return max(
        symmetric_kl(maps[:, :, s], maps[:, :, d]) for s, d in itertools.product(_pieces(modifier), _pieces(noun))
    )


def _outside_terms(maps: Any, source: Any, outside: Sequence[int]) -> list[Any]:
    return [max(symmetric_kl(maps[:, :, s], maps[:, :, o]) for s in _pieces(source)) for o in outside]


def negative_loss(maps: Any, modifier: Any, noun: Any, group: Group, positions: Sequence[int]) -> Any:
    """( -mean_o symKL(m, o) - mean_o symKL(n, o) ) / 2 over the positions outside the group."""
    inside = set(flatten(group))
    outside = [i for i in positions if i not in inside]
    modifier_term = -sum(_outside_terms(maps, modifier, outside)) / len(outside)
    noun_term = -sum(_outside_terms(maps, noun, outside)) / len(outside)
    return (modifier_term + noun_term) / 2


def syngen_loss(maps: Any, groups: Sequence[Group], positions: Sequence[int]) -> Any:
    """The SynGen loss of one aggregated map (res, res, 77) already multiplied by 100 (0 without groups)."""
    loss: Any = 0
    for group in groups:
        noun, modifiers = group[-1], group[:-1]
        pos = sum(positive_loss(maps, m, noun) for m in modifiers)
        neg = sum(negative_loss(maps, m, noun, group, positions) for m in modifiers)
        loss = loss + pos + neg
    return loss


@dataclass
class SynGenConfig(MethodConfig):
    """The official defaults of RoyiRa/Linguistic-Binding-in-Diffusion-Models@50b8eab."""

    name: str = "syngen"
    step_size: float = 20.0  # constant, no decay
    num_intervention_steps: int = 25  # of 50
    attention_res: int = 16
    parser: str = stand_in("parser", "en_core_web_trf")  # en_core_web_trf as the official code, or any English model
    include_entities: bool = False
    first_noun_only_quirk: bool = True  # official: extractor 3 stops after the first noun
    reuse_first_prompt_indices: bool = False  # official bug (indices of the first prompt reused forever): off
    batched: bool = False  # true: guide a whole batch at once (same images to float tolerance)


@METHODS.register("syngen")
class SynGen(GuidedMethod):
    """SynGen guidance (see the module docstring). ``trace(kind, step, payload)`` records events."""

    name = "syngen"
    config_schema = SynGenConfig

    def __init__(
        self,
        cfg: dict[str, Any],
        generation: dict[str, Any],
        trace: Trace | None = None,
        parser: Callable[[str], Any] | None = None,
    ):
        super().__init__(cfg, generation)
        self.trace = trace
        self.parser = parser
        self._first_groups: list[Group] | None = None

    def required_weights(self) -> Requirements:
        return parser_requirements(self.cfg.parser)

    def groups(self, pipe: DiffusionPipeline, prompt: Prompt) -> list[Group]:
        """The (modifier..., noun) groups of ``prompt`` as CLIP positions."""
        if self.cfg.reuse_first_prompt_indices and self._first_groups is not None:
            return self._first_groups
        if prompt.metadata.get("parse"):
            doc = doc_from_parse(prompt.metadata["parse"])
        elif self.parser is not None:
            doc = self.parser(prompt.text)
        else:
            doc = parse_text(self.cfg.parser, prompt.text)
        groups = syngen_groups(
            doc,
            pipe.tokenizer,
            prompt.text,
            self.cfg.include_entities,
            self.cfg.first_noun_only_quirk,
        )
        if self._first_groups is None:
            self._first_groups = groups
        return groups

    def _hook(
        self,
        pipe: DiffusionPipeline,
        capture: CrossAttentionCapture,
        groups: list[list[Group]],
        positions: list[list[int]],
    ) -> Callable:
        import torch

        steps = self.cfg.num_intervention_steps
        step_size = self.cfg.step_size
        trace = self.trace

        def hook(latents: Any, i: int, t: Any, prompt_embeds: Any) -> Any:
            if i >= steps:
                return latents
            with torch.enable_grad():
                z = latents.detach().requires_grad_(True)
                maps = capture.maps_of(z, t, prompt_embeds.detach()).mean_map(z.shape[0]) * 100
                losses = [syngen_loss(maps[b], groups[b], positions[b]) for b in range(z.shape[0])]
                live = [loss for loss in losses if torch.is_tensor(loss) and bool(loss != 0)]
                grad = torch.autograd.grad(sum(live), z)[0] if live else torch.zeros_like(z)
                if trace is not None:
                    for b, loss in enumerate(losses):
                        trace("loss", i, float(loss.detach()) if torch.is_tensor(loss) else float(loss))
                        trace("update", i, {"step_size": step_size, "grad_norm": float(grad[b].norm())})
                z = (z - step_size * grad).detach()
                if trace is not None:
                    for b, loss in enumerate(losses):
                        if torch.is_tensor(loss) and bool(loss != 0):
                            trace("updated_latent", i, z[b : b + 1].clone())
                return z

        return hook

    def make_hook(
        self,
        pipe: DiffusionPipeline,
        capture: CrossAttentionCapture,
        prompts: Sequence[Prompt],
        generation: Mapping[str, Any],
    ) -> Callable:
        groups = [self.groups(pipe, p) for p in prompts]
        if self.trace is not None:
            for g in groups:
                self.trace("groups", -1, g)
        positions = [list(attention_map_index_to_wordpiece(pipe.tokenizer, p.text)) for p in prompts]
        return self._hook(pipe, capture, groups, positions)
