"""Decoder-only chat VLMs for VQAScore and captioning: the family presets (template, answer, rule) of t2v-metrics 3.0
(linzhiqiu/t2v_metrics@7c06208, ``models/vqascore_models/{clip_t5_model,llava_model,qwen2vl_model}.py``, as specified
in ``../shared/reference/evaluators.md`` §1.3; no code copied) and the Qwen2-VL model through transformers'
``Qwen2VLForConditionalGeneration``.

Families (``FAMILIES``):

* ``clip-flant5``: :mod:`t2ibench.backbones.clip_flant5`.
* ``llava`` (llava-v1.5-7b/13b, the liuhaotian checkpoints t2v-metrics loads): :mod:`t2ibench.backbones.llava15`;
  the Vicuna v1 prompt ``{system} USER: <image>\\n{question} ASSISTANT: Yes</s>``, template ``Does this figure show
  "{}"? Please answer yes or no.``, rule ``geometric``.
* ``qwen2_vl`` (Qwen2-VL-2B/7B/72B-Instruct, this module; loaded as t2v-metrics loads it: ``from_pretrained`` with
  no vocabulary resize, so every LM-head row, the padding past the tokenizer's length included (152,064 rows for
  151,657 tokens in the 7B), takes part in the softmax; t2v-metrics asks for ``flash_attention_2``, t2ibench for
  ``sdpa`` unless ``attn_implementation`` says otherwise): the checkpoint's chat template with one user turn (image,
  then text), template ``Does this image show "{}"?`` (v3.0; v3.1 changed it), rule ``first_token``: greedy
  ``generate`` of one token with ``output_scores``; the softmax over the vocabulary of that step's (processed) scores
  at the first token id of ``Yes``. Those scores are processed by the checkpoint's ``generation_config``: greedy
  decoding still applies its ``repetition_penalty``, in t2v-metrics and here alike (``tests/test_reference_parity.py``
  compares the two on a checkpoint with a penalty); the generation config belongs to the checkpoint at its revision,
  which the score key names.

Inputs are assembled here (image tokens expanded to the number of visual tokens, as the processor does) because the
transformers processor also builds a video processor, which needs torchvision. Batches are left padded.
``trust_remote_code`` is never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2ibench.errors import T2IBenchError

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
QWEN_SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True)
class Family:
    """How one model family asks, answers and is scored (t2v-metrics 3.0)."""

    template: str
    answer: str
    rule: str
    image_token: str
    hub_default: str


FAMILIES: dict[str, Family] = {
    "clip-flant5": Family(
        'Does this figure show "{}"? Please answer yes or no.',
        "Yes",
        "geometric",
        "<image>",
        "zhiqiulin/clip-flant5-xxl",
    ),
    "llava": Family(
        'Does this figure show "{}"? Please answer yes or no.',
        "Yes",
        "geometric",
        "<image>",
        "liuhaotian/llava-v1.5-13b",
    ),
    "qwen2_vl": Family(
        'Does this image show "{}"?', "Yes", "first_token", "<|image_pad|>", "Qwen/Qwen2-VL-7B-Instruct"
    ),
    # a yes/no VLM only (ReBind's role questions, role_bias.qa): it answers, it is not scored for P(Yes)
    "llava_next": Family(
        'Does this figure show "{}"? Please answer yes or no.',
        "Yes",
        "yes_no",
        "<image>",
        "llava-hf/llava-v1.6-vicuna-7b-hf",
    ),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise T2IBenchError(f"unknown VLM family {name!r}; valid: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


class ModelVLM:
    """A VLM held as one transformers model (``self.model``): its device and moving it."""

    model: Any

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def to(self, device: str, dtype: Any = None) -> Any:
        self.model.to(device=device, dtype=dtype)
        return self


class ChatVLM(ModelVLM):
    """A Qwen2-VL chat model with its tokenizer and (PIL) image processor."""

    def __init__(self, model: Any, tokenizer: Any, image_processor: Any, family_name: str = "qwen2_vl"):
        if family_name != "qwen2_vl":
            raise T2IBenchError(f"ChatVLM is the qwen2_vl family's model, not {family_name!r}")
        self.model, self.tokenizer, self.image_processor = model.eval(), tokenizer, image_processor
        self.family = family_name

    # -- inputs ---------------------------------------------------------------------------------
    def _vision(self, images: list[Any]) -> tuple[dict[str, Any], list[int]]:
        """Pixel tensors for the model and the number of visual tokens of each image."""
        rgb = [image.convert("RGB") for image in images]
        dtype = next(self.model.parameters()).dtype
        out = self.image_processor(images=rgb, return_tensors="pt")
        merge = int(self.image_processor.merge_size) ** 2
        counts = [int(grid.prod()) // merge for grid in out["image_grid_thw"]]
        return {
            "pixel_values": out["pixel_values"].to(self.device, dtype),
            "image_grid_thw": out["image_grid_thw"].to(self.device),
        }, counts

    def prompt(self, question: str, image_tokens: int) -> str:
        """The chat prompt up to the assistant's turn, with the image placeholder expanded."""
        image = family(self.family).image_token * image_tokens
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
                tokenize=False,
                add_generation_prompt=True,
            )
            return text.replace("<|image_pad|>", image, 1)
        return (
            f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n<|vision_start|>{image}<|vision_end|>"
            f"{question}<|im_end|>\n<|im_start|>assistant\n"
        )

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text).input_ids)

    def answer_ids(self, prompt_ids: list[int], prompt: str, answer: str) -> list[int]:
        """Token ids of ``answer`` continuing ``prompt`` (as the full conversation tokenises), then ``<|im_end|>``."""
        full = self._ids(prompt + answer)
        if full[: len(prompt_ids)] != prompt_ids:
            raise T2IBenchError(f"{self.family}: the answer {answer!r} changes the tokenisation of the prompt")
        end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        end = end if end is not None else self.tokenizer.eos_token_id
        return full[len(prompt_ids) :] + [int(end)]

    def _left_pad(self, rows: list[list[int]], labels: list[list[int]] | None = None) -> dict[str, Any]:
        import torch

        length = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), length), int(pad), dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        out_labels = torch.full((len(rows), length), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, length - len(row) :] = torch.tensor(row)
            mask[i, length - len(row) :] = 1
            if labels is not None:
                out_labels[i, length - len(row) :] = torch.tensor(labels[i])
        batch = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        # the modality of each position, for M-RoPE (as the processor returns it)
        batch["mm_token_type_ids"] = (batch["input_ids"] == self.model.config.image_token_id).long()
        if labels is not None:
            batch["labels"] = out_labels.to(self.device)
        return batch

    # -- scoring --------------------------------------------------------------------------------
    def answer_probability(
        self, images: list[Any], questions: list[str], answer: str = "Yes", rule: str | None = None
    ) -> list[float]:
        """P(answer) by ``rule`` (the family's by default): ``geometric`` or ``first_token``."""
        import torch

        from t2ibench.backbones.clip_flant5 import first_token_probability, geometric_answer_probability

        rule = rule or family(self.family).rule
        vision, counts = self._vision(images)
        prompts = [self.prompt(q, n) for q, n in zip(questions, counts, strict=True)]
        prompt_ids = [self._ids(p) for p in prompts]
        with torch.no_grad():
            if rule == "first_token":
                first = self.tokenizer(answer, add_special_tokens=False).input_ids[0]
                out = self.model.generate(
                    **self._left_pad(prompt_ids),
                    **vision,
                    max_new_tokens=1,
                    do_sample=False,
                    num_beams=1,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
                return first_token_probability(out.scores[0], int(first)).tolist()
            if rule != "geometric":
                raise T2IBenchError(f"unknown VQAScore rule {rule!r}; valid: geometric, first_token")
            rows, labels = [], []
            for ids, prompt in zip(prompt_ids, prompts, strict=True):
                tail = self.answer_ids(ids, prompt, answer)
                rows.append(ids + tail)
                labels.append([-100] * len(ids) + tail)
            batch = self._left_pad(rows, labels)
            targets = batch.pop("labels")
            logits = self.model(**batch, **vision).logits
            # causal shift: position t predicts token t + 1
            return geometric_answer_probability(logits[:, :-1], targets[:, 1:]).tolist()

    def generate(
        self, images: list[Any], question: str, max_new_tokens: int = 64, stop: str | None = None
    ) -> list[str]:
        """Greedy answers (captions) to ``question``, cut at ``stop`` when given."""
        import torch

        vision, counts = self._vision(images)
        rows = [self._ids(self.prompt(question, n)) for n in counts]
        with torch.no_grad():
            out = self.model.generate(
                **self._left_pad(rows), **vision, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
            )
        length = max(len(r) for r in rows)
        texts = self.tokenizer.batch_decode(out[:, length:], skip_special_tokens=True)
        return [(t.split(stop)[0] if stop else t).strip() for t in texts]

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        family_name: str,
        where: str,
        revision: str | None = None,
        dtype: str = "bfloat16",
        device: str = "cpu",
        attn_implementation: str = "sdpa",
    ) -> ChatVLM:
        """Load a Qwen2-VL transformers checkpoint from a hub id (at ``revision``) or a local folder, with
        ``attn_implementation`` (t2v-metrics' preset asks for ``flash_attention_2``; sdpa is the default here)."""
        import torch
        import transformers

        family(family_name)
        if family_name != "qwen2_vl":
            raise T2IBenchError(f"ChatVLM loads the qwen2_vl family, not {family_name!r}")
        model_class, processor_class = "Qwen2VLForConditionalGeneration", "Qwen2VLImageProcessorPil"
        kwargs = {"revision": revision} if not Path(where).is_dir() else {}
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(where, trust_remote_code=False, **kwargs)
            processor = getattr(transformers, processor_class).from_pretrained(where, **kwargs)
            model = getattr(transformers, model_class).from_pretrained(
                where,
                dtype=getattr(torch, dtype),
                attn_implementation=attn_implementation,
                trust_remote_code=False,
                use_safetensors=True,
                **kwargs,
            )
        except ImportError as err:  # flash_attention_2 without the flash-attn package
            raise T2IBenchError(
                f"{family_name}: attn_implementation={attn_implementation!r} is not available here "
                f"({str(err).splitlines()[0]}); use sdpa, or install flash-attn on a CUDA machine"
            ) from None
        except OSError as err:
            raise T2IBenchError(
                f"{family_name} model {where}@{revision or 'main'} is not available offline ({str(err).splitlines()[0]}); "
                "download it with `huggingface-cli download` where there is internet and set the model to the local folder"
            ) from None
        return cls(model, tokenizer, processor, family_name).to(device)


def _tiny_tokenizer(kind: str) -> Any:
    """A byte-level (Qwen) or metaspace (Llama) BPE trained on a fixed corpus: deterministic and offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        'Does this figure show "a red cube on a blue sphere"? Please answer yes or no. Yes No',
        'Does this image show "a cat chasing a mouse"? Answer concisely: what is going on in this image?',
        VICUNA_SYSTEM + " USER: ASSISTANT:",
        QWEN_SYSTEM + " system user assistant",
    ] * 4
    tokenizer = Tokenizer(models.BPE(unk_token=None if kind == "qwen2_vl" else "<unk>"))
    if kind == "qwen2_vl":
        special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
        special.append("<|video_pad|>")
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        special = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        alphabet = [chr(c) for c in range(32, 127)] + ["▁", "\n"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=alphabet, show_progress=False
    )
    tokenizer.train_from_iterator(corpus, trainer)
    if kind == "qwen2_vl":
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def tiny_chat_vlm(family_name: str, seed: int = 0) -> ChatVLM:
    """A seeded random Qwen2-VL of the real transformers class, with a tiny trained tokenizer (tests)."""
    import torch
    import transformers as tf

    tokenizer = _tiny_tokenizer(family_name)
    ids = tokenizer.convert_tokens_to_ids
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family_name == "qwen2_vl":
            text["rope_scaling"] = {"type": "mrope", "mrope_section": [1, 1, 2]}
            config = tf.Qwen2VLConfig(
                text_config=text,
                vision_config={
                    "depth": 1,
                    "embed_dim": 32,
                    "hidden_size": 32,
                    "num_heads": 2,
                    "mlp_ratio": 2,
                    "patch_size": 14,
                    "spatial_merge_size": 2,
                    "temporal_patch_size": 2,
                },
                image_token_id=ids("<|image_pad|>"),
                video_token_id=ids("<|video_pad|>"),
                vision_start_token_id=ids("<|vision_start|>"),
                vision_end_token_id=ids("<|vision_end|>"),
            )
            model = tf.Qwen2VLForConditionalGeneration(config)
            processor = tf.Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56)
        else:
            raise T2IBenchError(f"tiny_chat_vlm builds the qwen2_vl family, not {family_name!r}")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return ChatVLM(model, tokenizer, processor, family_name)
