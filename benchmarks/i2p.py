"""I2P, Inappropriate Image Prompts (Schramowski et al., "Safe Latent Diffusion", CVPR 2023).

``i2p_benchmark.csv`` of the Hugging Face dataset AIML-TUDA/i2p (MIT per its card); the byte copy verified
here is github.com/piyush2799/i2p_images@195b2988a275bd6030a337d63e0dd2b8acb1d917, checked row by row
against ESD's ``unsafe-prompts4703.csv``. 4,703 rows, 14 columns. **Content warning**: real user prompts with
sexual, violent, hateful and otherwise disturbing text.

Official protocol (ml-research/i2p@5176a1e, ``../shared/reference/evaluators.md`` section 6.1): 10 images per
prompt from one generator seeded with the row's ``sd_seed``, at the pipeline's default guidance 7.5: the
official runner ignores ``sd_guidance_scale`` (whose values go up to 255). Its schema sets
``seeding: {source: dataset, images_per_prompt: 10}``; ``use_guidance_column=true`` puts the row's guidance in
``metadata.generation_overrides`` instead (not the official protocol).

Options: ``categories`` (keep rows with any of these labels), ``hard_only``, ``use_guidance_column``,
``data_dir``, ``verify_sha256``, ``sample`` (the embedded sample of the first rows).

Metadata: every column of the row, typed: categories (list of labels), hard (0/1), dataset_seed (= sd_seed),
inappropriate_percentage, nudity_percentage, q16_percentage, sd_safety_percentage, prompt_toxicity,
lexica_url, sd_guidance_scale, sd_image_width, sd_image_height, sd_model; plus row (0-based, ESD's
case_number), source_file, source_sha256 and, with ``use_guidance_column``, generation_overrides.
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

I2P_FILE = DataFile(
    folder="i2p",
    filename="i2p_benchmark.csv",
    sha256="597adf453ad159149868280b5e3a34a7b4c29730ef4f8e99b56d91db54d958a3",
    urls=(
        "https://raw.githubusercontent.com/piyush2799/i2p_images/195b2988a275bd6030a337d63e0dd2b8acb1d917/i2p_benchmark.csv",
        "https://huggingface.co/datasets/AIML-TUDA/i2p/resolve/main/i2p_benchmark.csv",
    ),
    sample="i2p.csv",
    sample_note="header + rows 1-8 of i2p_benchmark.csv, the Hugging Face dataset AIML-TUDA/i2p; MIT. Content warning: real lexica.art prompts (these rows are about self-harm and violence)",
)
CATEGORIES = ("hate", "harassment", "violence", "self-harm", "sexual", "shocking", "illegal activity")
FLOAT_COLUMNS = (
    "inappropriate_percentage",
    "nudity_percentage",
    "q16_percentage",
    "sd_safety_percentage",
    "prompt_toxicity",
    "sd_guidance_scale",
)
INT_COLUMNS = ("hard", "sd_seed", "sd_image_width", "sd_image_height")
COLUMNS = ("prompt", "categories", *FLOAT_COLUMNS, *INT_COLUMNS, "lexica_url", "sd_model")


@dataclass
class I2PConfig(FileBenchmarkConfig):
    name: str = "i2p"
    categories: list[str] | None = None  # e.g. [sexual, violence]: keep rows with any of these labels
    hard_only: bool = False
    use_guidance_column: bool = False  # true: the row's sd_guidance_scale per prompt (not the official protocol)
    seeding: dict[str, Any] | None = option(factory=lambda: {"source": "dataset", "images_per_prompt": 10})


@BENCHMARKS.register("i2p", config_schema=I2PConfig, data_files=(I2P_FILE,))
def load_i2p(cfg: I2PConfig) -> list[Prompt]:
    """I2P prompts (see the module docstring)."""
    categories = cfg.categories
    hard_only = cfg.hard_only
    use_guidance_column = cfg.use_guidance_column
    wanted = set(categories or [])
    unknown = sorted(wanted - set(CATEGORIES))
    if unknown:
        raise T2IBenchError(f"unknown i2p categories {', '.join(unknown)}; valid: {', '.join(CATEGORIES)}")
    path, provenance = locate(I2P_FILE, cfg)
    prompts = []
    for row, (line, record) in enumerate(read_csv_rows(path, COLUMNS)):
        labels = [c.strip() for c in record["categories"].split(",") if c.strip()]
        bad = sorted(set(labels) - set(CATEGORIES))
        if bad:
            raise T2IBenchError(f"{path}:{line}: unknown category {', '.join(bad)}")
        metadata = {
            "categories": labels,
            "row": row,
            "lexica_url": record["lexica_url"],
            "sd_model": record["sd_model"],
            **provenance,
        }
        for column in FLOAT_COLUMNS:
            metadata[column] = convert(path, line, column, record[column], float)
        for column in INT_COLUMNS:
            metadata[column] = convert(path, line, column, record[column], int)
        metadata["dataset_seed"] = metadata.pop("sd_seed")
        if wanted and not wanted & set(labels):
            continue
        if hard_only and metadata["hard"] != 1:
            continue
        if use_guidance_column:
            metadata["generation_overrides"] = {"guidance_scale": metadata["sd_guidance_scale"]}
        if not record["prompt"].strip():
            raise T2IBenchError(f"{path}:{line}: empty prompt")
        prompts.append(Prompt(id=f"i2p-{row}", text=record["prompt"], benchmark="i2p", metadata=metadata))
    return prompts
