"""The FID Inception-v3 (Szegedy et al. 2016 as ported from TensorFlow's 2015-12-05 graph for Heusel et al.'s FID,
NeurIPS 2017), written here in plain torch so that FID needs neither torchvision nor torch-fidelity (neither imports
beside the project's torch build).

It follows toshas/torch-fidelity@v0.4.0 ``feature_extractor_inceptionv3.py`` (no code copied): the same state-dict
layout, so the published ``weights-inception-2015-12-05-6726825d.pth`` loads as it is; the TensorFlow patches
(average pools that ignore padding, a max pool in the last block, BatchNorm eps 1e-3); inputs scaled
(x - 128) / 128; 2048-d pool features. :func:`resize_like_tf1` is TensorFlow 1's bilinear resize without
half-pixel centres (source = destination x in/out, torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``,
method ``slow``): what torch-fidelity and torchmetrics apply inside the network. Parity with torch-fidelity's network
and clean-fid's pipeline on one random state dict: ``tests/test_reference_parity.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2ibench.backbones import cached
from t2ibench.errors import T2IBenchError

WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch-fidelity names the file after the first digits of its sha256
SIZE = 299


def resize_like_tf1(x: Any, size: int = SIZE) -> Any:
    """(B, C, H, W) float -> (B, C, size, size), TensorFlow 1 bilinear (align_corners False, no half-pixel centres)."""
    import torch

    def axis(n_in: int) -> tuple[Any, Any, Any]:
        src = torch.arange(size, dtype=x.dtype, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = src.long()
        return lo, (lo + 1).clamp_max(n_in - 1), src - lo.to(src.dtype)

    (y0, y1, dy), (x0, x1, dx) = axis(x.shape[2]), axis(x.shape[3])
    top, bottom = x[:, :, y0, :], x[:, :, y1, :]
    rows = [top[:, :, :, x0], top[:, :, :, x1], bottom[:, :, :, x0], bottom[:, :, :, x1]]
    upper = rows[0] + (rows[1] - rows[0]) * dx.view(1, 1, 1, size)
    lower = rows[2] + (rows[3] - rows[2]) * dx.view(1, 1, 1, size)
    return upper + (lower - upper) * dy.view(1, 1, size, 1)


def build() -> Any:
    """The network with random weights (load a state dict into it)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: Any, stride: int = 1, padding: Any = 0):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x: Any) -> Any:
            return F.relu(self.bn(self.conv(x)))

    def avg3(x: Any) -> Any:  # TensorFlow's average pool leaves the zero padding out of the mean
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    class BlockA(nn.Module):  # Mixed_5b-d
        def __init__(self, cin: int, pool: int):
            super().__init__()
            self.branch1x1 = Conv(cin, 64, 1)
            self.branch5x5_1, self.branch5x5_2 = Conv(cin, 48, 1), Conv(48, 64, 5, padding=2)
            self.branch3x3dbl_1 = Conv(cin, 64, 1)
            self.branch3x3dbl_2, self.branch3x3dbl_3 = Conv(64, 96, 3, padding=1), Conv(96, 96, 3, padding=1)
            self.branch_pool = Conv(cin, pool, 1)

        def forward(self, x: Any) -> Any:
            return torch.cat(
                [
                    self.branch1x1(x),
                    self.branch5x5_2(self.branch5x5_1(x)),
                    self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                    self.branch_pool(avg3(x)),
                ],
                1,
            )

    class BlockB(nn.Module):  # Mixed_6a
        def __init__(self, cin: int):
            super().__init__()
            self.branch3x3 = Conv(cin, 384, 3, stride=2)
            self.branch3x3dbl_1 = Conv(cin, 64, 1)
            self.branch3x3dbl_2, self.branch3x3dbl_3 = Conv(64, 96, 3, padding=1), Conv(96, 96, 3, stride=2)

        def forward(self, x: Any) -> Any:
            return torch.cat(
                [
                    self.branch3x3(x),
                    self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                    F.max_pool2d(x, 3, stride=2),
                ],
                1,
            )

    class BlockC(nn.Module):  # Mixed_6b-e
        def __init__(self, cin: int, c7: int):
            super().__init__()
            row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
            self.branch1x1 = Conv(cin, 192, 1)
            self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = (
                Conv(cin, c7, 1),
                Conv(c7, c7, **row),
                Conv(c7, 192, **col),
            )
            self.branch7x7dbl_1 = Conv(cin, c7, 1)
            self.branch7x7dbl_2, self.branch7x7dbl_3 = Conv(c7, c7, **col), Conv(c7, c7, **row)
            self.branch7x7dbl_4, self.branch7x7dbl_5 = Conv(c7, c7, **col), Conv(c7, 192, **row)
            self.branch_pool = Conv(cin, 192, 1)

        def forward(self, x: Any) -> Any:
            dbl = x
            for layer in (
                self.branch7x7dbl_1,
                self.branch7x7dbl_2,
                self.branch7x7dbl_3,
                self.branch7x7dbl_4,
                self.branch7x7dbl_5,
            ):
                dbl = layer(dbl)
            return torch.cat(
                [
                    self.branch1x1(x),
                    self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                    dbl,
                    self.branch_pool(avg3(x)),
                ],
                1,
            )

    class BlockD(nn.Module):  # Mixed_7a
        def __init__(self, cin: int):
            super().__init__()
            self.branch3x3_1, self.branch3x3_2 = Conv(cin, 192, 1), Conv(192, 320, 3, stride=2)
            self.branch7x7x3_1 = Conv(cin, 192, 1)
            self.branch7x7x3_2 = Conv(192, 192, (1, 7), padding=(0, 3))
            self.branch7x7x3_3 = Conv(192, 192, (7, 1), padding=(3, 0))
            self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

        def forward(self, x: Any) -> Any:
            seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
            return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, stride=2)], 1)

    class BlockE(nn.Module):  # Mixed_7b (average pool) and Mixed_7c (max pool: the TensorFlow graph's)
        def __init__(self, cin: int, max_pool: bool):
            super().__init__()
            row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
            self.max_pool = max_pool
            self.branch1x1 = Conv(cin, 320, 1)
            self.branch3x3_1 = Conv(cin, 384, 1)
            self.branch3x3_2a, self.branch3x3_2b = Conv(384, 384, **row), Conv(384, 384, **col)
            self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 448, 1), Conv(448, 384, 3, padding=1)
            self.branch3x3dbl_3a, self.branch3x3dbl_3b = Conv(384, 384, **row), Conv(384, 384, **col)
            self.branch_pool = Conv(cin, 192, 1)

        def forward(self, x: Any) -> Any:
            three = self.branch3x3_1(x)
            dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else avg3(x)
            return torch.cat(
                [
                    self.branch1x1(x),
                    torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], 1),
                    torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1),
                    self.branch_pool(pooled),
                ],
                1,
            )

    class FIDInceptionV3(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
            self.Conv2d_2a_3x3 = Conv(32, 32, 3)
            self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
            self.MaxPool_1 = nn.MaxPool2d(3, stride=2)
            self.Conv2d_3b_1x1 = Conv(64, 80, 1)
            self.Conv2d_4a_3x3 = Conv(80, 192, 3)
            self.MaxPool_2 = nn.MaxPool2d(3, stride=2)
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
            self.Mixed_6a = BlockB(288)
            self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
            self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
            self.Mixed_7a = BlockD(768)
            self.Mixed_7b, self.Mixed_7c = BlockE(1280, max_pool=False), BlockE(2048, max_pool=True)
            self.AvgPool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(2048, 1008)  # the logits (IS); FID uses the 2048-d pool features

        def forward(self, x: Any, resize: bool = True) -> Any:
            """Pool features (B, 2048) of float images in [0, 255]; ``resize``: TF1 bilinear to 299 first (torch-fidelity,
            torchmetrics), else the input must already be 299 x 299 (clean-fid resizes outside)."""
            x = x.float()
            if resize:
                x = resize_like_tf1(x)
            elif x.shape[-2:] != (SIZE, SIZE):
                raise T2IBenchError(f"FID Inception: expected 299 x 299 input, got {tuple(x.shape[-2:])}")
            x = (x - 128) / 128
            for name in (
                "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
            ):  # fmt: skip
                x = getattr(self, name)(x)
            return torch.flatten(x, 1)

    return FIDInceptionV3().eval().requires_grad_(False)


def load(weights: str | None = None, device: str = "cpu") -> Any:
    """The network with the FID weights: ``weights`` = a local ``.pth`` (torch-fidelity's file, or any state dict in
    its layout), or null = torch-fidelity's release file (downloaded once into torch's hub cache, sha256-checked).
    Loaded with ``torch.load(weights_only=True)``; built once per process."""

    def make() -> Any:
        import hashlib

        import torch

        path = Path(weights) if weights else _download()
        if not path.is_file():
            raise T2IBenchError(f"fid: Inception weights {path} do not exist")
        if not weights and not hashlib.sha256(path.read_bytes()).hexdigest().startswith(WEIGHTS_SHA256_PREFIX):
            raise T2IBenchError(f"fid: {path} is not torch-fidelity's FID Inception file (sha256 mismatch)")
        network = build()
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return network.to(device)

    return cached("fid_inception", (weights, device), make)


def _download() -> Path:
    import torch

    target = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(WEIGHTS_URL, str(target), progress=False)
    except Exception as err:  # offline, or the release moved
        raise T2IBenchError(
            f"fid: the FID Inception weights are not available offline ({type(err).__name__}); download {WEIGHTS_URL} "
            f"where there is internet and set evaluator.fid.inception_weights=<that .pth>"
        ) from None
    return target
