"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1) on tiny seeded models built in-process.

``shared_dir`` is the ``shared/`` folder beside the checkout (``../shared``; override with
``T2IBENCH_SHARED``). CI has it; its absence is an error, not a skip.

The tests are hermetic: every ``T2IBENCH_*`` and ``HF_*`` variable of the user's environment (data dir, cache,
offline switches, hub home) is dropped when the suite starts, and the suite sets its own: offline, an empty
per-session cache and hub home. Subprocesses inherit the same environment. Tests that need a data dir set one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_KEEP = ("T2IBENCH_SHARED",)  # where the shared fixtures are: the one variable the suite reads from the user
for _name in list(os.environ):
    if _name.startswith(("T2IBENCH_", "HF_", "TRANSFORMERS_", "HUGGINGFACE_")) and _name not in _KEEP:
        del os.environ[_name]
_HOME = Path(tempfile.mkdtemp(prefix="t2ibench-tests-"))
os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    T2IBENCH_OFFLINE="1",
    TOKENIZERS_PARALLELISM="false",
    T2IBENCH_CACHE=str(_HOME / "cache"),
    HF_HOME=str(_HOME / "hf"),
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("T2IBENCH_SHARED", REPO.parent / "shared"))
    if not (path / "parity").is_dir():
        raise RuntimeError(f"the shared/ folder with the parity fixtures is missing at {path}; set T2IBENCH_SHARED")
    return path


@pytest.fixture(scope="session")
def tiny_pipe():
    """The tiny SD pipeline (cached by t2ibench.models for the whole session)."""
    from t2ibench.models import load_pipeline

    return load_pipeline({"name": "tiny", "source": "tiny", "seed": 0, "dtype": "float32", "device": "cpu"})


@pytest.fixture(scope="session")
def parity_pipe(shared_dir):
    """The official code's tiny pipeline of ../shared/parity/tiny-sd, through t2ibench's local loader."""
    from t2ibench.models import load_pipeline

    path = str(shared_dir / "parity" / "tiny-sd")
    return load_pipeline({"name": "parity", "source": "local", "path": path, "dtype": "float32", "device": "cpu"})


def _tiny_cfg(tmp_path: Path, **over) -> dict:
    """A composed-config dict for :func:`t2ibench.runner.run_cell` on the tiny model (fast settings)."""
    cfg = {
        "model": {
            "name": "tiny",
            "source": "tiny",
            "seed": 0,
            "tokenizer": "tiny",
            "attn_sharpen": 4.0,
            "dtype": "float32",
            "device": "cpu",
            "generation_defaults": {"num_inference_steps": 2, "guidance_scale": 7.5, "height": 256, "width": 256},
        },
        "method": {"name": "sd"},
        "benchmark": {"name": "tiny", "n": 2},
        "evaluators": ["clip_score"],
        "evaluator": {
            "clip_score": {
                "backbone": "tiny",
                "scale": 100.0,
                "clamp": "none",
                "prefix": "",
                "seed": 0,
                "batch_size": 8,
                "device": "cpu",
                "progress": False,
            }
        },
        "generation": {},
        "run": {
            "seeds": [0],
            "batch_size": 2,
            "root": str(tmp_path / "runs"),
            "cache_dir": str(tmp_path / "cache"),
            "progress": False,
        },
        "results": {"root": str(tmp_path / "results")},
        "experiment_name": "test",
    }
    for key, value in over.items():
        section, _, name = key.partition("__")
        if name:
            cfg[section] = {**cfg[section], name: value}
        else:
            cfg[section] = value
    return cfg


@pytest.fixture()
def tiny_cfg():
    """``tiny_cfg(tmp_path, run__batch_size=3, generation={...})``: a fast tiny run config (see ``_tiny_cfg``)."""
    return _tiny_cfg


@pytest.fixture()
def fast_generation() -> dict:
    """A resolved generation config for direct ``method.generate`` calls on the tiny model (2 steps, 256 px)."""
    return {
        "scheduler": None,
        "num_inference_steps": 2,
        "guidance_scale": 7.5,
        "height": 256,
        "width": 256,
        "negative_prompt": None,
    }


@pytest.fixture()
def compose_cfg(tmp_path):
    """``compose_cfg(overrides)``: the composed, resolved CLI config (as a dict) with the run store, trained-weight
    cache and results under ``tmp_path`` and progress bars off."""
    from omegaconf import OmegaConf

    from t2ibench.config_compose import compose_config

    def build(overrides: list[str]) -> dict:
        base = [
            f"run.root={tmp_path}/runs",
            f"run.cache_dir={tmp_path}/cache",
            f"results.root={tmp_path}/results",
            "run.progress=false",
        ]
        return OmegaConf.to_container(compose_config([*base, *overrides]), resolve=True)

    return build


@pytest.fixture()
def released_overrides():
    """``released_overrides(folder, model)``: the overrides of a cell scoring one released image per prompt
    (``<folder>/<prompt id>.jpeg``) with ``method=external``, model label ``model``, on GenAI-Bench, with a tiny CLIP."""

    def build(folder, model: str = "DALLE_3") -> list[str]:
        return [
            "model=external",
            f"model.name={model}",
            "method=external",
            f"method.image_dir={folder}",
            "method.layout='{prompt_id}'",
            "benchmark=genai_bench",
            "evaluators=[clip_score]",
            "evaluator.clip_score.backbone=tiny",
        ]

    return build
