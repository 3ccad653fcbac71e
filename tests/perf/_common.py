"""What the perf scripts share: the model they measure on, paired (ABAB) timing, and how a figure is printed.

Not a test module (no ``test_`` prefix): the scripts of this folder import it from beside them.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
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


def reset_peak_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gpu() -> str:
    """``; peak GPU memory X GiB`` since the last :func:`reset_peak_gpu` (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return ""
    return f"; peak GPU memory allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"


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
    why = "--tiny" if (PARITY_SD / "model_index.json").exists() else "no ../shared/parity/tiny-sd here"
    return model, f"embedded tiny model ({why})"


def _ready(pipe: Any, device: str, dtype: Any) -> Any:
    """``pipe`` on ``device`` in ``dtype``, progress bar off."""
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


def sd15_shaped_pipeline(device: str, dtype: Any) -> Any:
    """A random-weight pipeline with SD-1.5's UNet, VAE and CLIP ViT-L/14 text-encoder shapes (no download).

    The weights are initialised on ``device`` (seconds on a GPU, where a CPU takes a minute for the UNet alone)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from t2ibench.clip_tokenizer import build_tiny_clip_tokenizer
    from t2ibench.tiny_models import SD14_SCHEDULER_CONFIG

    with torch.device(device):
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        vae = AutoencoderKL(**SD_VAE, sample_size=512)
        text = CLIPTextModel(CLIPTextConfig(**CLIP_L))
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
    return _ready(pipe, device, dtype)


SD_VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
}
CLIP_L = {  # CLIP ViT-L/14's text tower (SD-1.x; SDXL's first encoder)
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
}


def sdxl_shaped_pipeline(device: str, dtype: Any) -> Any:
    """A random-weight pipeline with SDXL-base-1.0's shapes (no download): its UNet (320/640/1280 channels,
    1/2/10 transformer layers, ``text_time`` conditioning), VAE, CLIP ViT-L and OpenCLIP bigG text encoders, Euler."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from t2ibench.clip_tokenizer import build_tiny_clip_tokenizer

    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=128,
            block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20),
            cross_attention_dim=2048,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
            use_linear_projection=True,
        )
        vae = AutoencoderKL(**SD_VAE, sample_size=1024, scaling_factor=0.13025)
        text = CLIPTextModel(CLIPTextConfig(**CLIP_L))
        text_2 = CLIPTextModelWithProjection(
            CLIPTextConfig(
                **{
                    **CLIP_L,
                    "hidden_size": 1280,
                    "intermediate_size": 5120,
                    "num_hidden_layers": 32,
                    "num_attention_heads": 20,
                },
                projection_dim=1280,
                hidden_act="gelu",
            )
        )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text,
        text_encoder_2=text_2,
        tokenizer=build_tiny_clip_tokenizer(),
        tokenizer_2=build_tiny_clip_tokenizer(),
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            timestep_spacing="leading",
        ),
    )
    return _ready(pipe, device, dtype)


def full_size_models(
    dry_run: bool, only: tuple[str, ...] = ("SD-1.5", "SDXL")
) -> Iterator[tuple[str, dict, Any, dict]]:
    """The ``--full`` models, one at a time (built when reached): (label, model config, pipeline, generation) for
    SD-1.5 (512 px) and SDXL (1024 px) shaped random-weight pipelines in fp16 on CUDA, each registered with :func:`t2ibench.models.register_pipeline`
    so that harness runs of its model config use it. ``dry_run``: the same code path on this machine's CPU with the
    tiny SD and SDXL pipelines (fp32, 256/128 px, 2 steps): checks the script, measures nothing."""
    import torch

    from t2ibench.models import register_pipeline
    from t2ibench.tiny_models import build_tiny_sd_pipeline, build_tiny_sdxl_pipeline

    if dry_run:
        device, dtype, where = "cpu", torch.float32, "DRY RUN on CPU (tiny pipelines; not a figure)"
        shapes = [("SD-1.5", build_tiny_sd_pipeline, 256), ("SDXL", build_tiny_sdxl_pipeline, 128)]
        steps = 2
    else:
        device, dtype, where = "cuda", torch.float16, f"{torch.cuda.get_device_name()} fp16"
        shapes = [
            ("SD-1.5", lambda: sd15_shaped_pipeline(device, dtype), 512),
            ("SDXL", lambda: sdxl_shaped_pipeline(device, dtype), 1024),
        ]
        steps = 50
    for name, build, size in shapes:
        if name not in only:
            continue
        model = {
            "name": f"{name.lower()}-shaped-random",
            "source": "local",
            "path": f"random:{name}",
            "dtype": str(dtype).removeprefix("torch."),
            "device": device,
        }
        pipe = register_pipeline(model, build().to(device=device, dtype=dtype))
        pipe.set_progress_bar_config(disable=True)
        generation = {"num_inference_steps": steps, "guidance_scale": 7.5, "height": size, "width": size}
        yield f"{name}-shaped random weights, {where}", model, pipe, generation
