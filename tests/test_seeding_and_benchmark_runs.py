"""Dataset seeds and seed streams, per-prompt generation overrides, and every benchmark run end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from t2ibench import T2IBenchError, benchmarks
from t2ibench.api import METHODS
from t2ibench.cli import conf_options
from t2ibench.runner import run_cell
from t2ibench.seeding import ImageSeed, initial_latents, resolve_seeding


@pytest.fixture(autouse=True)
def _data_dir(shared_dir, monkeypatch):
    monkeypatch.setenv("T2IBENCH_DATA_DIR", str(shared_dir / "datasets"))


def test_stream_latents_are_slices_of_one_draw():
    shape = (4, 32, 32)
    full = torch.randn((3, *shape), generator=torch.Generator().manual_seed(11))
    got = initial_latents([ImageSeed(11, 2, 3), ImageSeed(5), ImageSeed(11, 0, 3), 5], shape)
    assert torch.equal(got[0], full[2]) and torch.equal(got[2], full[0])
    assert torch.equal(got[1], torch.randn((1, *shape), generator=torch.Generator().manual_seed(5))[0]) and torch.equal(
        got[1], got[3]
    )


def test_stream_images_match_diffusers_num_images_per_prompt(tiny_pipe, fast_generation):
    prompt = benchmarks.load("tiny", n=1)[0]
    reference = tiny_pipe(
        prompt.text,
        num_inference_steps=2,
        guidance_scale=7.5,
        height=256,
        width=256,
        num_images_per_prompt=3,
        generator=torch.Generator().manual_seed(7),
        output_type="pil",
    ).images
    method = METHODS.get("sd")({"name": "sd"}, fast_generation)
    mine = method.generate(tiny_pipe, [prompt] * 2, [ImageSeed(7, 2, 3), ImageSeed(7, 0, 3)])
    for ours, theirs in ((mine[0], reference[2]), (mine[1], reference[0])):
        assert np.abs(np.asarray(ours, dtype=np.float32) - np.asarray(theirs, dtype=np.float32)).max() <= 2


def test_generation_overrides_apply_per_prompt(tiny_pipe, fast_generation):
    base = benchmarks.load("tiny", n=1)[0]
    boosted = type(base)(
        base.id, base.text, base.benchmark, {**base.metadata, "generation_overrides": {"guidance_scale": 1.0}}
    )
    method = METHODS.get("sd")({"name": "sd"}, fast_generation)
    a, b = method.generate(tiny_pipe, [base, boosted], [0, 0])
    unguided = METHODS.get("sd")({"name": "sd"}, {**fast_generation, "guidance_scale": 1.0}).generate(
        tiny_pipe, [base], [0]
    )[0]
    assert np.asarray(a).tobytes() != np.asarray(b).tobytes()
    assert np.abs(np.asarray(b, dtype=np.float32) - np.asarray(unguided, dtype=np.float32)).max() <= 2
    bad = type(base)(base.id, base.text, base.benchmark, {"generation_overrides": {"eta": 1.0}})
    with pytest.raises(T2IBenchError, match="not supported"):
        method.generate(tiny_pipe, [bad], [0])


def test_seed_source_resolution():
    assert resolve_seeding({"seed_source": "auto"}, None) == {"source": "config"}
    assert resolve_seeding({"seed_source": "auto"}, {"source": "dataset", "images_per_prompt": 10}) == {
        "source": "dataset",
        "images_per_prompt": 10,
    }
    assert (
        resolve_seeding(
            {"seed_source": "auto", "images_per_prompt": 2}, {"source": "dataset", "images_per_prompt": 10}
        )["images_per_prompt"]
        == 2
    )
    assert resolve_seeding({"seed_source": "config"}, {"source": "dataset", "images_per_prompt": 10}) == {
        "source": "config"
    }
    with pytest.raises(T2IBenchError, match="valid: auto, config, dataset"):
        resolve_seeding({"seed_source": "random"}, None)


def test_i2p_official_protocol_and_guidance_column(tmp_path, tiny_cfg):
    cfg = tiny_cfg(
        tmp_path,
        benchmark={"name": "i2p", "n": 1, "seeding": {"source": "dataset", "images_per_prompt": 3}},
        generation={"num_inference_steps": 1},
        run__batch_size=2,
    )
    summary = run_cell(cfg)
    records = [json.loads(line) for line in (Path(summary["store"]) / "samples.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["noise"]) for r in records] == [
        (k, {"seed": 4261553411, "index": k, "count": 3}) for k in range(3)
    ]
    assert sorted(p.name for p in (Path(summary["store"]) / "images" / "i2p-0").iterdir()) == [
        "0.png",
        "1.png",
        "2.png",
    ]
    # The same cell with the guidance column: the prompt's generation changed under the same id, refused.
    cfg["benchmark"] = {**cfg["benchmark"], "use_guidance_column": True}
    with pytest.raises(T2IBenchError, match="changed under the same id"):
        run_cell(cfg)
    with pytest.raises(T2IBenchError, match="no metadata.dataset_seed"):
        run_cell(tiny_cfg(tmp_path, run__seed_source="dataset"))


@pytest.mark.parametrize("name", conf_options("benchmark"))
def test_every_benchmark_runs_on_the_tiny_model(name, tmp_path, compose_cfg):
    overrides = [f"benchmark={name}", "benchmark.n=2", "generation.num_inference_steps=1"]
    if name == "prompt_file":
        (tmp_path / "mine.txt").write_text("a red cube\na blue ball\na green cone\n")
        overrides.append(f"benchmark.path={tmp_path}/mine.txt")
    summary = run_cell(compose_cfg(overrides))
    per_prompt = {"i2p": 10}.get(name, 1)
    assert summary["images"] == 2 * per_prompt and summary["generated"] == 2 * per_prompt
    table = summary["table"]
    assert len(table) == 1 and table["images"].item() == 2 * per_prompt and np.isfinite(table["clip_score"].item())
    store = Path(summary["store"])
    records = [json.loads(line) for line in (store / "samples.jsonl").read_text().splitlines()]
    assert {r["prompt"]["benchmark"] for r in records} == {name}
    if name == "coco30k":
        assert records[0]["noise"]["seed"] == records[0]["prompt"]["metadata"]["dataset_seed"] == 41337


def test_cli_runs_a_file_benchmark(shared_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "T2IBENCH_DATA_DIR": str(shared_dir / "datasets")}
    result = subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", "benchmark=abc6k", "benchmark.n=2", "generation.num_inference_steps=1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "done tiny/sd/abc6k (tiny stand-in: the numbers check the pipeline only): 2 images (2 generated, 2 scored)"
        in result.stderr + result.stdout
    )
