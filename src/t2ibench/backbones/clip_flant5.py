"""Vision-language models for the alignment evaluators: the CLIP-FlanT5 VQAScore model, re-implemented from the
specification of ``../shared/reference/evaluators.md`` §1.2 (t2v_metrics v3.0 @7c06208 behaviour; no code copied),
and the answer-probability rules of t2v-metrics 3.0.

CLIP-FlanT5 (``zhiqiulin/clip-flant5-xxl``, the VQAScore paper's default): a ``T5ForConditionalGeneration`` whose
encoder input is ``[system USER: </s>] [image patch features] [\\n question ASSISTANT: </s>]`` (the prompt is split at
``<image>`` and each chunk is tokenised separately, so each ends in ``</s>``); image features are the CLIP vision
tower's penultimate-layer patch tokens (``mm_vision_select_layer`` -2, no CLS) through ``mm_projector``
(``mlp2x_gelu``); images are padded to a square with the CLIP mean colour, then resized to 336 and centre-cropped.
The checkpoint layout is that of t2v_metrics' ``CLIPT5ForConditionalGeneration``: T5 keys, ``mm_projector.{0,2}.*``
and ``vision_tower.vision_tower.*`` (a ``CLIPVisionModel``; loaded from ``mm_vision_tower`` when absent).
The T5 tokenizer of ``google/flan-t5-xxl`` (``model_max_length`` 2048: longer question ids are cut there, as
t2v-metrics cuts them) is used; the pad colour is ``int(255 * mean)`` (truncated, as the reference).

What the reference does to the loaded checkpoint, and t2ibench after it:

* **The vocabulary scored over is the tokenizer's.** t2v-metrics' ``load_pretrained_model`` (``mm_utils.py``) calls
  ``model.resize_token_embeddings(len(tokenizer))``. Flan-T5 keeps 32,128 embedding and LM-head rows for a
  32,100-token tokenizer and its head is untied, so transformers cuts both to the first 32,100 rows and P("Yes") is a
  softmax over those; the 28 rows no token maps to take no mass. :func:`score_over_tokenizer_vocabulary` cuts them
  alike. A tokenizer *longer* than the checkpoint would make the reference add randomly initialised rows, so that
  pair is refused.
* **The shared embeddings under every name.** ``CLIPT5ForConditionalGeneration`` keeps ``self.embed_tokens =
  self.encoder.embed_tokens``, so a state dict saved by torch.save (the training code's transformers) holds the one
  tensor as ``shared``, ``encoder.embed_tokens``, ``decoder.embed_tokens`` and ``embed_tokens``; transformers 4.49's
  ``save_pretrained`` keeps ``shared`` alone. Both load (the aliases must equal ``shared``).
* **Pad tokens are not attended to.** The reference's attention mask is ``input_ids != pad_token_id``, so a text
  whose tokens include the pad id (a literal ``<pad>``) has those positions masked; t2ibench masks them too.
* **Precision.** The reference casts the model to bfloat16 and runs its forward under ``torch.autocast("cuda",
  bfloat16)``; on a CPU that cast fails at the projector (float32 features into bfloat16 weights: t2v-metrics gives
  no CPU number). t2ibench's default (``dtype: null``) is the reference's on CUDA (bfloat16 weights and the same
  autocast) and float32 on a CPU; ``dtype`` overrides it (README, "Evaluator parity", for the measured effect).

Equal to t2v-metrics 3.0's ``CLIPT5Model`` on tiny checkpoints saved the way ``zhiqiulin/clip-flant5-xxl`` was (its
vocabulary padding, untied head, ``.bin`` shards with and without the aliases) and loaded by hub id from an offline
Hugging Face cache (``tests/test_reference_parity.py``).

Rules (``rule``): ``geometric`` = exp(-mean cross-entropy) over the answer tokens including ``</s>`` (CLIP-FlanT5,
LLaVA: about sqrt(P(Yes)) since P(</s>|Yes) ~ 1; not a Yes/No softmax); ``first_token`` = softmax over the vocabulary
of the first generated step, probability of the first token of the answer (Qwen2-VL in v3.0).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from t2ibench.errors import T2IBenchError

log = logging.getLogger(__name__)

SYSTEM_MESSAGE = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
IMAGE_PLACEHOLDER = "<image>"


def geometric_answer_probability(logits: Any, labels: Any) -> Any:
    """exp(-mean CE) per sample over the label positions that are not -100 (logits (B, L, V), labels (B, L))."""
    import torch

    log_probs = torch.log_softmax(logits.float(), dim=-1)
    mask = labels != -100
    picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    mean_nll = -(picked * mask).sum(-1) / mask.sum(-1)
    return torch.exp(-mean_nll)


def first_token_probability(scores: Any, token_id: int) -> Any:
    """softmax over the vocabulary of the first generated step's scores (B, V), at ``token_id``."""
    import torch

    return torch.softmax(scores.float(), dim=-1)[:, token_id]


def expand2square(image: Any, color: tuple[int, int, int]) -> Any:
    """Pad a PIL image to a square with ``color``, centred (LLaVA's ``expand2square``)."""
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), color)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


class TowerVLM:
    """A language model fed by a CLIP tower through a projector (CLIP-FlanT5, LLaVA-1.5): LLaVA's image features."""

    def __init__(
        self, language: Any, vision: Any, projector: Any, tokenizer: Any, image_processor: Any, select_layer: int = -2
    ):
        self.language, self.vision, self.projector = language.eval(), vision.eval(), projector.eval()
        self.tokenizer, self.image_processor, self.select_layer = tokenizer, image_processor, select_layer

    @property
    def device(self) -> Any:
        return next(self.language.parameters()).device

    def to(self, device: str, dtype: Any = None) -> TowerVLM:
        for module in (self.language, self.vision, self.projector):
            module.to(device=device, dtype=dtype)
        return self

    def precision(self) -> Any:
        """The reference's forward context: ``torch.autocast("cuda", bfloat16)`` for a bfloat16 model on CUDA (t2v-metrics
        decorates its forward with it), none otherwise."""
        import contextlib

        import torch

        dtype = next(self.language.parameters()).dtype
        if self.device.type == "cuda" and dtype == torch.bfloat16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def image_features(self, images: list[Any]) -> Any:
        """(B, patches, hidden) projected penultimate-layer patch features of PIL images, padded to a square first."""
        # the reference truncates (int(x * 255): (122, 116, 104) for CLIP), it does not round
        mean = tuple(int(255 * v) for v in self.image_processor.image_mean)
        squared = [expand2square(image.convert("RGB"), mean) for image in images]
        pixels = self.image_processor(images=squared, return_tensors="pt")["pixel_values"].to(
            self.device, next(self.vision.parameters()).dtype
        )
        hidden = self.vision(pixels, output_hidden_states=True).hidden_states[self.select_layer][:, 1:]
        return self.projector(hidden)


class CLIPFlanT5(TowerVLM):
    """The CLIP-FlanT5 VQAScore model (see the module docstring)."""

    @property
    def t5(self) -> Any:
        return self.language

    def encoder_inputs(self, features: Any, questions: list[str]) -> tuple[Any, Any]:
        """(inputs_embeds, attention_mask) of ``system USER: <image>\\n question ASSISTANT: `` per sample, right padded."""
        import torch

        embed = self.t5.get_input_embeddings()
        pad = self.tokenizer.pad_token_id
        rows, keep = [], []
        for feature, question in zip(features, questions, strict=True):
            prompt = f"{SYSTEM_MESSAGE} USER: {IMAGE_PLACEHOLDER}\n{question} ASSISTANT: "
            before, after = prompt.split(IMAGE_PLACEHOLDER)
            head, tail = (self.tokenizer(chunk).input_ids for chunk in (before, after))
            # t2v-metrics cuts the joined ids (the image placeholder is one of them) at model_max_length (2048), so a
            # long text loses its end, "ASSISTANT: </s>" included
            limit = int(self.tokenizer.model_max_length)
            if len(head) + 1 + len(tail) > limit:
                if len(head) + 1 > limit:
                    raise T2IBenchError(f"clip-flant5: the prompt before the image is over {limit} tokens")
                log.warning("clip-flant5: a question of %d tokens was cut to %d", len(head) + 1 + len(tail), limit)
                tail = tail[: limit - len(head) - 1]
            ids = [torch.tensor(chunk, device=self.device) for chunk in (head, tail)]
            rows.append(torch.cat([embed(ids[0]), feature.to(embed.weight.dtype), embed(ids[1])]))
            # the reference's mask is input_ids != pad id: a pad id in the text is masked where it stands
            keep.append(
                torch.cat(
                    [ids[0] != pad, torch.ones(len(feature), dtype=torch.bool, device=self.device), ids[1] != pad]
                )
            )
        length = max(r.shape[0] for r in rows)
        embeds = torch.zeros(len(rows), length, rows[0].shape[-1], dtype=rows[0].dtype, device=self.device)
        mask = torch.zeros(len(rows), length, dtype=torch.long, device=self.device)
        for i, row in enumerate(rows):
            embeds[i, : row.shape[0]] = row
            mask[i, : row.shape[0]] = keep[i].long()
        return embeds, mask

    def answer_probability(
        self, images: list[Any], questions: list[str], answer: str = "Yes", rule: str | None = None
    ) -> list[float]:
        """The ``geometric`` rule (the only one of this family): exp(-mean CE) over the tokens of ``answer`` and
        ``</s>`` (teacher forced)."""
        import torch

        if rule not in (None, "geometric"):
            raise T2IBenchError(f"the clip-flant5 family supports rule=geometric only, not {rule!r}")
        with torch.no_grad(), self.precision():
            embeds, mask = self.encoder_inputs(self.image_features(images), questions)
            label = torch.tensor(self.tokenizer(answer).input_ids, device=self.device)
            labels = label.unsqueeze(0).repeat(len(questions), 1)
            decoder_input_ids = self.t5._shift_right(labels)  # teacher forcing, as passing labels does
            logits = self.t5(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder_input_ids).logits
            return geometric_answer_probability(logits, labels).tolist()

    def generate(
        self, images: list[Any], question: str, max_new_tokens: int = 64, stop: str | None = None
    ) -> list[str]:
        """Greedy answers (captions) to ``question`` about each image, cut at ``stop`` when given."""
        import torch

        with torch.no_grad(), self.precision():
            embeds, mask = self.encoder_inputs(self.image_features(images), [question] * len(images))
            out = self.t5.generate(
                inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
            )
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [(text.split(stop)[0] if stop else text).strip() for text in texts]

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        where: str,
        revision: str | None = None,
        tokenizer: str = "google/flan-t5-xxl",
        dtype: str = "bfloat16",
        device: str = "cpu",
    ) -> CLIPFlanT5:
        """Load the t2v_metrics checkpoint layout from a hub id (at ``revision``) or a local folder."""
        import torch
        from transformers import (
            CLIPVisionConfig,
            CLIPVisionModel,
            T5Config,
            T5ForConditionalGeneration,
            T5Tokenizer,
        )

        from t2ibench.tiny_models import clip_image_processor

        try:
            folder = Path(where) if Path(where).is_dir() else _download(where, revision)
            config = json.loads((folder / "config.json").read_text())
            state = _load_state_dict(folder)
            t5_tokenizer = (
                T5Tokenizer.from_pretrained(tokenizer, model_max_length=2048)
                if tokenizer != "local"
                else T5Tokenizer.from_pretrained(folder)
            )
        except OSError as err:
            raise T2IBenchError(
                f"VQAScore model {where}@{revision or 'main'} is not available offline ({str(err).splitlines()[0]}); download it (and "
                f"{tokenizer}) with `huggingface-cli download` where there is internet and set the evaluator's model to the local folder"
            ) from None
        t5_config = T5Config(
            **{k: v for k, v in config.items() if k not in ("model_type", "architectures", "auto_map")}
        )
        t5 = T5ForConditionalGeneration(t5_config)
        if "lm_head.weight" in state and config.get("tie_word_embeddings") is False:
            # Flan-T5 (T5 v1.1) has its own LM head; transformers 5 ties lm_head to the shared embeddings whatever the
            # config says, so loading both keys would overwrite the embeddings with the head. Untie first.
            t5.lm_head.weight = torch.nn.Parameter(t5.lm_head.weight.detach().clone())
        t5_keys = _shared_embeddings(
            {k: v for k, v in state.items() if not k.startswith(("vision_tower.", "mm_projector."))}, where
        )
        missing, unexpected = t5.load_state_dict(t5_keys, strict=False)
        if [k for k in missing if "embed_tokens" not in k and k != "lm_head.weight"] or unexpected:
            raise T2IBenchError(
                f"{where}: not a CLIP-FlanT5 checkpoint (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        score_over_tokenizer_vocabulary(t5, len(t5_tokenizer), where)
        vision_keys = {
            k[len("vision_tower.vision_tower.") :]: v
            for k, v in state.items()
            if k.startswith("vision_tower.vision_tower.")
        }
        vision_name = config.get("mm_vision_tower", "openai/clip-vit-large-patch14-336")
        if vision_keys:
            vision = (
                CLIPVisionModel(CLIPVisionConfig(**config["vision_config"]))
                if "vision_config" in config
                else CLIPVisionModel.from_pretrained(vision_name)
            )
            vision.load_state_dict(_match_prefix(vision_keys, vision.state_dict()))
        else:
            vision = CLIPVisionModel.from_pretrained(vision_name)
        projector = build_projector(
            config.get("mm_projector_type", "mlp2x_gelu"), int(config["mm_hidden_size"]), int(config["d_model"])
        )
        projector.load_state_dict(
            {k[len("mm_projector.") :]: v for k, v in state.items() if k.startswith("mm_projector.")}
        )
        processor = clip_image_processor(int(vision.config.image_size))
        model = cls(t5, vision, projector, t5_tokenizer, processor, int(config.get("mm_vision_select_layer", -2)))
        return model.to(device, getattr(torch, dtype))


EMBEDDING_ALIASES = ("embed_tokens.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def _shared_embeddings(state: dict[str, Any], where: str) -> dict[str, Any]:
    """``state`` with the aliases of T5's shared embeddings (:data:`EMBEDDING_ALIASES`, written by a torch.save of the
    whole state dict) folded into ``shared.weight``; an alias that differs from it is refused."""
    import torch

    out = dict(state)
    for alias in EMBEDDING_ALIASES:
        if alias not in out:
            continue
        value = out.pop(alias)
        if "shared.weight" not in out:
            out["shared.weight"] = value
        elif not torch.equal(value, out["shared.weight"]):
            raise T2IBenchError(f"{where}: {alias} differs from shared.weight (they are one tensor in CLIP-FlanT5)")
    return out


def score_over_tokenizer_vocabulary(model: Any, length: int, where: str) -> None:
    """Cut ``model``'s input embeddings and (untied) LM head to the tokenizer's ``length`` rows, as t2v-metrics'
    ``model.resize_token_embeddings(len(tokenizer))`` does, so that the answer softmax runs over the same rows. A
    tokenizer longer than the checkpoint is refused: the reference would add randomly initialised rows."""
    import torch

    embed = model.get_input_embeddings()
    rows, width = embed.weight.shape
    if length == rows:
        return
    if length > rows:
        raise T2IBenchError(
            f"{where}: the tokenizer has {length} tokens, the checkpoint {rows} embedding rows; t2v-metrics would add "
            f"{length - rows} randomly initialised rows, so no score is reproducible: use the checkpoint's tokenizer"
        )
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    cut = torch.nn.Embedding(
        length, width, padding_idx=embed.padding_idx, device=embed.weight.device, dtype=embed.weight.dtype
    )
    cut.weight = torch.nn.Parameter(embed.weight.detach()[:length].clone())
    model.set_input_embeddings(cut)
    if head is not None and head.weight.shape[0] == rows:
        new_head = torch.nn.Linear(
            width, length, bias=head.bias is not None, device=head.weight.device, dtype=head.weight.dtype
        )
        new_head.weight = cut.weight if tied else torch.nn.Parameter(head.weight.detach()[:length].clone())
        if head.bias is not None:
            new_head.bias = torch.nn.Parameter(head.bias.detach()[:length].clone())
        model.set_output_embeddings(new_head)
    model.config.vocab_size = length
    log.info(
        "%s: vocabulary cut from %d to the tokenizer's %d rows (as t2v-metrics' resize_token_embeddings)",
        where,
        rows,
        length,
    )


def build_projector(kind: str, in_dim: int, out_dim: int) -> Any:
    """``mlp{N}x_gelu`` (Linear, then (GELU, Linear) x N-1) or ``linear``."""
    import re

    import torch

    if kind == "linear":
        return torch.nn.Linear(in_dim, out_dim)
    match = re.fullmatch(r"mlp(\d+)x_gelu", kind)
    if not match:
        raise T2IBenchError(f"unknown projector type {kind!r}")
    layers: list[Any] = [torch.nn.Linear(in_dim, out_dim)]
    for _ in range(int(match.group(1)) - 1):
        layers += [torch.nn.GELU(), torch.nn.Linear(out_dim, out_dim)]
    return torch.nn.Sequential(*layers)


def _match_prefix(state: dict[str, Any], target: Mapping[str, Any], prefix: str = "vision_model.") -> dict[str, Any]:
    """``state`` keyed as ``target`` is: t2v-metrics checkpoints name the tower ``vision_model.*`` (transformers 4),
    transformers 5's ``CLIPVisionModel`` keys have no such prefix (its ``from_pretrained`` converts; a raw
    ``load_state_dict`` does not)."""
    ours = any(k.startswith(prefix) for k in target)
    theirs = any(k.startswith(prefix) for k in state)
    if theirs and not ours:
        return {k.removeprefix(prefix): v for k, v in state.items()}
    if ours and not theirs:
        return {prefix + k: v for k, v in state.items()}
    return state


def _download(repo: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo, revision=revision or "main", allow_patterns=["*.json", "*.safetensors", "*.bin", "*.model"]
        )
    )


def _load_state_dict(folder: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise OSError(f"no weights in {folder}")
    for file in files:
        state.update(
            load_file(file)
            if file.suffix == ".safetensors"
            else torch.load(file, map_location="cpu", weights_only=True)
        )
    return state


def tiny_clip_flant5(seed: int = 0) -> CLIPFlanT5:
    """A seeded random CLIP-FlanT5 with the real structure (tiny T5, tiny CLIP tower, mlp2x_gelu projector) and the
    tiny CLIP-style tokenizer standing in for T5's (offline tests)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, T5Config, T5ForConditionalGeneration

    from t2ibench.clip_tokenizer import build_tiny_clip_tokenizer
    from t2ibench.tiny_models import clip_image_processor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t5 = T5ForConditionalGeneration(
            T5Config(
                vocab_size=49408,
                d_model=32,
                d_kv=8,
                d_ff=64,
                num_layers=2,
                num_decoder_layers=2,
                num_heads=4,
                decoder_start_token_id=0,
                pad_token_id=0,
                eos_token_id=49407,
            )
        )
        vision = CLIPVisionModel(
            CLIPVisionConfig(
                image_size=64,
                patch_size=16,
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=3,
                num_attention_heads=4,
            )
        )
        projector = build_projector("mlp2x_gelu", 32, 32)
    tokenizer = copy.deepcopy(build_tiny_clip_tokenizer())
    tokenizer.model_max_length = 2048  # as the flan-t5 tokenizer is used (T5 has relative positions)
    return CLIPFlanT5(t5, vision, projector, tokenizer, clip_image_processor(64))
