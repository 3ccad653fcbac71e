"""Seeded tiny checkpoints that two environments rebuild bit for bit: the reference venv (t2v-metrics 3.0 with
transformers 4.49, torch-fidelity, clean-fid) and the project's own (transformers 5, no torchvision).

Random initialisation differs between library versions, so no model's own init is used. A checkpoint is a *manifest*
(each state-dict name with its shape, in the layout the reference code saves) plus a seed; every tensor is drawn from
``numpy.random.RandomState`` (whose streams numpy keeps stable across releases) seeded by the seed and the tensor's name,
so the same (name, shape, seed) gives the same values anywhere. Only numpy, torch and the standard library are imported.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def bfloat16_exact(values: np.ndarray) -> np.ndarray:
    """float32 values rounded (to nearest even) to ones bfloat16 holds exactly, and those under 2^-14 in magnitude set
    to 0, so that float16 holds them exactly too: a reference that casts its model to bf16 (t2v-metrics) or fp16
    (openai/CLIP's ``convert_weights``) then runs on the very same weights when cast back to float32."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return np.where(np.abs(rounded) < 2.0**-14, np.float32(0), rounded).astype(np.float32)


def tensor_for(name: str, shape: Iterable[int], seed: int, gain: float = 1.0) -> np.ndarray:
    """The value of one named tensor (bfloat16-exact float32, see :func:`bfloat16_exact`)."""
    value = _draw(name, shape, seed, gain)
    return value if value.dtype != np.float32 else bfloat16_exact(value)


def _draw(name: str, shape: Iterable[int], seed: int, gain: float) -> np.ndarray:
    """Norm weights ~ 1, biases and BatchNorm means small, variances positive, matrices N(0, gain / sqrt(fan_in)),
    integer counters 0."""
    shape = tuple(int(s) for s in shape)
    rng = np.random.RandomState((seed * 1_000_003 + zlib.crc32(name.encode())) % 2**32)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(shape, dtype=np.int64)
    if leaf == "running_var":
        return (0.5 + rng.random_sample(shape)).astype(np.float32)
    if leaf == "running_mean":
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    if len(shape) <= 1:
        if leaf == "bias":
            return (0.02 * rng.standard_normal(shape)).astype(np.float32)
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    return (gain * rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def state_dict(
    manifest: Iterable[tuple[str, Iterable[int]]], seed: int, gains: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """{name: torch tensor} of a manifest; ``gains`` maps a name suffix to a std multiplier (e.g. a peaked LM head)."""
    import torch

    gains = gains or {}
    out = {}
    for name, shape in manifest:
        gain = next((g for suffix, g in gains.items() if name.endswith(suffix)), 1.0)
        out[name] = torch.from_numpy(tensor_for(name, shape, seed, gain))
    return out


def manifest_of(module_state: Mapping[str, Any]) -> list[tuple[str, list[int]]]:
    """The (name, shape) list of a state dict, sorted by name."""
    return [(k, list(v.shape)) for k, v in sorted(module_state.items())]


def write_folder(
    folder: Any,
    config: Mapping[str, Any],
    manifest: Iterable[tuple[str, Iterable[int]]],
    seed: int,
    gains: Mapping[str, float] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> None:
    """A loadable checkpoint folder: ``config.json``, ``model.safetensors`` from the manifest, and extra files."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    save_file(
        {k: v.contiguous() for k, v in state_dict(manifest, seed, gains).items()},
        str(folder / "model.safetensors"),
        metadata={"format": "pt"},
    )
    for name, data in (extra_files or {}).items():
        (folder / name).write_bytes(data)


OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def openai_clip_to_hf(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, state dict) of a ``transformers.CLIPModel`` equal to an openai/CLIP ViT state dict (the layout of
    ``clip.model.build_model``: fused ``in_proj`` attention, ``c_fc``/``c_proj`` MLPs, projections as matrices,
    QuickGELU). Test glue for the parity of CLIP score and Q16; a wrong mapping fails those tests."""
    import torch

    def blocks(prefix: str, target: str, out: dict[str, Any]) -> int:
        layers = sorted({int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)})
        for i in layers:
            src, dst = f"{prefix}{i}.", f"{target}{i}."
            q, k, v = state[src + "attn.in_proj_weight"].chunk(3)
            qb, kb, vb = state[src + "attn.in_proj_bias"].chunk(3)
            for name, w, b in (("q", q, qb), ("k", k, kb), ("v", v, vb)):
                out[f"{dst}self_attn.{name}_proj.weight"], out[f"{dst}self_attn.{name}_proj.bias"] = w, b
            pairs = {
                "attn.out_proj": "self_attn.out_proj",
                "ln_1": "layer_norm1",
                "ln_2": "layer_norm2",
                "mlp.c_fc": "mlp.fc1",
                "mlp.c_proj": "mlp.fc2",
            }
            for a, b2 in pairs.items():
                for leaf in ("weight", "bias"):
                    out[f"{dst}{b2}.{leaf}"] = state[f"{src}{a}.{leaf}"]
        return len(layers)

    out: dict[str, Any] = {}
    v = "vision_model."
    out[v + "embeddings.patch_embedding.weight"] = state["visual.conv1.weight"]
    out[v + "embeddings.class_embedding"] = state["visual.class_embedding"]
    out[v + "embeddings.position_embedding.weight"] = state["visual.positional_embedding"]
    for a, b in (("visual.ln_pre", "pre_layrnorm"), ("visual.ln_post", "post_layernorm")):
        out[f"{v}{b}.weight"], out[f"{v}{b}.bias"] = state[f"{a}.weight"], state[f"{a}.bias"]
    vision_layers = blocks("visual.transformer.resblocks.", v + "encoder.layers.", out)
    out["visual_projection.weight"] = state["visual.proj"].t().contiguous()
    t = "text_model."
    out[t + "embeddings.token_embedding.weight"] = state["token_embedding.weight"]
    out[t + "embeddings.position_embedding.weight"] = state["positional_embedding"]
    out[t + "final_layer_norm.weight"], out[t + "final_layer_norm.bias"] = (
        state["ln_final.weight"],
        state["ln_final.bias"],
    )
    text_layers = blocks("transformer.resblocks.", t + "encoder.layers.", out)
    out["text_projection.weight"] = state["text_projection"].t().contiguous()
    out["logit_scale"] = torch.as_tensor(state["logit_scale"]).reshape(())
    vision_width = int(state["visual.conv1.weight"].shape[0])
    text_width = int(state["ln_final.weight"].shape[0])
    patch = int(state["visual.conv1.weight"].shape[-1])
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    config = {
        "model_type": "clip",
        "architectures": ["CLIPModel"],
        "projection_dim": int(state["text_projection"].shape[1]),
        "text_config": {
            "vocab_size": int(state["token_embedding.weight"].shape[0]),
            "hidden_size": text_width,
            "intermediate_size": 4 * text_width,
            "num_hidden_layers": text_layers,
            "num_attention_heads": text_width // 64,
            "max_position_embeddings": int(state["positional_embedding"].shape[0]),
            "hidden_act": "quick_gelu",
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 1,
        },
        "vision_config": {
            "hidden_size": vision_width,
            "intermediate_size": 4 * vision_width,
            "num_hidden_layers": vision_layers,
            "num_attention_heads": vision_width // 64,
            "image_size": patch * grid,
            "patch_size": patch,
            "hidden_act": "quick_gelu",
        },
    }
    return config, out


def clip_preprocessor(size: int) -> dict[str, Any]:
    """``preprocessor_config.json`` of the openai/clip-vit-* checkpoints at ``size``."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": OPENAI_CLIP_MEAN,
        "image_std": OPENAI_CLIP_STD,
        "do_convert_rgb": True,
    }


# -- hub-shaped checkpoints --------------------------------------------------------------------------------------------
# tests/fixtures/reference/hub/ holds tiny checkpoints saved the way the real hub repositories were saved (the reference
# classes' own save_pretrained, the repositories' file formats and shard layout, their vocabulary padding). hub.json
# names, for each repository id, its revisions: {repo: {"main": rev, "revisions": {rev: folder}}}, each folder a path
# under hub/ holding that revision's files. hub_cache lays them out as a Hugging Face cache, so that the reference and
# t2ibench both load them by hub id, offline, through the code a real hub id takes.


def revision_of(repo: str, label: str) -> str:
    """A stable 40-hex commit name for one fixture revision."""
    import hashlib

    return hashlib.sha1(f"{repo}@{label}".encode()).hexdigest()


def hub_cache(hub_dir: Any, cache_dir: Any) -> dict[str, Any]:
    """Lay the fixture repositories of ``hub_dir`` (see above) out as a Hugging Face hub cache under ``cache_dir``
    (``models--<org>--<name>/snapshots/<rev>/`` and ``refs/main``). Returns hub.json's content."""
    import json
    import shutil
    from pathlib import Path

    hub_dir, cache_dir = Path(hub_dir), Path(cache_dir)
    index = json.loads((hub_dir / "hub.json").read_text())
    for repo, entry in index.items():
        root = cache_dir / ("models--" + repo.replace("/", "--"))
        for rev, folder in entry["revisions"].items():
            snapshot = root / "snapshots" / rev
            if snapshot.exists():
                shutil.rmtree(snapshot)
            shutil.copytree(hub_dir / folder, snapshot)
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(entry["main"])
    return index


def seed_module(module: Any, seed: int, gains: Mapping[str, float] | None = None, skip: Iterable[str] = ()) -> list:
    """Give every tensor of ``module``'s state dict (except names starting with a ``skip`` prefix, and the aliases of
    a tensor already set) its seeded value (:func:`tensor_for`); returns the manifest that was seeded."""
    import torch

    skip = tuple(skip)
    seen: set[int] = set()
    manifest = []
    for name, tensor in module.state_dict(keep_vars=True).items():
        if name.startswith(skip) if skip else False:
            continue
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        manifest.append((name, list(tensor.shape)))
    values = state_dict(manifest, seed, gains)
    with torch.no_grad():
        current = module.state_dict(keep_vars=True)
        for name, value in values.items():
            current[name].data.copy_(value.reshape(current[name].shape).to(current[name].dtype))
    return manifest
