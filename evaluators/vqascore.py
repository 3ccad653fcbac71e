"""VQAScore (Lin et al., "Evaluating Text-to-Visual Generation with Image-to-Text Generation", ECCV 2024):
the VLM's probability of answering "Yes" to ``Does this figure show "{text}"? Please answer yes or no.``
(``../shared/reference/evaluators.md`` §1; reference package linzhiqiu/t2v_metrics v3.0 @7c06208).

How the probability is computed depends on the model family, as in t2v-metrics 3.0 (recorded with every score as
``rule``): CLIP-FlanT5 uses ``geometric`` = exp(-mean cross-entropy) over the answer tokens "Yes" and ``</s>``
(about sqrt(P(Yes)), not a Yes/No softmax). Backends (``backend``):
* ``transformers``: t2ibench's re-implementation of the CLIP-FlanT5 scorer (:mod:`t2ibench.evaluators._vlm`),
  loading ``zhiqiulin/clip-flant5-xxl`` (bf16, the slow flan-t5-xxl tokenizer); ``model: tiny`` builds a seeded
  random model of the same structure (tests, the offline default). Batched (``batch_size``).
* ``t2v_metrics``: the reference package in its own environment (``python``: its interpreter), through
  ``_t2v_metrics_entry.py`` as a subprocess; how a user checks the native backend on real weights:
  ``t2ibench evaluators=[vqascore] evaluator.vqascore.backend=t2v_metrics evaluator.vqascore.python=/envs/t2v/bin/python``.
Families (``family``; :mod:`t2ibench.evaluators._chat_vlm`): ``clip-flant5`` (default), ``llava`` (LLaVA-1.5,
``llava-hf/llava-1.5-13b-hf``: the same template, Vicuna chat, rule ``geometric``) and ``qwen2_vl``
(``Qwen/Qwen2-VL-7B-Instruct``: ``Does this image show "{}"?``, rule ``first_token`` = the softmax of the first
generated step at the first token of ``Yes``). ``template``, ``answer`` and ``rule`` left null take the family's
t2v-metrics 3.0 values; the resolved values are part of the cache key and recorded in the evaluator's provenance.

Scores are cached per (image sha256, text, backend, model, template, rule) in ``scores/vqa_pairs.jsonl`` of the run
store, shared with the role-bias evaluator. Per-image rows: ``vqascore`` (the yes-probability by the rule) of the
prompt text (``text: prompt``) or of a metadata field (e.g. ``text: vqa_text``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2ibench.atomic import append_line
from t2ibench.errors import T2IBenchError
from t2ibench.evaluators import EVALUATORS
from t2ibench.evaluators.base import Evaluator
from t2ibench.hashing import stable_hash
from t2ibench.run_store import RunStore
from t2ibench.stats import MetricSpec

log = logging.getLogger(__name__)

_MODELS: dict[tuple, Any] = {}


def resolve_family(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with ``family`` (default clip-flant5) and its template, answer and rule filled where left null."""
    from t2ibench.evaluators._chat_vlm import family

    name = cfg.get("family") or "clip-flant5"
    preset = family(name)
    out = dict(cfg)
    out["family"] = name
    for key in ("template", "answer", "rule"):
        if out.get(key) is None:
            out[key] = getattr(preset, key)
    if out.get("model") is None:
        out["model"] = preset.hub_default
    if name == "clip-flant5" and out["rule"] != "geometric":
        raise T2IBenchError("vqascore: the clip-flant5 family supports rule=geometric only")
    return out


def backend_key(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that changes a VQAScore number."""
    cfg = resolve_family(cfg)
    keys = ("backend", "family", "model", "revision", "tokenizer", "template", "answer", "rule", "dtype")
    return {k: cfg.get(k) for k in keys}


class PairCache:
    """VQAScore of (image sha256, text) pairs under one backend key, in ``<store>/scores/vqa_pairs.jsonl``."""

    def __init__(self, store: RunStore, cfg: Mapping[str, Any]):
        self.path = store.scores_dir / "vqa_pairs.jsonl"
        self.key = stable_hash(backend_key(cfg))
        self.values: dict[tuple[str, str], float] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if row.get("key") == self.key:
                    self.values[(row["image_sha256"], row["text"])] = float(row["score"])

    def get(self, sha: str, text: str) -> float | None:
        return self.values.get((sha, text))

    def put(self, sha: str, text: str, score: float) -> None:
        self.values[(sha, text)] = score
        append_line(self.path, json.dumps({"key": self.key, "image_sha256": sha, "text": text, "score": score}))


def _native_model(cfg: Mapping[str, Any]) -> Any:
    from t2ibench.models import resolve_device

    cfg = resolve_family(cfg)
    device = resolve_device(cfg.get("device", "auto"))
    name = cfg.get("family") or "clip-flant5"
    key = (name, cfg.get("model"), cfg.get("revision"), cfg.get("tokenizer"), cfg.get("dtype"), device)
    if key in _MODELS:
        return _MODELS[key]
    dtype = cfg.get("dtype") or ("bfloat16" if device.startswith("cuda") else "float32")
    if name != "clip-flant5":
        from t2ibench.evaluators._chat_vlm import ChatVLM, tiny_chat_vlm

        if cfg.get("model") == "tiny":
            _MODELS[key] = tiny_chat_vlm(name, int(cfg.get("seed", 0))).to(device)
        else:
            _MODELS[key] = ChatVLM.from_pretrained(name, cfg["model"], cfg.get("revision"), dtype, device)
    else:
        from t2ibench.evaluators._vlm import CLIPFlanT5, tiny_clip_flant5

        if cfg.get("model") == "tiny":
            _MODELS[key] = tiny_clip_flant5(int(cfg.get("seed", 0))).to(device)
        else:
            _MODELS[key] = CLIPFlanT5.from_pretrained(
                cfg["model"], cfg.get("revision"), cfg.get("tokenizer", "google/flan-t5-xxl"), dtype, device
            )
    return _MODELS[key]


def score_native(cfg: Mapping[str, Any], images: Sequence[Any], texts: Sequence[str]) -> list[float]:
    """VQAScore of each (images[i], texts[i]) with the transformers backend, in batches of ``batch_size``."""
    cfg = resolve_family(cfg)
    model = _native_model(cfg)
    template, answer, rule = cfg["template"], cfg["answer"], cfg["rule"]
    batch = max(1, int(cfg.get("batch_size", 8)))
    out: list[float] = []
    for start in range(0, len(texts), batch):
        questions = [template.format(t) for t in texts[start : start + batch]]
        out += model.answer_probability(list(images[start : start + batch]), questions, answer, rule)
    return out


def score_t2v_metrics(cfg: Mapping[str, Any], image_paths: Sequence[str], texts: Sequence[str]) -> list[float]:
    """VQAScore through the reference package in its own environment (see the module docstring)."""
    python = cfg.get("python")
    if not python:
        raise T2IBenchError(
            "vqascore backend t2v_metrics needs evaluator.vqascore.python=<python of an environment with t2v-metrics==3.0>"
        )
    entry = Path(__file__).with_name("_t2v_metrics_entry.py")
    with tempfile.TemporaryDirectory(prefix="t2ibench-t2v-") as folder:
        request, output = Path(folder, "pairs.json"), Path(folder, "scores.json")
        request.write_text(json.dumps([{"image": str(p), "text": t} for p, t in zip(image_paths, texts, strict=True)]))
        try:
            result = subprocess.run(
                [
                    python,
                    str(entry),
                    "--model",
                    str(cfg.get("model")),
                    "--request",
                    str(request),
                    "--output",
                    str(output),
                ],
                capture_output=True,
                text=True,
                env={**os.environ},
                timeout=float(cfg.get("timeout", 86400)),
            )
        except FileNotFoundError:
            raise T2IBenchError(f"vqascore: the t2v-metrics python {python} does not exist") from None
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise T2IBenchError(f"vqascore: t2v-metrics failed in {python}: {last}")
        data = json.loads(output.read_text())
    log.info(
        "vqascore: scored %d pairs with t2v-metrics %s (%s)",
        len(texts),
        data.get("t2v_metrics_version"),
        data.get("model"),
    )
    return [float(row["score"]) for row in data["scores"]]


def vqa_scores_for_images(cfg: Mapping[str, Any], images: Sequence[Any], texts: Sequence[str]) -> list[float]:
    """VQAScore of in-memory PIL images (no run store, no cache): the native backend, or t2v-metrics via temporary PNGs."""
    if cfg.get("backend", "transformers") == "t2v_metrics":
        with tempfile.TemporaryDirectory(prefix="t2ibench-vqa-") as folder:
            paths = []
            for i, image in enumerate(images):
                paths.append(str(Path(folder, f"{i}.png")))
                image.save(paths[-1])
            return score_t2v_metrics(cfg, paths, texts)
    return score_native(cfg, images, texts)


def vqa_scores(
    cfg: Mapping[str, Any], store: RunStore, records: Sequence[Mapping[str, Any]], texts: Sequence[str]
) -> list[float]:
    """VQAScore of each (records[i]'s image, texts[i]), from the pair cache where possible."""
    cache = PairCache(store, cfg)
    todo = [i for i, (r, t) in enumerate(zip(records, texts, strict=True)) if cache.get(r["image_sha256"], t) is None]
    if todo:
        if cfg.get("backend", "transformers") == "t2v_metrics":
            values = score_t2v_metrics(
                cfg, [str(store.path / records[i]["image"]) for i in todo], [texts[i] for i in todo]
            )
        elif cfg.get("backend", "transformers") == "transformers":
            values = score_native(cfg, [store.load_image(records[i]) for i in todo], [texts[i] for i in todo])
        else:
            raise T2IBenchError(f"vqascore.backend={cfg.get('backend')!r}; valid: transformers, t2v_metrics")
        for i, value in zip(todo, values, strict=True):
            cache.put(records[i]["image_sha256"], texts[i], value)
    return [float(cache.get(r["image_sha256"], t)) for r, t in zip(records, texts, strict=True)]


@EVALUATORS.register("vqascore")
class VQAScoreEvaluator(Evaluator):
    """VQAScore of each image with its prompt (see the module docstring)."""

    name = "vqascore"
    metrics = ("vqascore",)
    metric_specs = (MetricSpec("vqascore", "P(yes) of the VQA model (0-1)", True),)
    backbone_keys = {"VQA": ("model", "revision")}
    runtime_keys = (*Evaluator.runtime_keys, "python", "timeout")

    def eval_config(self) -> dict[str, Any]:
        """The configuration with the family's resolved model, template, answer and rule."""
        resolved = resolve_family(self.cfg)
        return {**super().eval_config(), **{k: resolved[k] for k in ("family", "model", "template", "answer", "rule")}}

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        field = self.cfg.get("text", "prompt")
        texts = [r["prompt"]["text"] if field == "prompt" else r["prompt"]["metadata"][field] for r in records]
        return [{"vqascore": v} for v in vqa_scores(self.cfg, store, records, texts)]
