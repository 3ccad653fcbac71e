"""CC-500 (Concept Conjunction; Feng et al., StructureDiffusion, ICLR 2023), the companion of ABC-6K.

``CC-500.txt`` of weixi-feng/Structured-Diffusion-Guidance@773b2ba068c6cc60443d5d747a725413c8c9d46f (MIT):
602 lines; lines 1-446 are "a {colour} {object} and a {colour} {object}" in colour-swapped pairs, lines
447-602 other compositional prompts (trailing whitespace stripped).

Options: ``conjunctions_only`` (lines 1-446), ``data_dir``, ``verify_sha256``, ``sample`` (the embedded sample of the first rows).

Metadata: line (1-based), conjunction (bool: one of lines 1-446), source_file, source_sha256.
"""

from __future__ import annotations

from dataclasses import dataclass

from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import FileBenchmarkConfig
from t2ibench.benchmarks._files import STRUCTURE_DIFFUSION_COMMIT, locate
from t2ibench.data_files import DataFile, read_lines
from t2ibench.prompt import Prompt

CONJUNCTION_LINES = 446
CC500_FILE = DataFile(
    folder="cc500",
    filename="CC-500.txt",
    sha256="b36a39e83459508e1676372902f2becdb48f977ed13868600e6e27e26b301777",
    urls=(
        f"https://raw.githubusercontent.com/weixi-feng/Structured-Diffusion-Guidance/{STRUCTURE_DIFFUSION_COMMIT}/CC-500.txt",
        "https://raw.githubusercontent.com/weixi-feng/Structured-Diffusion-Guidance/master/CC-500.txt",
    ),
    sample="cc500.txt",
    sample_note="lines 1-8 of CC-500.txt, weixi-feng/Structured-Diffusion-Guidance@773b2ba; MIT",
)


@dataclass
class CC500Config(FileBenchmarkConfig):
    name: str = "cc500"
    conjunctions_only: bool = False  # true: lines 1-446 only


@BENCHMARKS.register("cc500", config_schema=CC500Config, data_files=(CC500_FILE,))
def load_cc500(cfg: CC500Config) -> list[Prompt]:
    """CC-500 prompts (see the module docstring)."""
    conjunctions_only = cfg.conjunctions_only
    path, provenance = locate(CC500_FILE, cfg)
    prompts = []
    for line, text in read_lines(path):
        conjunction = line <= CONJUNCTION_LINES
        if conjunctions_only and not conjunction:
            continue
        prompts.append(
            Prompt(
                id=f"cc500-{line}",
                text=text,
                benchmark="cc500",
                metadata={"line": line, "conjunction": conjunction, **provenance},
            )
        )
    return prompts
