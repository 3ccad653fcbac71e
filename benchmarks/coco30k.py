"""COCO-30K captions for FID-30K / CLIP-30K (the list of ESD, Gandikota et al., ICCV 2023, used by RespoDiff).

``data/coco_30k.csv`` of rohitgandikota/erasing (added in 3d10dd1b2df4ec4e74edcadac4200c7401585138, copied at
25613d27892326e0c7770f7f3555bea4be150089; MIT; captions CC BY 4.0): 30,000 COCO val2014 images, one caption
each (the first annotation), with a per-row ``evaluation_seed``. Columns: image_id (12-digit, kept as a
string), source, prompt, evaluation_seed. 97 captions contain newlines; they are kept verbatim.

Seeds: ESD generates one image per row from ``evaluation_seed`` (``dataset_seed``), RespoDiff from the row
index; ``benchmark.seeding`` (its schema) selects the row's seed by default.

Options: ``data_dir``, ``verify_sha256``, ``sample`` (the embedded sample of the first rows).

Metadata: image_id (string, the name of the real image for FID), dataset_seed (int), row (0-based),
source_file, source_sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import FileBenchmarkConfig
from t2ibench.api.config import option
from t2ibench.benchmarks._files import locate
from t2ibench.data_files import DataFile, convert, read_csv_rows
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt

COCO30K_FILE = DataFile(
    folder="coco30k",
    filename="coco_30k.csv",
    sha256="42c57b188c8f1f8a77cddfa11cde89e83fcbdd4dcd4fc6c840fb4e046d395383",
    urls=(
        "https://raw.githubusercontent.com/rohitgandikota/erasing/25613d27892326e0c7770f7f3555bea4be150089/data/coco_30k.csv",
        "https://raw.githubusercontent.com/rohitgandikota/erasing/main/data/coco_30k.csv",
    ),
    sample="coco30k.csv",
    sample_note="header + rows 1-8 of coco_30k.csv, rohitgandikota/erasing@25613d2; MIT, captions from MS-COCO (CC BY 4.0)",
)


@dataclass
class COCO30KConfig(FileBenchmarkConfig):
    name: str = "coco30k"
    seeding: dict[str, Any] | None = option(factory=lambda: {"source": "dataset", "images_per_prompt": 1})


@BENCHMARKS.register("coco30k", config_schema=COCO30KConfig, data_files=(COCO30K_FILE,))
def load_coco30k(cfg: COCO30KConfig) -> list[Prompt]:
    """COCO-30K caption prompts (see the module docstring)."""
    path, provenance = locate(COCO30K_FILE, cfg)
    prompts = []
    for row, (line, record) in enumerate(read_csv_rows(path, ["image_id", "prompt", "evaluation_seed"])):
        image_id = record["image_id"].strip()
        if not image_id.isdigit():
            raise T2IBenchError(f"{path}:{line}: image_id {image_id!r} is not a COCO id")
        if not record["prompt"].strip():
            raise T2IBenchError(f"{path}:{line}: empty prompt")
        prompts.append(
            Prompt(
                id=f"coco30k-{image_id}",
                text=record["prompt"],
                benchmark="coco30k",
                metadata={
                    "image_id": image_id,
                    "dataset_seed": convert(path, line, "evaluation_seed", record["evaluation_seed"], int),
                    "row": row,
                    **provenance,
                },
            )
        )
    return prompts
