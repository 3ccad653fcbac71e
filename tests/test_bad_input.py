"""Bad input is refused with one clear line (or warned about) and nothing already written is damaged: overrides of
the wrong type, an empty benchmark, prompts longer than the text encoder, a corrupt reference folder, NaN latents,
out-of-memory (retry with halved batches, then a clear error)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from t2ibench import Prompt, T2IBenchError, benchmarks
from t2ibench.generation_guards import generate_with_oom_retry, nan_guard, warn_truncated_prompts
from t2ibench.plan import check_option_types
from t2ibench.runner import run_cell

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def t2ibench(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


def _errors(result) -> list[str]:
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.startswith("t2ibench: error:") or "ERROR" in line or "Traceback" in line]


def test_wrong_override_types_are_one_line_and_leave_results_alone(tmp_path):
    good = t2ibench("benchmark.n=1", "generation.num_inference_steps=1", "run.progress=false", cwd=tmp_path)
    assert good.returncode == 0, good.stderr[-2000:]
    table = (tmp_path / "results" / "stand-ins" / "default" / "table.csv").read_bytes()
    bad = t2ibench("generation.guidance_scale=abc", "benchmark.n=1", cwd=tmp_path)
    assert bad.returncode == 2
    errors = _errors(bad)
    assert len(errors) == 1 and errors[0].startswith("t2ibench: error: ")  # the schema refuses it (t2ibench/schema.py)
    assert "generation.guidance_scale=abc" in errors[0] and "could not be converted to Float" in errors[0]
    assert (tmp_path / "results" / "stand-ins" / "default" / "table.csv").read_bytes() == table


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+run.seed=[1]",
            "unknown key 'run.seed': '+' adds a config group (e.g. +tiny=all), not a key the config does not declare; did you mean run.seeds=...?",
        ),
        ("+foo=1", "unknown key 'foo': '+' adds a config group"),
    ],
)
def test_a_plus_key_the_config_does_not_declare_is_refused(tmp_path, override, message):
    """'+run.seed=[1]' (a typo of run.seeds) used to be accepted and ignored: the run then used seed 0."""
    result = t2ibench(override, "benchmark.n=1", cwd=tmp_path)
    errors = _errors(result)
    assert result.returncode == 2 and len(errors) == 1 and errors[0].startswith(f"t2ibench: error: {message}")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("generation", "num_inference_steps", "ten", "generation.num_inference_steps must be a positive integer"),
        ("generation", "num_inference_steps", 0, "generation.num_inference_steps must be a positive integer"),
        ("generation", "height", 500, "generation.height must be a multiple of 8"),
        ("generation", "guidance_scale", True, "generation.guidance_scale must be a number"),
        ("benchmark", "n", -1, "benchmark.n must be a non-negative integer"),
        ("benchmark", "subset_seed", 1.5, "benchmark.subset_seed must be a integer"),
        ("run", "images_per_prompt", "2x", "run.images_per_prompt must be a positive integer"),
    ],
)
def test_option_types(section, key, value, message):
    with pytest.raises(T2IBenchError, match=message):
        check_option_types({section: {key: value}})
    check_option_types({"generation": {"guidance_scale": 7, "height": 512}, "benchmark": {"n": 0, "subset_seed": None}})


def test_empty_benchmarks_are_refused(tmp_path, tiny_cfg):
    with pytest.raises(T2IBenchError, match="yields no prompts"):
        run_cell(tiny_cfg(tmp_path, benchmark={"name": "tiny", "n": 0}))
    empty = tmp_path / "empty.csv"
    empty.write_text("prompt,id\n")
    with pytest.raises(T2IBenchError, match="empty.csv"):
        benchmarks.load("prompt_file", path=str(empty))
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b"")
    with pytest.raises(T2IBenchError, match="blank.txt"):
        benchmarks.load("prompt_file", path=str(blank))


def test_prompts_longer_than_the_text_encoder_are_named_with_what_is_cut(tiny_pipe, caplog):
    words = " ".join(f"word{i}" for i in range(120))
    prompts = [Prompt("short", "a cat", "t"), Prompt("long", f"a cat {words} tailend", "t")]
    with caplog.at_level(logging.WARNING, logger="t2ibench"):
        assert warn_truncated_prompts(tiny_pipe, prompts) == 1
    message = caplog.records[-1].getMessage()
    assert "1 prompt(s) are longer than the text encoder's 77 tokens" in message
    assert "long loses" in message and "tailend" not in message.split("loses")[0]
    lost = message.split("loses ", 1)[1]
    assert "word" in lost and "a cat" not in lost  # the words that are cut, not the kept start


def test_corrupt_or_non_image_reference_files(tmp_path):
    from t2ibench.api import EVALUATORS

    folder = tmp_path / "ref"
    folder.mkdir()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(folder / "ok.png")
    (folder / "README.txt").write_text("not an image, ignored")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    evaluator = EVALUATORS.get("fid")(
        {"reference": "folder", "reference_dir": str(folder), "feature_extractor": "tiny", "cache_dir": str(tmp_path)}
    )
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".png")
    with pytest.raises(T2IBenchError, match=r"fid: cannot read reference image .*broken.png"):
        evaluator.reference_stats(paths)
    from t2ibench.evaluators.fid import images_in

    assert [p.name for p in images_in(folder)] == ["broken.png", "ok.png"]  # the .txt is not a reference image


def test_nan_latents_stop_the_batch_with_a_clear_error_and_write_nothing(tmp_path, tiny_cfg):
    from t2ibench.models import load_pipeline

    cfg = tiny_cfg(tmp_path)
    run_cell(cfg)  # a finished cell: its images must survive the failing run
    tiny_pipe = load_pipeline(cfg["model"])  # the cached pipeline run_cell uses
    store_pngs = sorted(p.read_bytes() for p in (tmp_path / "runs").rglob("*.png"))
    handle = tiny_pipe.unet.register_forward_hook(lambda m, a, out: (out[0] * float("nan"),))
    try:
        with pytest.raises(T2IBenchError, match=r"non-finite \(NaN/inf\) latents in 2 of 2 image\(s\)"):
            run_cell({**cfg, "run": {**cfg["run"], "seeds": [5]}})
    finally:
        handle.remove()
    assert sorted(p.read_bytes() for p in (tmp_path / "runs").rglob("*.png")) == store_pngs
    assert not tiny_pipe.vae.decoder._forward_pre_hooks  # the guard is removed after the run
    with nan_guard(tiny_pipe):
        assert len(tiny_pipe.vae.decoder._forward_pre_hooks) == 1


class _OOMAbove:
    """A method that runs out of memory for batches larger than ``limit`` (0: always)."""

    def __init__(self, limit: int):
        self.limit, self.calls = limit, []

    def generate(self, pipe, prompts, seeds):
        self.calls.append(len(prompts))
        if len(prompts) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [Image.new("RGB", (8, 8), (int(s), 0, 0)) for s in seeds]


def test_out_of_memory_retries_with_halved_batches_then_fails_clearly(caplog):
    written = []
    batch = [(Prompt(f"p{i}", "a cat", "t"), i, i) for i in range(5)]
    method = _OOMAbove(2)
    with caplog.at_level(logging.WARNING, logger="t2ibench"):
        generate_with_oom_retry(method, None, batch, lambda b, images: written.append((len(b), images)), "cuda:0")
    assert method.calls == [5, 2, 3, 1, 2]  # 5 -> 2 + 3 -> 2 + (1 + 2)
    assert [n for n, _ in written] == [2, 1, 2] and sum(len(i) for _, i in written) == 5
    assert [img.getpixel((0, 0))[0] for _, images in written for img in images] == [0, 1, 2, 3, 4]  # order kept
    assert "out of memory at batch size 5; retrying as 2 + 3" in caplog.text
    with pytest.raises(T2IBenchError, match="out of memory at batch size 1 on cuda:0; use a smaller image size"):
        generate_with_oom_retry(_OOMAbove(0), None, batch[:2], lambda b, i: None, "cuda:0")
    with pytest.raises(ValueError, match="not memory"):  # other errors are not swallowed
        generate_with_oom_retry(
            type("M", (), {"generate": lambda self, *a: (_ for _ in ()).throw(ValueError("not memory"))})(),
            None,
            batch,
            lambda b, i: None,
        )


def test_halved_batches_record_their_batch_size(tmp_path, tiny_cfg, monkeypatch):
    from t2ibench.api import METHODS

    sd = METHODS.get("sd")
    original = sd.generate

    def small_memory(self, pipe, prompts, seeds):
        if len(prompts) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original(self, pipe, prompts, seeds)

    monkeypatch.setattr(sd, "generate", small_memory)
    summary = run_cell(tiny_cfg(tmp_path))
    assert summary["generated"] == 2
    from t2ibench.run_store import RunStore

    store = RunStore(summary["store"])
    assert [r["batch_size"] for r in store.records().values()] == [1, 1]
