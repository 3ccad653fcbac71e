"""LLaVA-1.6 (LLaVA-NeXT; Liu et al., 2024) as ReBind answers its yes/no role questions (Malakouti & Kovashka, NeurIPS
2025; sinamalakouti/ReBind@19ea3fa ``rebind/modeling/utils/llava_utils.py`` ``get_model`` / ``get_batch_response``,
``rebind/eval/eval_utils.py`` ``parse_yes_no``; ``../shared/reference/evaluators.md`` §2.3; no code copied).

* Model: ``llava-hf/llava-v1.6-vicuna-7b-hf`` through transformers' ``LlavaNextForConditionalGeneration``, with the
  checkpoint's processor (anyres tiling by its ``image_grid_pinpoints``, the image token expanded by the processor);
  the image processor is transformers' PIL one (``LlavaNextImageProcessorPil``), so no torchvision is needed.
* Prompt: the checkpoint's chat template applied to one user turn whose content is the question, then the image (the
  order ReBind writes; the llava-hf vicuna template renders the image first: ``USER: <image>\\n{question} ASSISTANT:``),
  with the generation prompt.
* Answer: ``generate(max_new_tokens)`` with the checkpoint's generation config (greedy), decoded with the special
  tokens skipped and ``clean_up_tokenization_spaces=False``, the text after the first ``ASSISTANT:``, as ReBind cuts it.
  How a reply counts as yes is the role-bias evaluator's ``answer_rule``.
* Precision: ReBind loads it in bfloat16, 8-bit (bitsandbytes) and with ``flash_attention_2``, none of which runs on a
  CPU; t2ibench loads bfloat16 on CUDA and float32 on a CPU, sdpa attention, no quantisation (``dtype`` overrides).

Equal to ReBind's ``get_batch_response`` on a checkpoint of this layout loaded by hub id
(``tests/test_reference_parity.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2ibench.backbones.chat_vlm import ModelVLM
from t2ibench.errors import T2IBenchError


class LLaVANext(ModelVLM):
    """A LLaVA-1.6 yes/no VLM (see the module docstring)."""

    family = "llava_next"

    def __init__(self, model: Any, processor: Any):
        self.model, self.processor = model.eval(), processor

    def prompt(self, question: str) -> str:
        """The chat prompt of one user turn (the question, then the image) with the generation prompt."""
        turn = [{"role": "user", "content": [{"type": "text", "text": question}, {"type": "image"}]}]
        return self.processor.apply_chat_template(turn, add_generation_prompt=True)

    def answer_probability(self, *args: Any, **kwargs: Any) -> list[float]:
        raise T2IBenchError(
            "llava_next is a yes/no VLM (ReBind's role questions: role_bias.qa); the VQAScore families are clip-flant5, "
            "llava and qwen2_vl"
        )

    def generate(self, images: list[Any], question: str, max_new_tokens: int = 5, stop: str | None = None) -> list[str]:
        """ReBind's replies: the decoded text after the first ``ASSISTANT:`` of each greedy generation."""
        import torch

        prompts = [self.prompt(question)] * len(images)
        inputs = self.processor(
            images=[image.convert("RGB") for image in images], text=prompts, padding=True, return_tensors="pt"
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(next(self.model.parameters()).dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens)
        texts = self.processor.batch_decode(out, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        replies = [text.split("ASSISTANT:")[1] if "ASSISTANT:" in text else text for text in texts]
        return [reply.split(stop)[0] if stop else reply for reply in replies]

    @classmethod
    def from_pretrained(
        cls, where: str, revision: str | None = None, dtype: str = "bfloat16", device: str = "cpu"
    ) -> LLaVANext:
        """Load a llava-hf LLaVA-1.6 checkpoint (model, tokenizer, processor) from a hub id at ``revision`` or a folder."""
        import torch
        import transformers

        kwargs = {"revision": revision} if not Path(where).is_dir() else {}
        try:
            image_processor = transformers.LlavaNextImageProcessorPil.from_pretrained(where, **kwargs)
            processor = transformers.LlavaNextProcessor.from_pretrained(
                where, image_processor=image_processor, **kwargs
            )
            model = transformers.LlavaNextForConditionalGeneration.from_pretrained(
                where,
                dtype=getattr(torch, dtype),
                attn_implementation="sdpa",
                trust_remote_code=False,
                use_safetensors=True,
                **kwargs,
            )
        except OSError as err:
            raise T2IBenchError(
                f"llava_next model {where}@{revision or 'main'} is not available offline ({str(err).splitlines()[0]}); "
                "download it with `huggingface-cli download` where there is internet and set the model to the local folder"
            ) from None
        return cls(model, processor).to(device)


def tiny_llava_next(seed: int = 0) -> LLaVANext:
    """A seeded random LLaVA-1.6 of the real transformers class, anyres at 28 px tiles, with a tiny trained Llama-style
    tokenizer and the llava-hf vicuna chat template (offline tests, ``+tiny=all``)."""
    import torch
    import transformers as tf

    from t2ibench.backbones.chat_vlm import _tiny_tokenizer
    from t2ibench.tiny_models import clip_image_processor

    tokenizer = _tiny_tokenizer("llava")
    tokenizer.padding_side = "left"
    grid = [[28, 56], [56, 28], [56, 56]]
    base = clip_image_processor(28)
    image_processor = tf.LlavaNextImageProcessorPil(
        size={"shortest_edge": 28},
        crop_size={"height": 28, "width": 28},
        image_grid_pinpoints=grid,
        image_mean=base.image_mean,
        image_std=base.image_std,
    )
    template = (
        "{% for message in messages %}{{ message['role'].upper() + ': '}}"
        "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
        "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
        "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
    )
    processor = tf.LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = tf.LlavaNextConfig(
            text_config={
                "model_type": "llama",
                "vocab_size": len(tokenizer),
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
                "max_position_embeddings": 1024,
                "pad_token_id": tokenizer.pad_token_id,
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
            },
            vision_config={
                "model_type": "clip_vision_model",
                "image_size": 28,
                "patch_size": 14,
                "hidden_size": 32,
                "intermediate_size": 37,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
            },
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            image_grid_pinpoints=grid,
            vision_feature_select_strategy="default",
            vision_feature_layer=-2,
            tie_word_embeddings=False,
        )
        model = tf.LlavaNextForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LLaVANext(model, processor)
