"""FID against a direct numpy/scipy computation, FID(X, X) ~ 0, symmetry, the reference cache and reference modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from t2ibench import Prompt, T2IBenchError
from t2ibench.api import EVALUATORS
from t2ibench.evaluators.fid import preprocess, statistics, torchmetrics_fid
from t2ibench.run_store import RunStore


def direct_fid(x, y):
    """FID written out independently: unbiased covariances, scipy sqrtm."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


class SmallFeatures(torch.nn.Module):
    """An injected extractor: average-pool 299 px images to 4x4 and project to 6 features."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(48, 6)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1))


def test_frechet_distance_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 5)), rng.normal(0.3, 1.2, size=(50, 5))
    expected = direct_fid(x, y)  # scipy's sqrtm on the two sample covariances
    assert torchmetrics_fid(statistics(x), y) == pytest.approx(expected, rel=1e-6)
    assert torchmetrics_fid(statistics(y), x) == pytest.approx(expected, rel=1e-6)  # symmetric
    assert abs(torchmetrics_fid(statistics(x), x)) < 1e-6  # FID(X, X) = 0


def test_conventions_differ_and_have_the_fid_size():
    image = Image.effect_noise((128, 96), 50).convert("RGB")
    clean, tm = preprocess(image, "clean"), preprocess(image, "torchmetrics")
    assert clean.shape == tm.shape == (3, 299, 299) and not torch.equal(clean, tm)
    assert clean.dtype == torch.float32 and not torch.equal(clean, clean.round())  # no quantisation in clean
    with pytest.raises(T2IBenchError, match="valid: clean, torch_fidelity, torchmetrics"):
        preprocess(image, "legacy")


def _images(n, seed, size=(64, 64)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


def test_fid_evaluator_with_an_injected_extractor(tmp_path, monkeypatch):
    store = RunStore.open(tmp_path / "runs", {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    prompts = [Prompt(f"p{i}", f"prompt {i}", "coco30k", {"image_id": f"{i:012d}"}) for i in range(6)]
    for prompt, image in zip(prompts, _images(6, 1), strict=True):
        store.write_sample(prompt, 0, image, {})
    reference = tmp_path / "ref"
    reference.mkdir()
    for i, image in enumerate(_images(8, 2, (80, 64))):
        image.save(reference / f"{i}.png")
    module = SmallFeatures()
    cfg = {
        "reference": "folder",
        "reference_dir": str(reference),
        "convention": "clean",
        "feature_module": module,
        "feature_id": "small-v1",
        "cache_dir": str(tmp_path / "fidcache"),
        "progress": False,
    }
    evaluator = EVALUATORS.get("fid")(cfg)
    frame = evaluator.evaluate(store)
    value = evaluator.aggregate(frame)[0].value
    with torch.no_grad():
        fake = module(torch.stack([preprocess(store.load_image(r), "clean") for r in store.samples()])).double().numpy()
        real = (
            module(torch.stack([preprocess(Image.open(p), "clean") for p in sorted(reference.glob("*.png"))]))
            .double()
            .numpy()
        )
    assert value == pytest.approx(direct_fid(real, fake), rel=1e-6)
    assert len(list((tmp_path / "fidcache").glob("*.npz"))) == 1
    monkeypatch.setattr(
        type(evaluator), "features", lambda self, images: (_ for _ in ()).throw(AssertionError("recomputed"))
    )
    assert evaluator.aggregate(frame)[0].value == pytest.approx(value)  # reference statistics from the cache
    monkeypatch.undo()
    coco = tmp_path / "coco"
    coco.mkdir()
    for i, image in enumerate(_images(6, 3)):
        image.save(coco / f"COCO_val2014_{i:012d}.jpg")
    by_id = EVALUATORS.get("fid")({**cfg, "reference": "coco", "coco_image_dir": str(coco)})
    assert np.isfinite(by_id.aggregate(by_id.evaluate(store))[0].value)
    (reference / "broken.png").write_bytes(b"not an image")
    with pytest.raises(T2IBenchError, match="cannot read reference image"):
        EVALUATORS.get("fid")({**cfg, "cache_dir": str(tmp_path / "other")}).aggregate(frame)


def test_per_prompt_reference_folders(tmp_path):
    store = RunStore.open(tmp_path / "runs", {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    for p in range(2):
        for seed, image in enumerate(_images(4, 10 + p)):
            store.write_sample(Prompt(f"corr-{p}", f"prompt {p}", "correlated_pairs"), seed, image, {})
    for p in range(2):
        folder = tmp_path / "ref" / f"corr-{p}"
        folder.mkdir(parents=True)
        for i, image in enumerate(_images(5, 20 + p)):
            image.save(folder / f"{i}.png")
    evaluator = EVALUATORS.get("fid")(
        {
            "reference": "per_prompt",
            "reference_dir": str(tmp_path / "ref"),
            "convention": "torchmetrics",
            "feature_module": SmallFeatures(),
            "cache_dir": str(tmp_path / "c"),
            "progress": False,
        }
    )
    cell = evaluator.aggregate(evaluator.evaluate(store))[0]
    assert cell.n == 2 and np.isfinite(cell.value)  # the mean over the two prompts' FIDs
