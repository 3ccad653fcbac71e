import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.multimodal.clip_score import CLIPScore

from t2ibench import Prompt, T2IBenchError
from t2ibench.api import EVALUATORS
from t2ibench.run_store import RunStore
from t2ibench.tiny_models import build_tiny_clip

TEXTS = [
    "a cat and a frog",
    "a white dog sitting on a red couch",
    "an old train with rusty tracks",
    "a photo of the face of a doctor",
]


class _FeaturesAsTensors(torch.nn.Module):
    """torchmetrics 1.x expects ``get_*_features`` to return tensors; transformers 5 returns model outputs."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs):
        out = self.model.get_image_features(*args, **kwargs)
        return out if torch.is_tensor(out) else out.pooler_output

    def get_text_features(self, *args, **kwargs):
        out = self.model.get_text_features(*args, **kwargs)
        return out if torch.is_tensor(out) else out.pooler_output


@pytest.fixture()
def store(tmp_path):
    store = RunStore.open(tmp_path, {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    rng = np.random.default_rng(0)
    for i, text in enumerate(TEXTS):
        pixels = rng.integers(0, 256, size=(80, 96, 3), dtype=np.uint8)  # not square: exercises resize + crop
        store.write_sample(Prompt(f"p{i}", text, "b"), 0, Image.fromarray(pixels), {})
    return store


def _evaluator(**cfg):
    base = {
        "backbone": "tiny",
        "scale": 100.0,
        "clamp": "none",
        "prefix": "",
        "seed": 0,
        "batch_size": 3,
        "device": "cpu",
        "progress": False,
    }
    return EVALUATORS.get("clip_score")({**base, **cfg})


def test_equals_torchmetrics_clipscore_on_the_same_model_and_images(store):
    frame = _evaluator(clamp="mean").evaluate(store)
    model, processor = build_tiny_clip(0)
    metric = CLIPScore(model_name_or_path=lambda: (_FeaturesAsTensors(model), processor))
    images = [torch.from_numpy(np.array(store.load_image(r))).permute(2, 0, 1) for r in store.samples()]  # uint8 CHW
    metric.update(images, [r["prompt"]["text"] for r in store.samples()])
    expected = float(metric.compute())
    cell = _evaluator(clamp="mean").aggregate(frame)[0]
    assert cell.value == pytest.approx(expected, abs=1e-4)
    # Per image: 100 * cos, the value torchmetrics' functional form returns for one pair.
    for record, value in zip(store.samples(), frame["clip_score"], strict=True):
        single = CLIPScore(model_name_or_path=lambda: (_FeaturesAsTensors(model), processor))
        image = torch.from_numpy(np.array(store.load_image(record))).permute(2, 0, 1)
        single.update([image], [record["prompt"]["text"]])
        assert max(value, 0.0) == pytest.approx(float(single.compute()), abs=1e-4)


def test_clamp_rules_scale_and_prefix(store):
    raw = _evaluator().evaluate(store)
    per_sample = _evaluator(clamp="per_sample").evaluate(store)
    assert np.allclose(per_sample["clip_score"], np.maximum(raw["clip_score"], 0.0))
    hessel = _evaluator(scale=2.5, clamp="per_sample").evaluate(store)
    assert np.allclose(hessel["clip_score"], 2.5 * np.maximum(raw["clip_cos"], 0.0))
    prefixed = _evaluator(prefix="A photo depicts ").evaluate(store)
    assert not np.allclose(prefixed["clip_cos"], raw["clip_cos"])
    mean_clamped = _evaluator(clamp="mean").aggregate(raw.assign(clip_score=-abs(raw["clip_score"])))[0]
    assert mean_clamped.value == 0.0
    with pytest.raises(T2IBenchError, match="valid: none, per_sample, mean"):
        _evaluator(clamp="max")


def test_rows_are_cached_by_image_hash_and_config(store, tmp_path):
    ev = _evaluator()
    first = ev.evaluate(store)
    assert len(first) == 4 and set(first["eval_key"]) == {ev.eval_key}
    csv = store.scores_path("clip_score").read_bytes()
    again = ev.evaluate(store)
    assert store.scores_path("clip_score").read_bytes() == csv and again.equals(first)
    _evaluator(batch_size=1).evaluate(store)  # runtime keys do not change the key
    assert store.scores_path("clip_score").read_bytes() == csv
    _evaluator(scale=2.5).evaluate(store)  # a new convention is scored afresh, the old rows stay
    assert len(store.read_scores("clip_score")) == 8
    # A regenerated image (new bytes) is rescored.
    record = store.samples()[0]
    store.write_sample(Prompt.from_dict(record["prompt"]), 0, Image.new("RGB", (64, 64), (255, 0, 0)), {})
    rescored = ev.evaluate(store)
    assert (
        len(rescored) == 4
        and rescored.loc[rescored.prompt_id == "p0", "image_sha256"].item() == store.samples()[0]["image_sha256"]
    )


def test_long_prompts_are_truncated_with_a_warning(tmp_path, caplog):
    store = RunStore.open(tmp_path, {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    long_text = " ".join(["cat"] * 100)
    store.write_sample(Prompt("long", long_text, "b"), 0, Image.new("RGB", (64, 64)), {})
    with caplog.at_level("WARNING"):
        frame = _evaluator().evaluate(store)
    assert "truncated" in caplog.text and math.isfinite(frame["clip_score"].item())


def test_missing_real_backbone_offline_is_a_clear_error(store):
    with pytest.raises(T2IBenchError, match="not available offline"):
        _evaluator(backbone="openai/clip-vit-base-patch32").evaluate(store)


def test_chunk_size_changes_no_number(store, tmp_path):
    """chunk_size says when rows are written, not what is computed: chunks are whole batches, so every image shares
    its forward pass with the same images whatever the chunk size (a chunk of 1 used to move scores by 1e-7)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    whole = _evaluator(chunk_size=256).evaluate(store)
    chunked = _evaluator(chunk_size=1).evaluate(RunStore(copy))
    assert whole["clip_score"].tolist() == chunked["clip_score"].tolist()  # bit for bit
    assert _evaluator(chunk_size=1).eval_key == _evaluator(chunk_size=256).eval_key
