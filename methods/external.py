"""Images made elsewhere (an API model such as DALL-E 3 in the RoleBench table, or another codebase), scored like
any other cell: ``t2ibench model=external model.name=dalle3 method=external method.image_dir=/path/to/images``.

Layout of ``image_dir``: ``<prompt id>/<seed>.<png|jpg|jpeg|webp>`` (the run store's own layout, so the images of
another t2ibench store can be re-scored too). The seeds are the run's (``run.seeds``, or the dataset's seed keys);
an image is copied into the run store as PNG (its sha256 recorded), so the tables, report and caches treat it like a
generated one. A missing image is an error that names how many are missing and the first expected path; with
``allow_missing: true`` the cell holds only the images that exist. No pipeline is loaded (``model=external``).
No paper or official repository: this adapter generates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING

from t2ibench.api import METHODS, Method
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
    image_dir: str = MISSING  # <prompt id>/<seed>.png (or .jpg/.jpeg/.webp)
    allow_missing: bool = False  # true: the cell holds only the images that exist


@METHODS.register("external")
class ExternalImages(Method):
    """Reads ``image_dir/<prompt id>/<seed>.<ext>`` instead of sampling (see the module docstring)."""

    name = "external"
    config_schema = ExternalConfig
    needs_pipeline = False

    @cached_property
    def folder(self) -> Path:
        where = self.cfg.image_dir
        if not where:
            raise T2IBenchError("method=external needs method.image_dir=<folder laid out as <prompt id>/<seed>.png>")
        folder = Path(str(where)).expanduser()
        if not folder.is_dir():
            raise T2IBenchError(f"method.image_dir {folder} is not a folder")
        return folder

    def path_for(self, prompt: Prompt, key: int) -> Path | None:
        for suffix in SUFFIXES:
            path = self.folder / prompt.id / f"{int(key)}{suffix}"
            if path.is_file():
                return path
        return None

    def select_items(
        self, items: list[tuple[Prompt, int, Any]], store: RunStore | None
    ) -> list[tuple[Prompt, int, Any]]:
        """The items that have an image (all of them, unless ``allow_missing``), each with its store key in place
        of the noise seed, since :meth:`generate` reads by key."""
        missing = [
            (i.prompt, i.key)
            for i in items
            if not store.is_done(i.prompt, i.key) and self.path_for(i.prompt, i.key) is None
        ]
        if missing and not self.cfg.allow_missing:
            first = self.folder / missing[0][0].id / f"{int(missing[0][1])}.png"
            raise T2IBenchError(
                f"method=external: {len(missing)} of {len(items)} images are missing, e.g. {first} "
                "(set method.allow_missing=true to score the ones that exist)"
            )
        absent = {(p.id, int(k)) for p, k in missing}
        kept = [Item(i.prompt, i.key, i.key) for i in items if (i.prompt.id, i.key) not in absent]
        if not kept:
            raise T2IBenchError(f"method=external: no images under {self.folder}")
        return kept

    def generate(
        self, pipe: DiffusionPipeline, prompts: Sequence[Prompt], seeds: Sequence[int | ImageSeed]
    ) -> list[Any]:
        from PIL import Image

        images = []
        for prompt, key in zip(prompts, seeds, strict=True):  # the runner passes the store keys, not noise seeds
            path = self.path_for(prompt, int(key))
            if path is None:
                raise T2IBenchError(f"external image missing: {self.folder / prompt.id / f'{int(key)}.png'}")
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except OSError as err:
                raise T2IBenchError(f"cannot read external image {path}: {err}") from None
        return images
