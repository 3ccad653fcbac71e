"""Known harmless library messages, filtered once where t2ibench is imported (``import t2ibench``).

* transformers 5 warns "`CLIPImageProcessor` requires torchvision (not installed); falling back to
  `CLIPImageProcessorPil`" whenever diffusers imports an image-processor class name. t2ibench never needs
  torchvision (its CLIP preprocessing is the PIL processor on purpose, ``tiny_models.clip_image_processor``), so
  the fallback is exactly what runs.
* For a prompt over CLIP's 77 tokens the SD pipelines print, per batch, transformers' "Token indices sequence length
  is longer than the specified maximum sequence length" and diffusers' "The following part of your input was
  truncated" (with the padding tokens spelled out). The runner already warns once per cell, naming the prompts and
  the words the text encoder loses (``generation_guards.warn_truncated_prompts``), so these repeats are dropped.

Only these messages are dropped (a filter on the logger that emits each); every other library warning stays.
"""

from __future__ import annotations

import logging

_HARMLESS = {
    "transformers.utils.import_utils": ("requires torchvision (not installed); falling back to",),
    "transformers.tokenization_utils_base": ("Token indices sequence length is longer than the specified maximum",),
    "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion": (
        "The following part of your input was truncated",
    ),
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl": (
        "The following part of your input was truncated",
    ),
}


class _DropHarmless(logging.Filter):
    def __init__(self, texts: tuple[str, ...]):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.texts)


def quiet_known_warnings() -> None:
    """Install the filters on the loggers that emit those messages (idempotent; imports nothing heavy)."""
    for name, texts in _HARMLESS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropHarmless) for f in logger.filters):
            logger.addFilter(_DropHarmless(texts))
