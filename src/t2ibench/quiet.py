"""Known harmless library messages, filtered once where t2ibench is imported.

* transformers 5 warns "`CLIPImageProcessor` requires torchvision (not installed); falling back to
  `CLIPImageProcessorPil`" whenever diffusers imports an image-processor class name. t2ibench never needs
  torchvision (its CLIP preprocessing is the PIL processor on purpose, ``tiny_models.clip_image_processor``), so
  the fallback is exactly what runs; only this message is dropped, every other transformers warning stays.
"""

from __future__ import annotations

import logging

_HARMLESS = ("requires torchvision (not installed); falling back to",)


class _DropHarmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in _HARMLESS)


def quiet_known_warnings() -> None:
    """Install the filter on the logger that emits those messages (idempotent; imports nothing heavy)."""
    logger = logging.getLogger("transformers.utils.import_utils")
    if not any(isinstance(f, _DropHarmless) for f in logger.filters):
        logger.addFilter(_DropHarmless())
