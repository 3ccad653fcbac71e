"""Attend-and-Excite evaluation prompts (Chefer et al., SIGGRAPH 2023), as used by A&E and SynGen.

``a.e_prompts.txt`` (JSON despite its name), the attachment linked from the README of
yuval-alaluf/Attend-and-Excite@163efdfd341bf3590df3c0c2b582935fbc8e8343 (MIT); the byte copy verified here
is weixi-feng/Structured-Diffusion-Guidance@bd46a35976cd839382e64484cc93f36b00b5fce9 ``data/a.e_prompts.txt``.
276 prompts: ``animals`` 66 ("a {animal} and a {animal}"), ``animals_objects`` 144 (108 "a {animal} and a
{colour} {object}", 36 "a {animal} with a {bow|crown|glasses}"), ``objects`` 66 ("a {colour} {object} and a
{colour} {object}"). The original grammar ("a elephant") is kept. SynGen uses animals_objects + objects.

Options: ``subsets`` (default all three, in file order), ``data_dir``, ``verify_sha256``, ``sample`` (the embedded sample of the first rows).

Metadata:
    subset, index: where the prompt is in the file.
    subject_words: the animal/object nouns in prompt order (the tokens A&E excites).
    colors: the colour words in prompt order.
    source_file, source_sha256.
"""

from __future__ import annotations

from dataclasses import dataclass

from t2ibench.api import BENCHMARKS
from t2ibench.api.benchmark import FileBenchmarkConfig
from t2ibench.benchmarks._files import locate
from t2ibench.data_files import DataFile, read_json
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt

AE_FILE = DataFile(
    folder="attend_and_excite",
    filename="a.e_prompts.txt",
    sha256="ae439de4286c026977b9fc44c2158f77285adbe5ffa05e54fc67eb9b8bc6f86a",
    urls=(
        "https://github.com/AttendAndExcite/Attend-and-Excite/files/11336216/a.e_prompts.txt",
        "https://raw.githubusercontent.com/weixi-feng/Structured-Diffusion-Guidance/bd46a35976cd839382e64484cc93f36b00b5fce9/data/a.e_prompts.txt",
    ),
    sample="attend_and_excite.json",
    sample_note="the first 3 prompts of each of animals, animals_objects, objects of a.e_prompts.txt (JSON); MIT (yuval-alaluf/Attend-and-Excite)",
)
SUBSETS = ("animals", "animals_objects", "objects")
ANIMALS = ("bear", "bird", "cat", "dog", "elephant", "frog", "horse", "lion", "monkey", "mouse", "rabbit", "turtle")
OBJECTS = (
    "apple",
    "backpack",
    "balloon",
    "bench",
    "bow",
    "bowl",
    "car",
    "chair",
    "clock",
    "crown",
    "glasses",
    "suitcase",
)
COLORS = ("black", "blue", "brown", "gray", "green", "orange", "pink", "purple", "red", "white", "yellow")


@dataclass
class AttendAndExciteConfig(FileBenchmarkConfig):
    name: str = "attend_and_excite"
    subsets: list[str] | None = None  # e.g. [animals_objects, objects] (SynGen's choice); null = all three


@BENCHMARKS.register("attend_and_excite", config_schema=AttendAndExciteConfig, data_files=(AE_FILE,))
def load_attend_and_excite(cfg: AttendAndExciteConfig) -> list[Prompt]:
    """Attend-and-Excite prompts (see the module docstring)."""
    subsets = cfg.subsets
    chosen = list(subsets or SUBSETS)
    unknown = sorted(set(chosen) - set(SUBSETS))
    if unknown:
        raise T2IBenchError(f"unknown attend_and_excite subset(s) {', '.join(unknown)}; valid: {', '.join(SUBSETS)}")
    path, provenance = locate(AE_FILE, cfg)
    data = read_json(path)
    if not isinstance(data, dict) or any(not isinstance(data.get(s), list) for s in SUBSETS):
        raise T2IBenchError(f"{path}:1: expected a JSON object with the lists {', '.join(SUBSETS)}")
    prompts = []
    for subset in SUBSETS:
        if subset not in chosen:
            continue
        for index, text in enumerate(data[subset]):
            words = str(text).split()
            subject_words = [w for w in words if w in ANIMALS or w in OBJECTS]
            if len(subject_words) != 2:
                raise T2IBenchError(
                    f"{path}: {subset}[{index}] {text!r}: expected two subject words, found {subject_words}"
                )
            prompts.append(
                Prompt(
                    id=f"ae-{subset.replace('_', '-')}-{index}",
                    text=str(text),
                    benchmark="attend_and_excite",
                    metadata={
                        "subset": subset,
                        "index": index,
                        "subject_words": subject_words,
                        "colors": [w for w in words if w in COLORS],
                        **provenance,
                    },
                )
            )
    return prompts
