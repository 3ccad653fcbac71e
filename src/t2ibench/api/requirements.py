"""What a plugin downloads: declared by the plugin, collected by ``t2ibench-fetch`` through the registries."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Requirements:
    """Hub weights (``(repo id, revision)`` pairs) a plugin loads, and notes on its other downloads."""

    weights: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_weight(self, repo: object, revision: object = None) -> None:
        """Add ``repo`` when it names a hub repository (``org/name``, not a local folder, not ``tiny``)."""
        from pathlib import Path

        if (
            isinstance(repo, str)
            and repo.count("/") == 1
            and not repo.startswith((".", "/", "~"))
            and not Path(repo).exists()
        ):
            self.weights.append((repo, str(revision or "main")))

    def extend(self, other: Requirements) -> None:
        self.weights += other.weights
        self.notes += other.notes
