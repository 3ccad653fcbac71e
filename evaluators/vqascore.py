"""VQAScore (Lin et al., "Evaluating Text-to-Visual Generation with Image-to-Text Generation", ECCV 2024):
the VLM's probability of answering "Yes" to ``Does this figure show "{text}"? Please answer yes or no.``
(``../shared/reference/evaluators.md`` §1; reference package linzhiqiu/t2v_metrics v3.0 @7c06208).

How the probability is computed depends on the model family, as in t2v-metrics 3.0 (recorded with every score as
``rule``): CLIP-FlanT5 uses ``geometric`` = exp(-mean cross-entropy) over the answer tokens "Yes" and ``</s>``
(about sqrt(P(Yes)), not a Yes/No softmax). Backends (``backend``):
* ``transformers``: t2ibench's re-implementation of the CLIP-FlanT5 scorer (:mod:`t2ibench.backbones.clip_flant5`),
  loading ``zhiqiulin/clip-flant5-xxl`` (bf16, the slow flan-t5-xxl tokenizer); ``model: tiny`` builds a seeded
  random model of the same structure (tests, the offline default). Batched (``batch_size``).
* ``t2v_metrics``: the reference package in its own environment (``python``: its interpreter), through
  ``_t2v_metrics_entry.py`` as a subprocess; how a user checks the native backend on real weights:
  ``t2ibench evaluators=[vqascore] evaluator.vqascore.backend=t2v_metrics evaluator.vqascore.python=/envs/t2v/bin/python``.
Families (``family``; :mod:`t2ibench.backbones.chat_vlm`): ``clip-flant5`` (default), ``llava`` (LLaVA-1.5,
``liuhaotian/llava-v1.5-13b``, t2v-metrics' checkpoint, :mod:`t2ibench.backbones.llava15`: the same template, Vicuna
chat, rule ``geometric``) and ``qwen2_vl``
(``Qwen/Qwen2-VL-7B-Instruct``: ``Does this image show "{}"?``, rule ``first_token`` = the softmax of the first
generated step at the first token of ``Yes``). ``template``, ``answer`` and ``rule`` left null take the family's
t2v-metrics 3.0 values; the resolved values are part of the cache key and recorded in the evaluator's provenance.

Scores are cached per (image sha256, text, backend, model, template, rule) in ``scores/vqa_pairs.jsonl`` of the run
store, shared with the role-bias evaluator. Per-image rows: ``vqascore`` (the yes-probability by the rule) of the
prompt text (``text: prompt``) or of a metadata field (e.g. ``text: vqa_text``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from t2ibench.api import EVALUATORS, Evaluator, MetricSpec, Requirements
from t2ibench.api.config import follows, option
from t2ibench.backbones.vqa import VQAConfig, resolved_values, vqa_requirements
from t2ibench.evaluators._vqa_cache import vqa_scores
from t2ibench.run_store import RunStore


@dataclass
class VQAScoreConfig(VQAConfig):
    """VQAScore: P("Yes") of a VLM for the t2v-metrics 3.0 template of its family (see backbones.vqa.VQAConfig)."""

    text: str = "prompt"  # prompt | a metadata field such as vqa_text
    chunk_size: int = option(256, runtime=True)
    progress: bool = follows("run.progress", True, runtime=True)


@EVALUATORS.register("vqascore")
class VQAScoreEvaluator(Evaluator):
    """VQAScore of each image with its prompt (see the module docstring)."""

    name = "vqascore"
    config_schema = VQAScoreConfig
    metrics = ("vqascore",)
    metric_specs = (MetricSpec("vqascore", "P(yes) of the VQA model (0-1)", True),)
    backbone_keys = {"VQA": ("model", "revision")}

    def eval_config(self) -> dict[str, Any]:
        """The configuration with the family's resolved model, template, answer and rule."""
        return {**super().eval_config(), **resolved_values(self.cfg)}

    def required_weights(self) -> Requirements:
        return vqa_requirements(self.cfg)

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        field = self.cfg.text
        texts = [r["prompt"]["text"] if field == "prompt" else r["prompt"]["metadata"][field] for r in records]
        return [{"vqascore": v} for v in vqa_scores(self.cfg, store, records, texts)]
