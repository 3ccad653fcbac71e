"""What the perf scripts share: the model they measure on, paired (ABAB) timing, and how a figure is printed.

Not a test module (no ``test_`` prefix): the scripts of this folder import it from beside them.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
PARITY_SD = Path(os.environ.get("T2IBENCH_SHARED", REPO.parent / "shared")) / "parity" / "tiny-sd"


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(call: Callable[[], Any]) -> float:
    """Seconds of one ``call`` (CUDA synchronised on both sides)."""
    sync()
    start = time.perf_counter()
    call()
    sync()
    return time.perf_counter() - start


def paired(a: Callable[[], Any], b: Callable[[], Any], pairs: int) -> tuple[list[float], list[float]]:
    """Seconds of ``a`` and of ``b``, alternated A B A B ... (``pairs`` of each), after one untimed call of each.

    Alternating puts slow drifts of the machine (another process, thermal state) on both sides alike; each figure
    is then read as a median of per-pair ratios, with the spread of the pairs beside it.
    """
    a(), b()  # warm-up: first-call costs (allocator, oneDNN kernels, lazily built parts) are not the steady figure
    times_a, times_b = [], []
    for _ in range(pairs):
        times_a.append(timed(a))
        times_b.append(timed(b))
    return times_a, times_b


def spread(values: list[float], digits: int = 3) -> str:
    """``median [min-max]``."""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def ratios(num: list[float], den: list[float]) -> list[float]:
    """Per-pair ratios ``num[i] / den[i]``."""
    return [n / d for n, d in zip(num, den, strict=True)]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def cpu_reference() -> float:
    """Seconds of a fixed pure-Python loop (10^6 additions): says how fast this CPU was when the figures were taken
    (shared machines vary from day to day), so absolute seconds can be compared across runs; ratios need no such care."""
    start = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    return time.perf_counter() - start


def machine_line() -> str:
    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(torch {torch.__version__}, {torch.get_num_threads()} threads){gpu}; CPU reference loop {cpu_reference():.3f} s"
    )


def measured_model(prefer_parity: bool = True) -> tuple[dict[str, Any], str]:
    """The model config of the measurements and its label: the official code's parity pipeline
    (``../shared/parity/tiny-sd``, or ``$T2IBENCH_SHARED``) where present, the embedded tiny model otherwise."""
    if prefer_parity and (PARITY_SD / "model_index.json").exists():
        model = {
            "name": "parity-tiny-sd",
            "source": "local",
            "path": str(PARITY_SD),
            "dtype": "float32",
            "device": "cpu",
        }
        return model, f"parity tiny-sd ({PARITY_SD})"
    model = {"name": "tiny", "source": "tiny", "seed": 0, "tokenizer": "tiny", "dtype": "float32", "device": "cpu"}
    return model, "embedded tiny model (no ../shared/parity/tiny-sd here)"


def sd15_shaped_pipeline(device: str, dtype: Any) -> Any:
    """A random-weight pipeline with SD-1.5's UNet, VAE and CLIP ViT-L/14 text-encoder shapes (no download)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from t2ibench.clip_tokenizer import build_tiny_clip_tokenizer
    from t2ibench.tiny_models import SD14_SCHEDULER_CONFIG

    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
        )
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=build_tiny_clip_tokenizer(),
        unet=unet,
        scheduler=PNDMScheduler.from_config(SD14_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)
