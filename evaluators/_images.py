"""Image operations shared by evaluators (BERTScore's and DevRat's JPEG round trips)."""

from __future__ import annotations

import io
from typing import Any


def jpeg_round_trip(image: Any, quality: int = 80) -> Any:
    """Encode as JPEG at ``quality`` and decode (the DDPO client-server hop)."""
    from PIL import Image

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")
