"""Tiny, seeded, randomly initialised models with the real architectures, built in-process.

* :func:`build_tiny_sd_pipeline`: a ``StableDiffusionPipeline`` of the SD-1.x shape, the same configuration
  as ``../shared/parity/tiny-sd`` (UNet blocks (16, 32, 32), cross-attention at 32x32, **16x16** and 8x8
  query maps for 256x256 images, 8 heads; VAE with scale factor 8 and scaling 0.18215; ``CLIPTextModel``
  with hidden size 32, 2 layers, 4 heads, vocabulary 49,408 and 77 positions; PNDM with SD v1.4's scheduler
  config). Weights: diffusers' default init under ``torch.manual_seed(seed)`` (UNet), ``seed + 1`` (VAE),
  ``seed + 2`` (text encoder); then, as in the parity model, every cross-attention ``attn2.to_q`` and
  ``attn2.to_k`` weight is multiplied by ``attn_sharpen`` (default 4) so that the attention maps are peaked
  enough for attention-guided methods to have sizeable gradients.
* :func:`build_tiny_clip`: a ``CLIPModel`` (ViT vision tower, 64 px, patch 16) and a ``CLIPProcessor`` with
  the same tokenizer, for CLIP-based evaluators.

Random weights make images noise; they exist so the whole flow runs offline in seconds on CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer

# Bump when this module or the tiny tokenizer changes the tiny weights or images (part of the run-store key).
TINY_MODEL_VERSION = 1

TINY_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (16, 32, 32),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 16,
}
TINY_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (16, 16, 16, 16),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 256,
    "scaling_factor": 0.18215,
}
TINY_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "projection_dim": 32,
    "hidden_act": "quick_gelu",
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
}
# SD v1.4's scheduler_config.json (the PNDM sampler the SD-1.x papers use).
SD14_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "trained_betas": None,
}


def tiny_tokenizer(kind: str = "tiny", bpe_path: str | None = None) -> CLIPTokenizer:
    """``kind='tiny'``: the embedded tokenizer; ``'clip-bpe'``: the real CLIP tokenizer from ``bpe_path``."""
    from t2ibench.clip_tokenizer import build_real_clip_tokenizer, build_tiny_clip_tokenizer
    from t2ibench.errors import T2IBenchError

    if kind == "tiny":
        return build_tiny_clip_tokenizer()
    if kind == "clip-bpe":
        return build_real_clip_tokenizer(bpe_path)
    raise T2IBenchError(f"unknown tokenizer '{kind}'; valid tokenizers: clip-bpe, tiny")


def build_tiny_sd_pipeline(
    seed: int = 0, tokenizer: CLIPTokenizer | None = None, attn_sharpen: float = 4.0
) -> StableDiffusionPipeline:
    """The tiny SD-1.x-shaped pipeline described in the module docstring."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**TINY_UNET_CONFIG)
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(**TINY_VAE_CONFIG)
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT_CONFIG))
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith("attn2.to_q") or name.endswith("attn2.to_k"):
                module.weight.mul_(attn_sharpen)
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer if tokenizer is not None else tiny_tokenizer(),
        unet=unet.eval(),
        scheduler=PNDMScheduler.from_config(SD14_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_clip(
    seed: int = 0, tokenizer: CLIPTokenizer | None = None, projection_dim: int = 16
) -> tuple[CLIPModel, CLIPProcessor]:
    """A tiny random ``CLIPModel`` (64 px ViT) and its ``CLIPProcessor`` (PIL image processor, no torchvision)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    config = CLIPConfig(
        text_config={**TINY_TEXT_CONFIG, "pad_token_id": 49407},
        vision_config={
            "image_size": 64,
            "patch_size": 16,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "hidden_act": "quick_gelu",
        },
        projection_dim=projection_dim,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    image_processor = clip_image_processor(size=64)
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer or tiny_tokenizer())
    return model, processor


def clip_image_processor(size: int = 224):
    """CLIP's preprocessing (bicubic resize of the short side, centre crop, OpenAI mean/std) without torchvision."""
    try:
        from transformers import CLIPImageProcessorPil as processor_class
    except ImportError:  # transformers 4.x: the PIL/numpy processor is the default class
        from transformers import CLIPImageProcessor as processor_class
    return processor_class(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def build_tiny_sdxl_pipeline(seed: int = 0) -> Any:
    """A seeded random ``StableDiffusionXLPipeline`` of the SDXL shape (two CLIP text encoders, the second with a
    projection; a ``text_time`` UNet), for tests of SDXL code paths; 256 px images."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    text = {**TINY_TEXT_CONFIG, "hidden_size": 32, "projection_dim": 32}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=32,
            in_channels=4,
            out_channels=4,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=64,
            attention_head_dim=(2, 4),
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=8 * 6 + 32,
            transformer_layers_per_block=1,
            norm_num_groups=8,
            use_linear_projection=True,
        )
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(**TINY_VAE_CONFIG)
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=tiny_tokenizer(),
        tokenizer_2=tiny_tokenizer(),
        unet=unet.eval(),
        scheduler=scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
