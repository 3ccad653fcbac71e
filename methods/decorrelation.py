"""Decorrelation (Tong, Zhang, Zhu, Xiao, Kuang, "Decoding Correlation-Induced Misalignment in the Stable
Diffusion Workflow for Text-to-Image Generation", ICCV 2025), from the paper (``../shared/seeds/
002_9dbe0bc49e21389f.txt``, Sections 5-6): its official code (YunzeTong/DecorrelationDiffusion) is not
available, so there is no commit to follow and no parity fixture; ``../shared/reference/methods.md`` §5.

A = the head-averaged, post-softmax (causal) self-attention map of text-encoder layer ``layer`` (11 of SD-1.x's
12; ``text_model.encoder.layers.11.self_attn``), A[i, j] = attention of query token i on key token j; TOK[0] = BOS.
* s_target = the CLIP position of the omitted object (the prompt's ``metadata.target_word``; its first piece);
  S = {s | 1 <= s <= s_target}; s_corr = argmax_{s in S} A[s_target, s] on the pretrained map (the record's
  ``correlated_word`` only checks it: a mismatch is logged).
* Eq. 2: L_train = A[s_target, s_corr] - min(A[s_target, S]); trains that layer's self-attention for
  ``epochs`` (20) epochs.
* Eq. 3: L_corr = log(Ã[s_target, s_corr] / A[s_target, s_target]); Eq. 4: L_align = max A'_diff, A_diff =
  |Ã - A_ref| over the prompt's tokens without the three entries of the focused tokens [s_corr, s_corr],
  [s_target, s_corr], [s_target, s_target]; Eq. 5: L_val = L_corr + tau L_align (tau = 5); the epoch with the
  lowest L_val is kept.
* Eq. 6: eps = (1 + w) eps_finetuned(x_t, t, c) - w eps_pretrained(x_t, t): the finetuned encoder encodes the
  prompt (conditional branch), the pretrained one the empty prompt (unconditional branch), w = 7.5.

Where the paper is silent or ambiguous, a config value (written with every image through the method config):
* ``s_includes_target`` (true = Eq. as printed; false = the words "tokens that precede the target");
* ``corr_denominator``: ``pretrained`` (as printed, no tilde) or ``finetuned`` (if the tilde was lost in print);
* ``align_include_eos`` (false): whether the first end-of-text token belongs to the prompt's map;
* ``w_convention``: ``paper`` (diffusers guidance_scale = 1 + w = 8.5) or ``diffusers`` (guidance_scale = w);
* ``learning_rate``, ``steps_per_epoch``, the optimiser (AdamW, no weight decay): not given in the paper;
* a multi-piece target word uses its first piece.
One finetuned encoder per prompt, cached (the layer's self-attention weights of the selected epoch).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from t2ibench.api import METHODS, Method, apply_scheduler, padded_ids
from t2ibench.api.config import follows, option, stand_in, tiny_preset
from t2ibench.api.method import MethodConfig
from t2ibench.errors import T2IBenchError
from t2ibench.methods._prompt_parse import first_piece, first_word_piece
from t2ibench.models import pipeline_identity
from t2ibench.prompt import Prompt
from t2ibench.seeding import ImageSeed, as_image_seed, initial_latents, latent_shape
from t2ibench.trained_weights import TrainedWeightsCache, training_key

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from t2ibench.run_store import RunStore

log = logging.getLogger(__name__)


# -- the equations (tested on hand-computed matrices) ---------------------------------------------
def target_set(s_target: int, includes_target: bool = True) -> list[int]:
    """S = {1..s_target} (or {1..s_target - 1})."""
    return list(range(1, s_target + 1 if includes_target else s_target))


def choose_s_corr(A: Any, s_target: int, includes_target: bool = True) -> int:
    """argmax over S of A[s_target, s] (the first on ties)."""
    S = target_set(s_target, includes_target)
    if not S:
        raise T2IBenchError("decorrelation: the target is the first token; S is empty")
    row = A[s_target, S]
    return S[int(row.argmax())]


def train_loss(A: Any, s_target: int, s_corr: int, includes_target: bool = True) -> Any:
    """Eq. 2: A[s_target, s_corr] - min(A[s_target, S])."""
    return A[s_target, s_corr] - A[s_target, target_set(s_target, includes_target)].min()


def corr_loss(A_ft: Any, A_pre: Any, s_target: int, s_corr: int, denominator: str = "pretrained") -> float:
    """Eq. 3: log(Ã[s_target, s_corr] / A[s_target, s_target]) (denominator map per ``denominator``)."""
    base = A_pre if denominator == "pretrained" else A_ft
    return math.log(float(A_ft[s_target, s_corr]) / float(base[s_target, s_target]))


def align_mask(n_words: int, s_target: int, s_corr: int, include_eos: bool = False) -> Any:
    """A'_diff's entries: the causal (lower-triangular) map over the prompt's tokens 1..n (BOS row/column and padding
    out), without [s_corr, s_corr], [s_target, s_corr] and [s_target, s_target]."""
    import torch

    last = n_words + (1 if include_eos else 0)
    size = last + 1
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[1:, 1:] = torch.tril(torch.ones(last, last, dtype=torch.bool))
    for i, j in ((s_corr, s_corr), (s_target, s_corr), (s_target, s_target)):
        mask[i, j] = False
    return mask


def align_loss(A_ft: Any, A_ref: Any, mask: Any) -> float:
    """Eq. 4: max over ``mask`` of |Ã - A_ref|."""
    size = mask.shape[0]
    return float((A_ft[:size, :size] - A_ref[:size, :size]).abs()[mask].max())


def select_epoch(validation: Sequence[float]) -> int:
    """The (0-based) index of the lowest L_val (the first on ties)."""
    return min(range(len(validation)), key=lambda i: (validation[i], i))


def guidance_scale(w: float, convention: str = "paper") -> float:
    """diffusers' guidance_scale g for Eq. 6: eps_u + g (eps_c - eps_u) = (1 + w) eps_c - w eps_u when g = 1 + w."""
    if convention == "paper":
        return 1.0 + float(w)
    if convention == "diffusers":
        return float(w)
    raise T2IBenchError(f"decorrelation.w_convention={convention!r}; valid: paper, diffusers")


def self_attention_map(text_encoder: Any, input_ids: Any, layer: int) -> Any:
    """(tokens, tokens): layer ``layer``'s self-attention probabilities averaged over heads, for one prompt."""
    out = text_encoder(input_ids, output_attentions=True)
    return out.attentions[layer][0].mean(0)


def eager_copy(text_encoder: Any) -> Any:
    """A trainable copy of the text encoder whose attention returns probabilities (eager attention)."""
    clone = copy.deepcopy(text_encoder)
    if hasattr(clone, "set_attn_implementation"):
        clone.set_attn_implementation("eager")
    else:  # transformers 4.x
        clone.config._attn_implementation = "eager"
    return clone


def encoder_layers(text_encoder: Any) -> Any:
    """The transformer layers of a CLIP text encoder (transformers 4.x nests them under ``text_model``)."""
    inner = getattr(text_encoder, "text_model", text_encoder)
    return inner.encoder.layers


def self_attention_parameter_names(text_encoder: Any, layer: int) -> list[str]:
    """Names of the self-attention parameters of ``layer`` (``text_model.encoder.layers.11.self_attn.*`` in SD-1.x)."""
    layers = encoder_layers(text_encoder)
    if not -len(layers) <= layer < len(layers):
        raise T2IBenchError(f"decorrelation: the text encoder has no layer {layer} (it has {len(layers)})")
    wanted = {id(p) for p in layers[layer].self_attn.parameters()}
    return [name for name, p in text_encoder.named_parameters() if id(p) in wanted]


@dataclass
class DecorrelationConfig(MethodConfig):
    """From the paper (no official code): the paper's values, and t2ibench's choices where it is silent."""

    name: str = "decorrelation"
    layer: int = stand_in("text_encoder_layer", 11, training=True)  # text_model.encoder.layers.11.self_attn (SD-1.x)
    epochs: int = tiny_preset(20, 2, training=True)  # paper, Sec. 6.1; 2 on the tiny model
    steps_per_epoch: int = tiny_preset(10, 2, training=True)  # not in the paper: t2ibench's choice
    learning_rate: float = option(1.0e-5, training=True)  # not in the paper: t2ibench's choice (AdamW, no decay)
    tau: float = option(5.0, training=True)  # Eq. 5
    s_includes_target: bool = option(True, training=True)  # Eq. as printed S = {1..s_target}; false = the prose
    corr_denominator: str = option("pretrained", training=True)  # Eq. 3 as printed; finetuned if the tilde was lost
    align_include_eos: bool = option(False, training=True)  # the first end-of-text token in A_diff's prompt map
    w: float = 7.5  # Eq. 6
    w_convention: str = "paper"  # paper: eps = (1+w) eps_c - w eps_u (guidance 8.5); diffusers: guidance = w
    seed: int = option(0, training=True)
    preset: str = tiny_preset("official", "tiny", training=True)  # tiny: the tiny model's training preset (README)
    progress: bool = follows("run.progress", True, runtime=True)


@METHODS.register("decorrelation")
class Decorrelation(Method):
    """Decorrelation finetuning and two-encoder sampling (see the module docstring)."""

    name = "decorrelation"
    config_schema = DecorrelationConfig
    supported_pipelines = ("StableDiffusionPipeline",)

    def __init__(self, cfg: dict[str, Any], generation: dict[str, Any]):
        super().__init__(cfg, generation)
        self.weights: dict[str, dict[str, Any]] = {}
        self.selection: dict[str, dict[str, Any]] = {}
        self._working: tuple[Any, Any] | None = None  # (the pipeline's encoder, its finetunable copy)

    def select_items(
        self, items: list[tuple[Prompt, int, Any]], store: RunStore | None
    ) -> list[tuple[Prompt, int, Any]]:
        return self.items_with_metadata(items, "target_word", "a target word (benchmark correlated_pairs or a CSV)")

    def prepare(self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], cache: TrainedWeightsCache) -> None:
        self.check_pipeline(pipe)
        identity = pipeline_identity(pipe)
        layer = self.cfg.layer
        names = set(self_attention_parameter_names(pipe.text_encoder, layer))
        expected = {name: tuple(p.shape) for name, p in pipe.text_encoder.named_parameters() if name in names}
        for prompt in prompts:
            target = prompt.metadata.get("target_word")
            if not target:
                raise T2IBenchError(
                    f"decorrelation needs metadata.target_word (benchmark correlated_pairs or a CSV with target_word); prompt {prompt.id} has none"
                )
            key = training_key(identity, self.training_config(), {"prompt": prompt.text, "target_word": target})

            def train(prompt: Prompt = prompt) -> tuple[dict[str, Any], dict[str, Any]]:
                tensors, info = self.train(pipe, prompt)
                return tensors, {"prompt": prompt.text, **info, "config": self.training_config()}

            tensors, info = cache.load_or_train(self.name, key, expected, train)
            self.weights[prompt.id] = tensors
            self.selection[prompt.id] = {k: info.get(k) for k in ("s_target", "s_corr", "selected_epoch")}

    def train(self, pipe: DiffusionPipeline, prompt: Prompt) -> tuple[dict[str, Any], dict[str, Any]]:
        """Finetune the layer's self-attention on ``prompt`` (Eq. 2) and keep the epoch of lowest L_val (Eq. 5)."""
        import torch
        from tqdm.auto import tqdm

        cfg = self.cfg
        layer = cfg.layer
        includes = cfg.s_includes_target
        torch.manual_seed(cfg.seed)
        encoder = eager_copy(pipe.text_encoder).float().train()
        ids = padded_ids(pipe.tokenizer, prompt.text).to(encoder.device)
        n_words = len(pipe.tokenizer(prompt.text).input_ids) - 2
        s_target = first_piece(pipe.tokenizer, prompt.text, prompt.metadata["target_word"])
        with torch.no_grad():
            A_pre = self_attention_map(encoder, ids, layer)
        s_corr = choose_s_corr(A_pre, s_target, includes)
        corr_word = prompt.metadata.get("correlated_word")
        if corr_word and s_corr != first_word_piece(pipe.tokenizer, prompt.text, corr_word):
            log.warning(
                "decorrelation: %s: the most attended token is %r, not the record's correlated_word %r",
                prompt.id,
                pipe.tokenizer.convert_ids_to_tokens(int(ids[0, s_corr])),
                corr_word,
            )
        names = set(self_attention_parameter_names(encoder, layer))
        params = {name: p for name, p in encoder.named_parameters() if name in names}
        for p in encoder.parameters():
            p.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(list(params.values()), lr=cfg.learning_rate, weight_decay=0.0)
        mask = align_mask(n_words, s_target, s_corr, cfg.align_include_eos)
        tau = cfg.tau
        validation, train_losses, snapshots = [], [], []
        for _epoch in tqdm(
            range(cfg.epochs),
            desc="train decorrelation",
            unit="epoch",
            disable=not cfg.progress,
        ):
            for _ in range(cfg.steps_per_epoch):
                loss = train_loss(self_attention_map(encoder, ids, layer), s_target, s_corr, includes)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                train_losses.append(float(loss.detach()))
            with torch.no_grad():
                A_ft = self_attention_map(encoder, ids, layer)
            value = corr_loss(A_ft, A_pre, s_target, s_corr, cfg.corr_denominator) + tau * align_loss(A_ft, A_pre, mask)
            validation.append(value)
            snapshots.append({name: p.detach().cpu().clone() for name, p in params.items()})
            log.info(
                "decorrelation %s epoch %d: L_train %.5f, L_val %.5f",
                prompt.id,
                len(validation),
                train_losses[-1],
                value,
            )
        best = select_epoch(validation)
        info = {
            "s_target": s_target,
            "s_corr": s_corr,
            "selected_epoch": best + 1,
            "validation": validation,
            "train_losses": train_losses,
        }
        return snapshots[best], info

    def encoders(self, pipe: DiffusionPipeline, prompt: Prompt) -> Any:
        """The finetuned text encoder of ``prompt``: one working copy of the pipeline's encoder (made once per
        pipeline, so the pipeline keeps the pretrained one) with this prompt's layer weights loaded into it."""
        import torch

        if prompt.id not in self.weights:
            raise T2IBenchError(f"decorrelation: prompt {prompt.id} was not prepared (call prepare first)")
        if self._working is None or self._working[0] is not pipe.text_encoder:
            self._working = (pipe.text_encoder, copy.deepcopy(pipe.text_encoder).eval())
        encoder = self._working[1]
        with torch.no_grad():
            for name, p in encoder.named_parameters():
                if name in self.weights[prompt.id]:
                    p.copy_(self.weights[prompt.id][name].to(p))
        return encoder

    def embeddings(self, pipe: DiffusionPipeline, prompts: Sequence[Prompt]) -> tuple[Any, Any]:
        """(conditional embeddings from each prompt's finetuned encoder, unconditional from the pretrained one)."""
        import torch

        device = pipe._execution_device
        with torch.no_grad():
            cond = torch.cat(
                [self.encoders(pipe, p)(padded_ids(pipe.tokenizer, p.text).to(device))[0] for p in prompts]
            )
            uncond = pipe.text_encoder(padded_ids(pipe.tokenizer, "").to(device))[0].expand(len(prompts), -1, -1)
        return cond, uncond

    def sampling_generation(self, generation: dict[str, Any]) -> dict[str, Any]:
        """Eq. 6 samples with the method's ``w`` in its convention (the paper's (1 + w): diffusers guidance 8.5 for
        w = 7.5) and an empty unconditional prompt (no negative prompt)."""
        scale = guidance_scale(self.cfg.w, self.cfg.w_convention)
        return {**generation, "guidance_scale": scale, "negative_prompt": None}

    def generate(
        self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]
    ) -> list[Any]:
        self.check_pipeline(pipe)
        return self.by_generation(prompts, seeds, lambda ps, ss, gen: self._sample(pipe, ps, ss, gen))

    def _sample(
        self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed], gen: dict[str, Any]
    ) -> list[Any]:
        import torch

        apply_scheduler(pipe, gen.get("scheduler"))
        cond, uncond = self.embeddings(pipe, prompts)
        latents = initial_latents(
            [as_image_seed(s) for s in seeds], latent_shape(pipe, gen.get("height"), gen.get("width"))
        )
        scale = float(gen["guidance_scale"])
        with torch.inference_mode():
            out = pipe(
                prompt_embeds=cond.to(pipe.dtype),
                negative_prompt_embeds=uncond.to(pipe.dtype),
                latents=latents.to(device=pipe.device, dtype=pipe.dtype),
                num_inference_steps=int(gen["num_inference_steps"]),
                guidance_scale=scale,
                height=gen.get("height"),
                width=gen.get("width"),
                output_type="pil",
            )
        return list(out.images)
