"""LLaVA-1.5 (Liu et al., "Improved Baselines with Visual Instruction Tuning", CVPR 2024) as t2v-metrics 3.0 scores
with it: ``liuhaotian/llava-v1.5-{7b,13b}`` through t2v-metrics' own LLaVA code (linzhiqiu/t2v_metrics@7c06208,
``models/vqascore_models/llava_model.py``, ``mm_utils.py``, ``llava/model/llava_arch.py``), re-implemented on
transformers' ``LlamaForCausalLM`` and ``CLIPVisionModel`` (no code copied; ``../shared/reference/evaluators.md`` §1.3).

* Checkpoint: the liuhaotian layout (``LlavaLlamaForCausalLM``): Llama keys (``model.embed_tokens``, ``model.layers``,
  ``model.norm``, ``lm_head``) and ``model.mm_projector.{0,2}`` (``mlp2x_gelu``); the CLIP tower is loaded from the
  config's ``mm_vision_tower`` (``openai/clip-vit-large-patch14-336``, or a local folder), as the reference does
  (its checkpoint's own tower copy, if any, is not used). The vocabulary is the checkpoint's (32000): the image is
  spliced into the embeddings, never a token id. llava-hf conversions add ``<image>``/``<pad>`` rows to the LM head,
  which changes every softmax, so they are refused with a message naming the checkpoint to use.
* Tokens: the slow-tokenizer ids of ``{system} USER: <image>\\n{question} ASSISTANT: Yes</s>``, split at ``<image>``
  and each chunk tokenised on its own (the later chunks lose their BOS, keep their dummy-prefix ``▁``), as
  ``tokenizer_image_token``; the labels start one token before the end of the tokenised question (its trailing space
  is merged into ``▁Yes``), so they are ``▁Yes`` and ``</s>``. Sequences longer than the tokenizer's
  ``model_max_length`` (2048) are cut there, as the reference cuts them; a cut that removes the answer is an error
  here (the reference returns NaN).
* Image: padded to a square with ``int(255 * mean)`` of the CLIP mean (``expand2square``, truncated), the tower's
  preprocessor (resize the short side to 336, centre crop), penultimate-layer patch features (no CLS), projector.
* Score (rule ``geometric``): exp(-mean CE) over the shifted answer labels, per sample; batches are right padded
  (positions 0..n-1 as the reference, pads masked).
* What the reference does to the loaded model, and t2ibench after it: ``load_pretrained_model`` resizes the embeddings
  to ``len(tokenizer)`` (the liuhaotian checkpoints: 32000 rows for 32000 tokens, no change; a checkpoint with more
  rows is cut, :func:`~t2ibench.backbones.clip_flant5.score_over_tokenizer_vocabulary`); ``LLaVAModel`` sets the pad
  token to ``<unk>`` and masks ``input_ids != pad``, so an ``<unk>`` id in the text (a literal ``<unk>``) is not
  attended to, here alike; the tower's own copy inside the checkpoint (``model.vision_tower.*``, saved with the
  training state) is ignored, the tower loaded from ``mm_vision_tower`` (a ``.bin`` or safetensors repository).
  Precision as CLIP-FlanT5's (bfloat16 with ``torch.autocast("cuda", bfloat16)`` on CUDA; t2v-metrics fails on a CPU
  the same way).

Equal to t2v-metrics 3.0's ``LLaVAModel`` on a random checkpoint of this layout (``tests/test_reference_parity.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from t2ibench.backbones.clip_flant5 import (
    SYSTEM_MESSAGE,
    TowerVLM,
    _download,
    _load_state_dict,
    build_projector,
    geometric_answer_probability,
    score_over_tokenizer_vocabulary,
)
from t2ibench.errors import T2IBenchError

log = logging.getLogger(__name__)

IMAGE = -200  # t2v-metrics' IMAGE_TOKEN_INDEX: where the image features go
DEFAULT_TOWER = "openai/clip-vit-large-patch14-336"


class LLaVA15(TowerVLM):
    """A LLaVA-1.5 VQAScore / captioning model (see the module docstring)."""

    family = "llava"

    @property
    def lm(self) -> Any:
        return self.language

    def token_ids(self, prompt: str) -> list[int]:
        """``tokenizer_image_token``: chunks around ``<image>`` tokenised separately, joined by :data:`IMAGE`, with
        the first chunk's BOS only."""
        chunks = [list(self.tokenizer(chunk).input_ids) for chunk in prompt.split("<image>")]
        bos = self.tokenizer.bos_token_id
        offset = 1 if chunks and chunks[0] and chunks[0][0] == bos else 0
        ids = [bos] if offset else []
        for i, chunk in enumerate(chunks):
            if i:
                ids.append(IMAGE)
            ids += chunk[offset:]
        return ids

    @staticmethod
    def question_prompt(question: str) -> str:
        return f"{SYSTEM_MESSAGE} USER: <image>\n{question} ASSISTANT: "

    def _embeds(self, rows: list[list[int]], features: Any, labels: list[list[int]] | None = None) -> dict[str, Any]:
        """Right-padded ``inputs_embeds`` with each row's image features at its :data:`IMAGE` position, the attention
        mask, and the labels expanded alike (-100 over the image)."""
        import torch

        embed = self.lm.get_input_embeddings()
        pad = self.tokenizer.unk_token_id  # t2v-metrics' pad token, masked wherever it stands
        out_rows, out_labels, keep = [], [], []
        for k, row in enumerate(rows):
            at = row.index(IMAGE)
            before, after = (
                torch.tensor(part, dtype=torch.long, device=self.device) for part in (row[:at], row[at + 1 :])
            )
            feature = features[k].to(embed.weight.dtype)
            out_rows.append(torch.cat([embed(before), feature, embed(after)]))
            image = torch.ones(len(feature), dtype=torch.bool, device=self.device)
            keep.append(torch.cat([before != pad, image, after != pad]))
            if labels is not None:
                out_labels.append(labels[k][:at] + [-100] * feature.shape[0] + labels[k][at + 1 :])
        length = max(r.shape[0] for r in out_rows)
        embeds = torch.zeros(len(rows), length, out_rows[0].shape[-1], dtype=out_rows[0].dtype, device=self.device)
        mask = torch.zeros(len(rows), length, dtype=torch.long, device=self.device)
        target = torch.full((len(rows), length), -100, dtype=torch.long, device=self.device)
        for i, row in enumerate(out_rows):
            embeds[i, : row.shape[0]], mask[i, : row.shape[0]] = row, keep[i].long()
            if labels is not None:
                target[i, : row.shape[0]] = torch.tensor(out_labels[i], device=self.device)
        return {"inputs_embeds": embeds, "attention_mask": mask, "labels": target}

    # -- scoring --------------------------------------------------------------------------------
    def answer_probability(
        self, images: list[Any], questions: list[str], answer: str = "Yes", rule: str | None = None
    ) -> list[float]:
        """The ``geometric`` rule (t2v-metrics' for LLaVA-1.5): exp(-mean CE) over ``answer`` and ``</s>``."""
        import torch

        if rule not in (None, "geometric"):
            raise T2IBenchError(f"the llava family supports rule=geometric only, not {rule!r}")
        limit = int(self.tokenizer.model_max_length)
        rows, labels = [], []
        for question in questions:
            prompt = self.question_prompt(question)
            ids = self.token_ids(prompt + answer + (self.tokenizer.eos_token or "</s>"))
            start = len(self.token_ids(prompt)) - (1 if prompt.endswith(" ") else 0)
            if len(ids) > limit:  # the reference cuts the padded ids at model_max_length
                log.warning("llava: a prompt of %d tokens was cut to %d", len(ids), limit)
                ids = ids[:limit]
                if start >= limit:
                    raise T2IBenchError(
                        f"llava: the question is {start} tokens, over the model's {limit}: no answer token is left to "
                        "score (t2v-metrics returns NaN here)"
                    )
            rows.append(ids)
            labels.append([-100] * start + ids[start:])
        with torch.no_grad(), self.precision():
            batch = self._embeds(rows, self.image_features(images), labels)
            targets = batch.pop("labels")
            logits = self.lm(**batch).logits
            return geometric_answer_probability(logits[:, :-1], targets[:, 1:]).tolist()

    def generate(
        self, images: list[Any], question: str, max_new_tokens: int = 64, stop: str | None = None
    ) -> list[str]:
        """Greedy answers (captions) to ``question`` about each image, cut at ``stop`` when given. Rows are generated
        one at a time (the reference right pads a batch, which a decoder cannot continue)."""
        import torch

        row = self.token_ids(self.question_prompt(question).rstrip(" "))
        features = self.image_features(images)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.unk_token_id
        texts = []
        with torch.no_grad(), self.precision():
            for k in range(len(images)):
                batch = self._embeds([row], features[k : k + 1])
                batch.pop("labels")
                out = self.lm.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad
                )
                texts.append(self.tokenizer.decode(out[0], skip_special_tokens=True))
        return [(t.split(stop)[0] if stop else t).strip() for t in texts]

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, where: str, revision: str | None = None, dtype: str = "bfloat16", device: str = "cpu"
    ) -> LLaVA15:
        """Load a liuhaotian LLaVA-1.5 checkpoint from a hub id (at ``revision``) or a local folder; its tower from
        ``mm_vision_tower`` (hub id or folder)."""
        import torch
        from transformers import AutoTokenizer, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

        try:
            folder = Path(where) if Path(where).is_dir() else _download(where, revision)
            config = json.loads((folder / "config.json").read_text())
            if "text_config" in config:
                raise T2IBenchError(
                    f"{where} is a llava-hf conversion (LlavaForConditionalGeneration), whose added <image>/<pad> "
                    "vocabulary rows change P(Yes); VQAScore uses liuhaotian/llava-v1.5-13b (or -7b), t2v-metrics' checkpoint"
                )
            state = _load_state_dict(folder)
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            tower = config.get("mm_vision_tower", DEFAULT_TOWER)
            vision = CLIPVisionModel.from_pretrained(tower)  # safetensors, else .bin (read with weights_only)
            processor = _tower_processor(tower, int(vision.config.image_size))
        except OSError as err:
            raise T2IBenchError(
                f"LLaVA-1.5 model {where}@{revision or 'main'} (or its tower {DEFAULT_TOWER}) is not available offline "
                f"({str(err).splitlines()[0]}); download both with `huggingface-cli download` where there is internet "
                "and set the evaluator's model to the local folder (its config's mm_vision_tower to the tower's folder)"
            ) from None
        skip = ("model_type", "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype")
        llama_config = LlamaConfig(**{k: v for k, v in config.items() if not k.startswith("mm_") and k not in skip})
        lm = LlamaForCausalLM(llama_config)
        if "lm_head.weight" in state and not config.get("tie_word_embeddings", False):
            lm.lm_head.weight = torch.nn.Parameter(lm.lm_head.weight.detach().clone())  # never tied in LLaVA
        lm_state = {k: v for k, v in state.items() if not k.startswith(("model.mm_projector.", "model.vision_tower."))}
        missing, unexpected = lm.load_state_dict(lm_state, strict=False)
        if missing or unexpected:
            raise T2IBenchError(
                f"{where}: not a LLaVA-1.5 checkpoint (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        score_over_tokenizer_vocabulary(lm, len(tokenizer), where)
        projector = build_projector(
            config.get("mm_projector_type", "mlp2x_gelu"), int(config["mm_hidden_size"]), int(config["hidden_size"])
        )
        prefix = "model.mm_projector."
        projector.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        if config.get("mm_vision_select_feature", "patch") != "patch":
            raise T2IBenchError(f"{where}: mm_vision_select_feature must be 'patch' (LLaVA-1.5)")
        model = cls(lm, vision, projector, tokenizer, processor, int(config.get("mm_vision_select_layer", -2)))
        return model.to(device, getattr(torch, dtype))


def _tower_processor(tower: str, size: int) -> Any:
    """The tower's preprocessing (CLIP: short side to ``size`` bicubic, centre crop, OpenAI mean/std) without
    torchvision, with the mean and std of its ``preprocessor_config.json`` when it is a local folder."""
    from t2ibench.tiny_models import clip_image_processor

    processor = clip_image_processor(size)
    config = Path(tower, "preprocessor_config.json")
    if config.is_file():
        saved = json.loads(config.read_text())
        processor.image_mean, processor.image_std = saved["image_mean"], saved["image_std"]
    return processor


def tiny_llava15(seed: int = 0) -> LLaVA15:
    """A seeded random LLaVA-1.5 of the real structure (tiny Llama, tiny CLIP tower, mlp2x_gelu projector) with a tiny
    trained Llama-style tokenizer (offline tests)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from t2ibench.backbones.chat_vlm import _tiny_tokenizer
    from t2ibench.tiny_models import clip_image_processor

    tokenizer = _tiny_tokenizer("llava")
    tokenizer.model_max_length = 2048
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=4,
                max_position_embeddings=2048,
                pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        )
        vision = CLIPVisionModel(
            CLIPVisionConfig(
                image_size=28,
                patch_size=14,
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
            )
        )
        projector = build_projector("mlp2x_gelu", 32, 32)
    return LLaVA15(lm, vision, projector, tokenizer, clip_image_processor(28))
