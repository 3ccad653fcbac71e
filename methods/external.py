"""Images made elsewhere (an API model such as DALL-E 3 in the RoleBench table, or another codebase), scored like
any other cell: ``t2ibench model=external model.name=dalle3 method=external method.image_dir=/path/to/images``.

Layout of ``image_dir``: ``layout`` with the suffix ``.png|.jpg|.jpeg|.webp``; the default ``{prompt_id}/{seed}``
is the run store's own layout (so the images of another t2ibench store can be re-scored too); ``{prompt_id}`` alone
reads one image per prompt named by its id, as a leaderboard's released images are (GenAI-Bench: ``00001.jpeg``),
and the run then has one seed (the image's key in the store). On the command line, quote the braces for Hydra:
``"method.layout='{prompt_id}'"``. The seeds are the run's (``run.seeds``, or the
dataset's seed keys); an image is copied into the run store as PNG (its sha256 recorded), so the tables, report and
caches treat it like a generated one. A missing image is an error that names how many are missing and the first
expected path; with ``allow_missing: true`` the cell holds only the images that exist. No pipeline is loaded
(``model=external``).

On the tiny flow (``+tiny=all`` sets ``model.stand_ins.external_images: tiny``; or ``image_dir: tiny``) the tiny
random model stands in for whatever made the images: it samples them as the SD baseline does, and the cell is a
stand-in cell like any other, so an experiment over released images runs offline end to end.
No paper or official repository: this adapter generates nothing of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING, Any

from t2ibench.api import METHODS, Method
from t2ibench.api.config import stand_in
from t2ibench.api.method import MethodConfig
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt
from t2ibench.seeding import ImageSeed, Item

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from t2ibench.run_store import RunStore

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class ExternalConfig(MethodConfig):
    """Images made elsewhere, read from ``image_dir``."""

    name: str = "external"
    image_dir: str | None = stand_in("external_images", None)  # the folder; tiny: the tiny model stands in
    layout: str = "{prompt_id}/{seed}"  # an image's path in image_dir, no suffix ({prompt_id} alone: one seed)
    allow_missing: bool = False  # true: the cell holds only the images that exist


@METHODS.register("external")
class ExternalImages(Method):
    """Reads ``image_dir/<prompt id>/<seed>.<ext>`` instead of sampling (see the module docstring)."""

    name = "external"
    config_schema = ExternalConfig

    def __init__(self, cfg: Any, generation: Any):
        super().__init__(cfg, generation)
        fields = {f for _, f, _, _ in Formatter().parse(self.cfg.layout) if f is not None}
        if "prompt_id" not in fields or not fields <= {"prompt_id", "seed"}:
            raise T2IBenchError(
                f"method.layout={self.cfg.layout!r}: use {{prompt_id}} and optionally {{seed}} (e.g. {{prompt_id}}/{{seed}})"
            )

    @property
    def stand_in(self) -> bool:
        """True when the tiny model stands in for the images' maker (see the module docstring)."""
        return self.cfg.image_dir == "tiny"

    @property
    def needs_pipeline(self) -> bool:  # type: ignore[override]
        return self.stand_in

    @cached_property
    def folder(self) -> Path:
        where = self.cfg.image_dir
        if not where:
            raise T2IBenchError("method=external needs method.image_dir=<folder laid out as <prompt id>/<seed>.png>")
        folder = Path(str(where)).expanduser()
        if not folder.is_dir():
            raise T2IBenchError(f"method.image_dir {folder} is not a folder")
        return folder

    def expected_path(self, prompt: Prompt, key: int) -> Path:
        """Where the image of (prompt, key) is looked for, without its suffix."""
        return self.folder / self.cfg.layout.format(prompt_id=prompt.id, seed=int(key))

    def path_for(self, prompt: Prompt, key: int) -> Path | None:
        stem = self.expected_path(prompt, key)
        for suffix in SUFFIXES:
            path = stem.with_name(stem.name + suffix)
            if path.is_file():
                return path
        return None

    def select_items(
        self, items: list[tuple[Prompt, int, Any]], store: RunStore | None
    ) -> list[tuple[Prompt, int, Any]]:
        """The items that have an image (all of them, unless ``allow_missing``), each with its store key in place
        of the noise seed, since :meth:`generate` reads by key."""
        if self.stand_in:
            return super().select_items(items, store)
        keys = {i.key for i in items}
        if "{seed}" not in self.cfg.layout and len(keys) > 1:
            raise T2IBenchError(
                f"method.layout={self.cfg.layout!r} holds one image per prompt: run one seed (run.seeds=[0]), "
                f"not {len(keys)}"
            )
        missing = [
            (i.prompt, i.key)
            for i in items
            if not store.is_done(i.prompt, i.key) and self.path_for(i.prompt, i.key) is None
        ]
        if missing and not self.cfg.allow_missing:
            first = self.expected_path(*missing[0])
            first = first.with_name(first.name + ".png")
            raise T2IBenchError(
                f"method=external: {len(missing)} of {len(items)} images are missing, e.g. {first} "
                "(set method.allow_missing=true to score the ones that exist)"
            )
        absent = {(p.id, int(k)) for p, k in missing}
        self.absent = sorted(absent)  # recorded with the cell, which is then partial
        kept = [Item(i.prompt, i.key, i.key) for i in items if (i.prompt.id, i.key) not in absent]
        if not kept:
            raise T2IBenchError(f"method=external: no images under {self.folder}")
        return kept

    def generate(
        self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]
    ) -> list[Any]:
        from PIL import Image

        if self.stand_in:  # the tiny model makes the images, as the SD baseline does
            from t2ibench.methods._sampling import baseline_generate

            return baseline_generate(self, pipe, prompts, seeds)
        images = []
        for prompt, key in zip(prompts, seeds, strict=True):
            # the runner passes the store keys, not noise seeds
            path = self.path_for(prompt, int(key))
            if path is None:
                raise T2IBenchError(f"external image missing: {self.expected_path(prompt, int(key))}.png")
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except OSError as err:
                raise T2IBenchError(f"cannot read external image {path}: {err}") from None
        return images
