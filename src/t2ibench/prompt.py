"""The ``Prompt`` record every benchmark yields and every method and evaluator consumes.

Fields:
    id: stable identifier, unique within a benchmark and stable across versions and subsets. It names the
        image files (``images/<id>/<seed>.png``), so it may hold only letters, digits, ``.``, ``_`` and ``-``.
    text: the prompt given to the text-to-image model.
    benchmark: the registry name of the benchmark that produced it.
    metadata: JSON values the evaluators need; each benchmark documents its keys in its module docstring
        (e.g. RoleBench ``subject``/``relation``/``object``, Winobias ``occupation``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Prompt:
    """One prompt of a benchmark (see the module docstring for the fields)."""

    id: str
    text: str
    benchmark: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise ValueError(f"prompt id {self.id!r} must match {_ID_RE.pattern} (it names image files)")
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"prompt {self.id!r} has an empty text")
        try:
            json.dumps(self.metadata)
        except TypeError as err:
            raise ValueError(f"prompt {self.id!r} metadata is not JSON-serialisable: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (the form stored in ``samples.jsonl``)."""
        return {"id": self.id, "text": self.text, "benchmark": self.benchmark, "metadata": self.metadata}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompt:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=data["id"], text=data["text"], benchmark=data["benchmark"], metadata=dict(data.get("metadata", {}))
        )
