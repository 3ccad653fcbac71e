"""FID (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS
2017): ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) of feature statistics, computed with torchmetrics'
``FrechetInceptionDistance`` (float64) on features extracted here; ``../shared/reference/evaluators.md`` §4.1-4.3.

Reference sets (``reference``): ``folder`` (every image under ``reference_dir``), ``coco`` (the real COCO images of
the run's COCO-30K prompts, found by ``image_id`` in ``coco_image_dir`` as ``COCO_val2014_<id>.jpg``, ``<id>.jpg`` or
``<id>.png``), or ``per_prompt`` (``reference_dir/<prompt id>/``: the Decorrelation paper's image-image FID against a
curated folder per prompt; the cell is the mean over prompts).
Features (``feature_extractor``): ``inception`` = the FID Inception-v3 (:mod:`t2ibench.backbones.fid_inception`, plain
torch in torch-fidelity's layout, loading torch-fidelity's published weights file: no torchvision needed), 2048-d pool
features; ``tiny`` = a seeded random conv net (the tiny model's offline stand-in; its numbers mean nothing); any
module mapping (B, 3, 299, 299) float images in [0, 255] to (B, D) can be injected (``feature_module``), e.g. in tests.
Conventions (``convention``, recorded with every number): ``clean`` = clean-fid's (GaParmar/clean-fid@v0.1.35, mode
``clean``): PIL bicubic resize to 299 of each channel in float, no quantisation, the float image into the network
(RespoDiff's choice); ``torch_fidelity`` = torch-fidelity's (toshas/torch-fidelity@v0.4.0, TF1 FID, and torchmetrics
with ``antialias=False``): the uint8 image at its own size, TensorFlow-1 bilinear resize (no antialias, no half-pixel
centres); ``torchmetrics`` = torchmetrics 1.9's ``FrechetInceptionDistance`` default: the uint8 image, torch bilinear
resize *with* antialias (``antialias=True``, its default since torchmetrics#3130; older releases resized as
``torch_fidelity``). Each equals its reference
on the same weights (``tests/test_reference_parity.py``; README "Evaluator parity" gives the measured differences).
The reference statistics are cached under ``$T2IBENCH_CACHE/fid/`` by (folder content hash, extractor, convention).
Per-image rows: ``feature_file`` and ``feature_index`` (generated features kept in the store) and ``image_id``.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2ibench.api import EVALUATORS, Evaluator, Requirements
from t2ibench.api.config import option, stand_in
from t2ibench.api.evaluator import EvaluatorConfig
from t2ibench.atomic import atomic_write_bytes
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import stable_hash
from t2ibench.run_store import RunStore
from t2ibench.stats import Cell, MetricSpec, mean_cell

CONVENTIONS = ("clean", "torch_fidelity", "torchmetrics")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FID_SIZE = 299


def preprocess(image: Any, convention: str) -> Any:
    """(3, 299, 299) float tensor in [0, 255] under the convention (see the module docstring)."""
    import numpy as np
    import torch
    from PIL import Image

    if convention not in CONVENTIONS:
        raise T2IBenchError(f"fid.convention={convention!r}; valid: {', '.join(CONVENTIONS)}")
    rgb = image.convert("RGB")
    if convention == "clean":
        channels = [
            np.asarray(
                Image.fromarray(np.asarray(rgb, dtype=np.float32)[..., c], mode="F").resize(
                    (FID_SIZE, FID_SIZE), Image.BICUBIC
                )
            )
            for c in range(3)
        ]
        return torch.from_numpy(np.stack(channels).clip(0, 255))
    from t2ibench.backbones.fid_inception import resize_like_tf1

    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).float().unsqueeze(0)
    if convention == "torch_fidelity":
        return resize_like_tf1(pixels, FID_SIZE)[0]
    return torch.nn.functional.interpolate(
        pixels, size=(FID_SIZE, FID_SIZE), mode="bilinear", align_corners=False, antialias=True
    )[0]


class _Passthrough:
    """A torchmetrics feature 'network' that returns the (B, D) features it is given."""

    def __new__(cls, dim: int) -> Any:
        import torch

        class Passthrough(torch.nn.Module):
            def forward(self, x: Any) -> Any:
                return x if x.ndim == 2 else torch.zeros(x.shape[0], dim, dtype=torch.float64)

        return Passthrough()


def torchmetrics_fid(real: Mapping[str, Any], fake_features: Any) -> float:
    """FID from cached real statistics (sum, covariance sum, count) and fake features, by torchmetrics (float64)."""
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    dim = int(real["sum"].shape[0])
    metric = FrechetInceptionDistance(feature=_Passthrough(dim), normalize=False, reset_real_features=False)
    metric.set_dtype(torch.float64)
    metric.real_features_sum = torch.as_tensor(real["sum"], dtype=torch.float64)
    metric.real_features_cov_sum = torch.as_tensor(real["cov_sum"], dtype=torch.float64)
    metric.real_features_num_samples = torch.as_tensor(int(real["n"]))
    metric.update(torch.as_tensor(fake_features, dtype=torch.float64), real=False)
    return float(metric.compute())


def statistics(features: Any) -> dict[str, Any]:
    """The sufficient statistics torchmetrics keeps: sum, sum of outer products, count (float64)."""
    import numpy as np

    f = np.asarray(features, dtype=np.float64)
    return {"sum": f.sum(0), "cov_sum": f.T @ f, "n": np.int64(f.shape[0])}


def tiny_feature_extractor(seed: int = 0) -> Any:
    """A seeded random convolutional feature extractor (64-d) standing in for Inception in offline tiny runs."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 5, stride=4),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 5, stride=4),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(128, 64),
        ).eval()
    return lambda x: net(x.float() / 127.5 - 1.0)


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def files_hash(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@dataclass
class FIDConfig(EvaluatorConfig):
    """FID against a reference set; torchmetrics' FrechetInceptionDistance in float64."""

    reference: str = "folder"  # folder (reference_dir) | coco (COCO images by image_id) | per_prompt (<dir>/<id>/)
    reference_dir: str | None = None
    coco_image_dir: str | None = None
    feature_extractor: str = stand_in("fid", "inception")  # inception: FID Inception-v3; tiny: a random stand-in
    inception_weights: str | None = None  # null: torch-fidelity's release file (downloaded once); or a local .pth
    feature_id: str = ""  # names an injected feature_module in the score key
    feature_module: Any = option(None, runtime=True)  # an injected (B, 3, 299, 299) -> (B, D) module (tests)
    seed: int = 0
    convention: str = "clean"  # clean (clean-fid; RespoDiff) | torch_fidelity (TF1 bilinear) | torchmetrics (antialias)
    cache_dir: str | None = option(None, runtime=True)  # reference statistics; null = $T2IBENCH_CACHE/fid


@EVALUATORS.register("fid")
class FIDEvaluator(Evaluator):
    """FID of a run's images against a reference set (see the module docstring)."""

    name = "fid"
    config_schema = FIDConfig
    metric_specs = (MetricSpec("fid", "Frechet distance of image features", False),)
    backbone_keys = {"features": ("feature_extractor", None)}

    def required_weights(self) -> Requirements:
        needs = Requirements()
        if self.cfg.feature_extractor == "inception":
            needs.notes.append(
                "fid: the FID Inception weights (torch-fidelity's release file, downloaded on first use; offline: "
                "evaluator.fid.inception_weights=<.pth>)"
            )
        return needs

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        self._module = self.cfg.feature_module

    def eval_config(self) -> dict[str, Any]:
        config = super().eval_config()
        if self._module is not None:
            config["feature_extractor"] = f"injected:{type(self._module).__name__}:{self.cfg.feature_id}"
        return config

    def extractor(self) -> Any:
        if self._module is None and self.cfg.feature_extractor == "tiny":
            self._module = tiny_feature_extractor(self.cfg.seed)
        if self._module is None:
            if self.cfg.feature_extractor != "inception":
                raise T2IBenchError("fid.feature_extractor must be 'inception' or 'tiny' (or inject feature_module)")
            from t2ibench.backbones import fid_inception
            from t2ibench.models import resolve_device

            device = resolve_device(self.cfg.device)
            network = fid_inception.load(self.cfg.inception_weights, device)
            self._module = lambda x: network(x.to(device), resize=False)
        return self._module

    def features(self, images: Sequence[Any]) -> Any:
        import torch

        batch = torch.stack([preprocess(i, self.cfg.convention) for i in images])
        with torch.inference_mode():
            return self.extractor()(batch).double().cpu().numpy()

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        import numpy as np

        feats = np.concatenate(
            [self.features([store.load_image(r) for r in records[i : i + 32]]) for i in range(0, len(records), 32)]
        )
        folder = store.scores_dir / "fid_features"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.eval_key}-{stable_hash([r['image_sha256'] for r in records], 12)}.npy"
        buffer = io.BytesIO()
        np.save(buffer, feats, allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
        return [
            {
                "feature_file": str(path),
                "feature_index": i,
                "image_id": str(r["prompt"]["metadata"].get("image_id", "")),
            }
            for i, r in enumerate(records)
        ]

    # -- reference ------------------------------------------------------------------------------
    def reference_stats(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Statistics of reference images, cached by (content hash, extractor, convention)."""
        import numpy as np
        from PIL import Image

        if not paths:
            raise T2IBenchError("fid: the reference set is empty")
        key = stable_hash(
            {
                "files": files_hash(paths),
                "extractor": self.eval_config().get("feature_extractor", "inception"),
                "convention": self.cfg.convention,
            },
            16,
        )
        cache = (
            Path(
                self.cfg.cache_dir
                or Path(os.environ.get("T2IBENCH_CACHE") or Path.home() / ".cache" / "t2ibench") / "fid"
            )
            / f"{key}.npz"
        )
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as data:
                return {k: data[k] for k in ("sum", "cov_sum", "n")}
        images = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except Exception as err:  # a corrupt or non-image file
                raise T2IBenchError(f"fid: cannot read reference image {path}: {err}") from None
        feats = np.concatenate([self.features(images[i : i + 32]) for i in range(0, len(images), 32)])
        stats = statistics(feats)
        cache.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **stats)
        atomic_write_bytes(cache, buffer.getvalue())
        return stats

    def _reference_paths(self, frame: Any, prompt_id: str | None = None) -> list[Path]:
        mode = self.cfg.reference
        if mode == "folder":
            return images_in(Path(self.cfg.reference_dir))
        if mode == "per_prompt":
            return images_in(Path(self.cfg.reference_dir) / str(prompt_id))
        if mode == "coco":
            root = Path(self.cfg.coco_image_dir)
            paths = []
            for image_id in sorted(set(frame["image_id"].astype(str))):
                found = next(
                    (
                        root / n
                        for n in (f"COCO_val2014_{image_id}.jpg", f"{image_id}.jpg", f"{image_id}.png")
                        if (root / n).is_file()
                    ),
                    None,
                )
                if found is None:
                    raise T2IBenchError(f"fid: no real COCO image for id {image_id} in {root}")
                paths.append(found)
            return paths
        raise T2IBenchError(f"fid.reference={mode!r}; valid: folder, coco, per_prompt")

    def aggregate(self, frame: Any) -> list[Cell]:
        import numpy as np

        if not len(frame):
            return [Cell("fid", float("nan"))]
        loaded: dict[str, Any] = {}
        feats = np.stack(
            [
                loaded.setdefault(f, np.load(f, allow_pickle=False))[int(i)]
                for f, i in zip(frame["feature_file"], frame["feature_index"], strict=True)
            ]
        )
        if self.cfg.reference == "per_prompt":
            values = []
            for prompt_id, index in frame.groupby("prompt_id").groups.items():
                rows = [frame.index.get_loc(i) for i in index]
                values.append(
                    torchmetrics_fid(self.reference_stats(self._reference_paths(frame, prompt_id)), feats[rows])
                )
            return [mean_cell("fid", values)]
        return [
            Cell(
                "fid",
                torchmetrics_fid(self.reference_stats(self._reference_paths(frame)), feats),
                None,
                None,
                len(frame),
            )
        ]
