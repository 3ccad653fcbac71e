"""BERTScore of a VLM caption against the prompt, the DDPO recipe (Black et al., kvablack/ddpo-pytorch
``rewards.py::llava_bertscore`` with kvablack/LLaVA-server) as used by the Decorrelation paper (ICCV 2025; its
Qwen2-VL-7B-Instruct captioner is unverified, ``../shared/reference/evaluators.md`` §3).

1. The image is JPEG-encoded at quality 80 and decoded (the DDPO server round trip, ``jpeg_quality``);
2. the VLM answers ``Answer concisely: what is going on in this image?`` greedily, at most 64 new tokens
   (the caption, kept per image);
3. BERTScore **recall** with ``microsoft/deberta-xlarge-mnli`` layer 40, no idf, no baseline rescaling
   (bert-score 0.3.13 defaults), candidate = the caption, reference = ``"The image contains " + prompt``.
Through the bert-score package (``BERTScorer``); the DeBERTa tokenizer's missing ``model_max_length`` is capped at
512 (Tiiiger/bert_score#205). Captioners (``captioner``, a VLM family of :mod:`t2ibench.backbones.chat_vlm`):
``qwen2_vl`` (default: the paper's ``Qwen/Qwen2-VL-7B-Instruct``, its chat template), ``llava`` (the DDPO server's
LLaVA, Vicuna prompt; answers cut at ``stop`` = ``###`` as the server does) or ``clip-flant5``; ``caption_model:
tiny`` builds a seeded random model of the family (tests). Tests use the offline MiniLM package as the BERT model
(``bert_model`` = its folder, ``num_layers`` 6).
Per-image rows: ``bertscore_recall``, ``bertscore_precision``, ``bertscore_f1`` and ``caption``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from t2ibench.api import EVALUATORS, Evaluator, Requirements
from t2ibench.api.config import option, stand_in
from t2ibench.api.evaluator import EvaluatorConfig
from t2ibench.backbones import bert, vqa
from t2ibench.backbones.chat_vlm import FAMILIES
from t2ibench.errors import T2IBenchError
from t2ibench.evaluators._images import jpeg_round_trip
from t2ibench.run_store import RunStore
from t2ibench.stats import MetricSpec

DDPO_QUESTION = "Answer concisely: what is going on in this image?"


def captioner_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The VQA-family config of the captioner."""
    if cfg.captioner not in FAMILIES:
        raise T2IBenchError(f"bertscore.captioner={cfg.captioner!r}; valid: {', '.join(sorted(FAMILIES))}")
    return {
        "family": cfg.captioner,
        "model": cfg.caption_model,
        "revision": cfg.caption_revision,
        "tokenizer": cfg.caption_tokenizer,
        "dtype": cfg.dtype,
        "device": cfg.device,
        "seed": cfg.seed,
    }


@dataclass
class BERTScoreConfig(EvaluatorConfig):
    """BERTScore recall of a VLM caption against "The image contains {prompt}", the DDPO recipe."""

    captioner: str = "qwen2_vl"  # the Decorrelation paper's captioner family | llava (DDPO's) | clip-flant5
    caption_model: str = stand_in("vqa", "Qwen/Qwen2-VL-7B-Instruct")  # tiny = a random model of the family
    caption_revision: str = "main"
    caption_tokenizer: str = "google/flan-t5-xxl"  # clip-flant5 only
    stop: str | None = None  # cut captions at this string (the DDPO LLaVA server stops at "###")
    question: str = "Answer concisely: what is going on in this image?"
    max_new_tokens: int = 64
    jpeg_quality: int = 80
    reference_prefix: str = "The image contains "
    bert_model: str = stand_in("bert", "microsoft/deberta-xlarge-mnli")
    num_layers: int = stand_in("bert_layers", 40)
    dtype: str | None = None
    seed: int = 0
    batch_size: int = option(8, runtime=True)


@EVALUATORS.register("bertscore")
class BERTScoreEvaluator(Evaluator):
    """Caption, then BERTScore recall against the prompt (see the module docstring)."""

    name = "bertscore"
    config_schema = BERTScoreConfig
    metrics = ("bertscore_recall",)
    metric_specs = (MetricSpec("bertscore_*", "BERTScore (0-1) of the caption vs the prompt", True),)
    backbone_keys = {"captioner": ("caption_model", "caption_revision"), "BERT": ("bert_model", None)}

    def required_weights(self) -> Requirements:
        needs = vqa.vqa_requirements(captioner_config(self.cfg))
        needs.add_weight(self.cfg.bert_model)
        return needs

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        model = vqa.load(captioner_config(self.cfg))
        images = [jpeg_round_trip(store.load_image(r), self.cfg.jpeg_quality) for r in records]
        captions = []
        batch = max(1, self.cfg.batch_size)
        for start in range(0, len(images), batch):
            captions += model.generate(
                images[start : start + batch],
                self.cfg.question,
                self.cfg.max_new_tokens,
                self.cfg.stop,
            )
        references = [self.cfg.reference_prefix + r["prompt"]["text"] for r in records]
        scorer = bert.load(self.cfg.bert_model, self.cfg.num_layers)
        precision, recall, f1 = scorer.score([c if c else "." for c in captions], references)
        return [
            {"bertscore_recall": float(r), "bertscore_precision": float(p), "bertscore_f1": float(f), "caption": c}
            for p, r, f, c in zip(precision, recall, f1, captions, strict=True)
        ]
