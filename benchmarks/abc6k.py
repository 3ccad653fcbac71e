"""ABC-6K (Attribute Binding Contrast set; Feng et al., StructureDiffusion, ICLR 2023), as used by SynGen.

``ABC-6K.txt`` of weixi-feng/Structured-Diffusion-Guidance@773b2ba068c6cc60443d5d747a725413c8c9d46f (MIT;
COCO captions, CC BY 4.0): 6,434 lines in 3,217 pairs; odd lines are COCO captions with two colour words
on different objects, even lines the same caption with the colours swapped. Prompts are the lines verbatim.
SynGen's own subset is not published: take a seeded subset with the common options ``n`` and ``subset_seed``
(recorded with every image).

Options: ``variant`` = ``all`` (default), ``originals`` (odd lines) or ``swapped`` (even lines);
``data_dir``, ``verify_sha256``, ``sample`` (the embedded sample of the first rows).

Metadata: line (1-based line in the file), pair (1-based pair number), swapped (bool), partner_id (the id of
the other line of the pair), source_file, source_sha256.
"""

from __future__ import annotations

from dataclasses import dataclass

from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import FileBenchmarkConfig
from t2ibench.benchmarks._files import STRUCTURE_DIFFUSION_COMMIT, locate
from t2ibench.data_files import DataFile, read_lines
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt

ABC6K_FILE = DataFile(
    folder="abc6k",
    filename="ABC-6K.txt",
    sha256="47fa3ec1a839e6b74bb4f8e3746b454c8a8fb469cef66effddd172473f0f507b",
    urls=(
        f"https://raw.githubusercontent.com/weixi-feng/Structured-Diffusion-Guidance/{STRUCTURE_DIFFUSION_COMMIT}/ABC-6K.txt",
        "https://raw.githubusercontent.com/weixi-feng/Structured-Diffusion-Guidance/master/ABC-6K.txt",
    ),
    sample="abc6k.txt",
    sample_note="lines 1-8 (4 pairs) of ABC-6K.txt, weixi-feng/Structured-Diffusion-Guidance@773b2ba; MIT, captions from MS-COCO (CC BY 4.0)",
)
VARIANTS = ("all", "originals", "swapped")


@dataclass
class ABC6KConfig(FileBenchmarkConfig):
    name: str = "abc6k"
    variant: str = "all"  # all | originals | swapped


@BENCHMARKS.register("abc6k", config_schema=ABC6KConfig, data_files=(ABC6K_FILE,))
def load_abc6k(cfg: ABC6KConfig) -> list[Prompt]:
    """ABC-6K prompts (see the module docstring)."""
    variant = cfg.variant
    if variant not in VARIANTS:
        raise T2IBenchError(f"abc6k.variant={variant!r}; valid: {', '.join(VARIANTS)}")
    path, provenance = locate(ABC6K_FILE, cfg)
    lines = read_lines(path)
    if len(lines) % 2:
        raise T2IBenchError(f"{path}:{len(lines)}: odd number of lines; ABC-6K is a list of (original, swapped) pairs")
    prompts = []
    for line, text in lines:
        swapped = line % 2 == 0
        if (variant == "originals" and swapped) or (variant == "swapped" and not swapped):
            continue
        partner = line - 1 if swapped else line + 1
        prompts.append(
            Prompt(
                id=f"abc6k-{line}",
                text=text,
                benchmark="abc6k",
                metadata={
                    "line": line,
                    "pair": (line + 1) // 2,
                    "swapped": swapped,
                    "partner_id": f"abc6k-{partner}",
                    **provenance,
                },
            )
        )
    return prompts
