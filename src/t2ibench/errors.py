"""User-facing errors: the CLI prints them as one line (no traceback) and exits non-zero."""

from __future__ import annotations

from collections.abc import Iterable


class T2IBenchError(Exception):
    """An error caused by the user's input or environment (bad name, malformed file, missing weights)."""


class UnknownNameError(T2IBenchError):
    """A method, benchmark, evaluator or model name that is not registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} '{name}'; valid {kind}s: {', '.join(self.valid) or '(none)'}")
