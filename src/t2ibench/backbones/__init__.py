"""Shared, cached model loaders that methods and evaluators both use (one layer below the plugins).

* :mod:`~t2ibench.backbones.clip`: CLIP (CLIP score, WinoAlign, DevRat, Q16) - ``load(name, revision, device, seed,
  projection_dim)``;
* :mod:`~t2ibench.backbones.vqa`: the VQA families (VQAScore, role bias, BERTScore's captioner, ReBind's filter) -
  ``load(cfg)``, built on :mod:`~t2ibench.backbones.clip_flant5`, :mod:`~t2ibench.backbones.llava15`,
  :mod:`~t2ibench.backbones.chat_vlm` and :mod:`~t2ibench.backbones.llava_next` (ReBind's yes/no VLM);
* :mod:`~t2ibench.backbones.bert`: BERTScore's encoders - ``load(model, num_layers, batch_size)``;
* :mod:`~t2ibench.backbones.parser`: spaCy English parsers (SynGen, Attend-and-Excite, SepEn) - ``load(name)``.

Every loader keeps what it builds in one process-wide cache (:func:`cached`, keyed by everything that changes the
model), so a sweep loads each backbone once; :func:`clear` empties it (tests, memory).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

_CACHE: dict[tuple[str, Hashable], Any] = {}


def cached(kind: str, key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()``'s result, built once per (kind, key) in this process."""
    if (kind, key) not in _CACHE:
        _CACHE[(kind, key)] = build()
    return _CACHE[(kind, key)]


def clear(kind: str | None = None) -> None:
    """Drop the cached backbones (of one ``kind``, or all)."""
    for entry in [k for k in _CACHE if kind is None or k[0] == kind]:
        del _CACHE[entry]
