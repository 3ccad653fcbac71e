"""GenAI-Bench (Li, Lin et al., "GenAI-Bench: Evaluating and Improving Compositional Text-to-Visual Generation",
CVPR 2024 SynData workshop; Lin et al., "Evaluating Text-to-Visual Generation with Image-to-Text Generation",
ECCV 2024): compositional prompts with skill tags and human alignment ratings, as read by
linzhiqiu/t2v_metrics@d8ad36aa31705726f30db09958a1857a651553b0 (``genai_bench/evaluate.py``, ``dataset.py``).

Variants (``variant``):
- ``1600`` (default, the GenAI-Bench paper): ``genai_image.json`` and ``genai_skills.json`` of the Hugging Face
  dataset ``BaiqiL/GenAI-Bench-1600`` at revision ``e51e8a8070fadfbfe1f160436bf14e7664e87247``;
- ``527`` (the VQAScore paper's GenAI-Bench-527, with three human ratings per released image):
  ``genai_image.json`` of ``zhiqiulin/GenAI-Bench-527``, verified as the byte copy of
  linzhiqiu/t2v_metrics@60ce07b144b9bff24b8dac5317cb28586b1b2509 ``genai_image.json`` (Apache-2.0), and that
  dataset's ``genai_skills.json``.
The Hugging Face files have no hash we could check when this was written: they are fetched at the pinned revision
(the 527 tag file at ``main``, the only one published) and their actual sha256 is recorded in every prompt.

File format: a JSON object keyed by the 5-digit prompt id: ``id``, ``prompt``, ``prompt in Chinese`` and, where
rated, ``models``: {released model: [three ratings 1-5]}. The tag file: {skill: [integer prompt ids]}, the
skills being ``attribute, scene, spatial relation, action relation, part relation, counting, comparison,
differentiation, negation, universal`` and the two groups ``basic`` and ``advanced`` (tags themselves, as in the
official file). Prompt ids are the dataset's ("00001"), so a released image ``<id>.jpeg`` belongs to prompt ``<id>``.

Options: ``variant``; ``skills`` (only the prompts tagged with one of these); ``with_skills`` (false: no tag file is
read, e.g. offline without it: the prompts have no tags, and tables show ``overall`` only); ``data_dir``,
``verify_sha256``, ``sample``. The embedded sample (the tiny model's) is the first 8 prompts of the 527 file, with
their ratings and no tags (the tag file has no embedded sample), whatever the variant.

Metadata:
    genai_id: the dataset's prompt id (= the prompt id).
    skills: the prompt's tags, in :data:`SKILLS` order (None: not read).
    human_alignment: {released model: [ratings]} where the file has them, else absent.
    source_file, source_sha256, skills_file, skills_sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2ibench.agreement import SKILLS
from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import FileBenchmarkConfig
from t2ibench.benchmarks._files import locate
from t2ibench.data_files import DataFile, read_json
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt

REVISION_1600 = "e51e8a8070fadfbfe1f160436bf14e7664e87247"
_HF = "https://huggingface.co/datasets"
# the six models whose images GenAI-Bench released with human ratings (zip names of the Hugging Face datasets)
RELEASED_MODELS = ("DALLE_3", "SDXL_Turbo", "DeepFloyd_I_XL_v1", "Midjourney_6", "SDXL_2_1", "SDXL_Base")

FILES = {
    "1600": (
        DataFile(
            folder="genai_bench",
            filename="genai_image_1600.json",
            sha256=None,
            urls=(f"{_HF}/BaiqiL/GenAI-Bench-1600/resolve/{REVISION_1600}/genai_image.json",),
        ),
        DataFile(
            folder="genai_bench",
            filename="genai_skills_1600.json",
            sha256=None,
            urls=(f"{_HF}/BaiqiL/GenAI-Bench-1600/resolve/{REVISION_1600}/genai_skills.json",),
        ),
    ),
    "527": (
        DataFile(
            folder="genai_bench",
            filename="genai_image_527.json",
            sha256="a5974a5e67f530985a12f2d5cda490f3cb1e47064a56c54817d57102a964e9ff",
            urls=(
                "https://raw.githubusercontent.com/linzhiqiu/t2v_metrics/60ce07b144b9bff24b8dac5317cb28586b1b2509/genai_image.json",
                f"{_HF}/zhiqiulin/GenAI-Bench-527/resolve/main/genai_image.json",
            ),
            sample="genai_bench.json",
            sample_note="the first 8 prompts of genai_image_527.json with their human ratings (JSON, same layout); Apache-2.0 (linzhiqiu/t2v_metrics)",
        ),
        DataFile(
            folder="genai_bench",
            filename="genai_skills_527.json",
            sha256=None,
            urls=(f"{_HF}/zhiqiulin/GenAI-Bench-527/resolve/main/genai_skills.json",),
        ),
    ),
}

# The released images, one zip per model (``<prompt id>.jpeg`` inside): the download links of the official
# ``GenAIBench_Image`` (t2v_metrics ``dataset.py``) for 527; the same names at the pinned revision for 1600 (not
# reachable offline when this was written). `t2ibench-data fetch genai_bench --only '*images_1600*'` downloads and
# extracts them to where ${t2ibench_data:genai_bench/images_<variant>/<model>} (the experiment's image_dir) looks.
IMAGES = {
    variant: tuple(
        DataFile(
            folder=f"genai_bench/images_{variant}",
            filename=f"{model}.zip",
            sha256=None,
            urls=(url.format(model),),
            archive=True,
        )
        for model in RELEASED_MODELS
    )
    for variant, url in (
        ("1600", f"{_HF}/BaiqiL/GenAI-Bench-1600/resolve/{REVISION_1600}/{{}}.zip"),
        ("527", f"{_HF}/zhiqiulin/GenAI-Bench-527/resolve/main/{{}}.zip"),
    )
}


@dataclass
class GenAIBenchConfig(FileBenchmarkConfig):
    name: str = "genai_bench"
    variant: str = "1600"  # 1600 (GenAI-Bench) | 527 (the VQAScore paper's subset, human-rated)
    skills: list[str] | None = None  # only prompts with one of these tags, e.g. [counting, negation]
    with_skills: bool = True  # false: read no tag file (prompts untagged: tables show overall only)


def read_skills(path: Any, ids: set[str]) -> dict[str, list[str]]:
    """prompt id -> its tags (in :data:`SKILLS` order) from a tag file {skill: [integer prompt ids]}."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise T2IBenchError(f"{path}:1: expected a JSON object {{skill: [prompt ids]}}")
    unknown = sorted(set(data) - set(SKILLS))
    if unknown:
        raise T2IBenchError(f"{path}: unknown skill(s) {', '.join(unknown)}; valid: {', '.join(SKILLS)}")
    tags: dict[str, list[str]] = {}
    for skill in SKILLS:
        for number in data.get(skill, []):
            if not isinstance(number, int) or isinstance(number, bool):
                raise T2IBenchError(f"{path}: skill {skill!r}: {number!r} is not an integer prompt id")
            prompt_id = f"{number:05d}"
            if prompt_id not in ids:
                raise T2IBenchError(f"{path}: skill {skill!r} names prompt {number}, which the prompt file lacks")
            tags.setdefault(prompt_id, []).append(skill)
    return tags


def _entries(path: Any) -> list[tuple[str, dict[str, Any]]]:
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise T2IBenchError(f"{path}:1: expected a JSON object {{prompt id: {{id, prompt, ...}}}}")
    out = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str) or not entry["prompt"].strip():
            raise T2IBenchError(f"{path}: entry {key!r} has no prompt text")
        ratings = entry.get("models", {})
        if not isinstance(ratings, dict) or any(
            not isinstance(r, list) or not r or any(not isinstance(v, (int, float)) for v in r)
            for r in ratings.values()
        ):
            raise T2IBenchError(f"{path}: entry {key!r}: 'models' must map a model to a list of ratings")
        out.append((str(key), entry))
    return out


@BENCHMARKS.register(
    "genai_bench",
    config_schema=GenAIBenchConfig,
    data_files=FILES["1600"] + FILES["527"] + IMAGES["1600"] + IMAGES["527"],
)
def load_genai_bench(cfg: GenAIBenchConfig) -> list[Prompt]:
    """GenAI-Bench prompts (see the module docstring)."""
    if cfg.variant not in FILES:
        raise T2IBenchError(f"genai_bench.variant={cfg.variant!r}; valid: {', '.join(FILES)}")
    wanted = list(cfg.skills or [])
    unknown = sorted(set(wanted) - set(SKILLS))
    if unknown:
        raise T2IBenchError(f"unknown genai_bench skill(s) {', '.join(unknown)}; valid: {', '.join(SKILLS)}")
    prompt_file, skills_file = FILES["527" if cfg.sample else cfg.variant]
    path, provenance = locate(prompt_file, cfg)
    entries = _entries(path)
    tags: dict[str, list[str]] | None = None
    if cfg.with_skills and not cfg.sample:
        try:
            skills_path, skills_provenance = locate(skills_file, cfg)
        except T2IBenchError as err:
            raise T2IBenchError(f"{err} (or set benchmark.with_skills=false: prompts without skill tags)") from None
        tags = read_skills(skills_path, {key for key, _ in entries})
        provenance = {
            **provenance,
            "skills_file": skills_provenance["source_file"],
            "skills_sha256": skills_provenance["source_sha256"],
        }
    if wanted and tags is None:
        raise T2IBenchError("genai_bench.skills needs the tag file (with_skills=true and sample=false)")
    prompts = []
    for key, entry in entries:
        skills = None if tags is None else tags.get(key, [])
        if wanted and not set(wanted) & set(skills or []):
            continue
        metadata: dict[str, Any] = {"genai_id": key, "skills": skills, **provenance}
        if entry.get("models"):
            metadata["human_alignment"] = {m: [float(v) for v in r] for m, r in entry["models"].items()}
        prompts.append(Prompt(id=key, text=entry["prompt"], benchmark="genai_bench", metadata=metadata))
    if not prompts:
        raise T2IBenchError(f"genai_bench: no prompt has the skill(s) {', '.join(wanted)}")
    return prompts
