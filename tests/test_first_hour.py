"""What a new user meets first: every method runs on the tiny default, the tiny presets apply to the tiny model only,
the embedded benchmark samples are the public files' first rows, stand-ins are labelled, messages are clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from t2ibench import benchmarks
from t2ibench.cli import conf_options
from t2ibench.runner import run_cell
from t2ibench.stats import fmt_number

REPO = Path(__file__).resolve().parents[1]
METHODS = [m for m in conf_options("method") if m != "external"]  # external needs images made elsewhere


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_on_the_tiny_default(method, compose_cfg):
    """`t2ibench method=M` with nothing else: the tiny model, the tiny benchmark, CLIP score (in-process, same config)."""
    cfg = compose_cfg([f"method={method}"])
    summary = run_cell(cfg)
    assert summary["generated"] == summary["images"] > 0 and summary["stand_in"]["model"].startswith("tiny random")
    expected = {"decorrelation": 1, "rebind": 1}.get(method, 8)  # prompts with a target word / a RoleBench relation
    assert summary["images"] == expected
    assert Path(summary["results"]).parent.name == "stand-ins"


def test_tiny_presets_apply_to_the_tiny_model_only_and_overrides_win(compose_cfg):
    tiny = compose_cfg(["method=respodiff"])["method"]
    real = compose_cfg(["method=respodiff", "model=sd14"])["method"]
    assert (tiny["max_train_steps"], tiny["ddim_steps"], tiny["preset"]) == (3, 10, "tiny")
    assert (real["max_train_steps"], real["ddim_steps"], real["end_ddim_steps"], real["preset"]) == (
        5000,
        50,
        49,
        "official",
    )
    assert compose_cfg(["method=respodiff", "method.max_train_steps=7"])["method"]["max_train_steps"] == 7
    assert compose_cfg(["method=sepen_large", "model=sd15"])["method"]["max_train_steps"] == 10000
    assert compose_cfg(["method=sepen_large"])["method"]["max_train_steps"] == 6
    assert compose_cfg(["method=attend_and_excite", "model=sd14"])["method"]["max_refinement_steps"] == 20
    assert compose_cfg(["method=attend_and_excite"])["method"]["max_refinement_steps"] == 3
    rebind = compose_cfg(["method=rebind", "model=sdxl"])["method"]
    assert (rebind["max_train_steps"], rebind["gradient_accumulation_steps"], rebind["images_per_intermediate"]) == (
        1000,
        4,
        4,
    )
    decorrelation = compose_cfg(["method=decorrelation", "model=sd15"])["method"]
    assert (decorrelation["epochs"], decorrelation["steps_per_epoch"]) == (20, 10)
    # +tiny=all makes every model the tiny one, so the presets apply there too
    assert compose_cfg(["experiment=respodiff_lambda_ablation", "+tiny=all"])["method"]["max_train_steps"] == 3


def test_the_preset_is_recorded_in_the_trained_weights_meta(compose_cfg, tmp_path):
    run_cell(compose_cfg(["method=sepen", "benchmark.n=1", "generation.num_inference_steps=1"]))
    metas = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("meta.json")]
    assert metas and all(m["config"]["preset"] == "tiny" and m["config"]["max_train_steps"] == 3 for m in metas)


SAMPLES = {  # benchmark -> (options, the shared full file)
    "abc6k": ({}, "abc6k"),
    "cc500": ({}, "cc500"),
    "attend_and_excite": ({}, "attend_and_excite"),
    "coco30k": ({}, "coco30k"),
    "i2p": ({}, "i2p"),
    "genai_bench": ({"variant": "527", "with_skills": False}, "genai_bench"),  # the tag file is not in shared/
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_embedded_samples_are_the_first_public_rows(name, shared_dir, monkeypatch):
    """The sample prompts are the full file's prompts with the same ids, texts and metadata (only the source file
    and its hash differ), never invented ones."""
    monkeypatch.setenv("T2IBENCH_DATA_DIR", str(shared_dir / "datasets"))
    options = SAMPLES[name][0]
    sample = benchmarks.load(name, sample=True, **options)
    full = {p.id: p for p in benchmarks.load(name, **options)}
    assert 4 <= len(sample) <= 12
    for prompt in sample:
        twin = full[prompt.id]
        strip = ("source_file", "source_sha256")
        assert prompt.text == twin.text
        assert {k: v for k, v in prompt.metadata.items() if k not in strip} == {
            k: v for k, v in twin.metadata.items() if k not in strip
        }
        assert prompt.metadata["source_file"].startswith("sample of ")
    if name != "attend_and_excite":  # one list per subset there: the first of each
        assert [p.id for p in sample] == list(full)[: len(sample)]
    from t2ibench.api import BENCHMARKS

    declared = [s for s in BENCHMARKS.get(name).data_files if s.sample]  # rows, origin and licence, with its file
    assert declared and all(s.sample_note for s in declared)


def test_the_tiny_flow_needs_no_data_file(compose_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("T2IBENCH_CACHE", str(tmp_path / "empty"))
    cfg = compose_cfg(["benchmark=coco30k", "benchmark.n=1", "generation.num_inference_steps=1"])
    assert cfg["benchmark"]["sample"] is True
    summary = run_cell(cfg)
    assert summary["images"] == 1
    real = compose_cfg(["benchmark=coco30k", "model=sd14"])["benchmark"]
    assert real["sample"] is False


def test_no_torchvision_notice_and_no_negative_zero():
    code = "import t2ibench, diffusers, transformers; from diffusers import StableDiffusionPipeline; transformers.CLIPImageProcessor"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "requires torchvision" not in result.stderr, result.stderr
    assert fmt_number(-0.0001) == "0.000" and fmt_number(-0.0001, signed=True) == "+0.000"
    assert fmt_number(-0.0006) == "-0.001" and fmt_number(float("nan")) == "n/a" and fmt_number(None, missing="") == ""


def test_the_progress_bar_advances_per_denoising_step(compose_cfg, monkeypatch):
    updates = []

    class Bar:
        def __init__(self, *args, total=0, desc="", **kwargs):
            self.n, self.total, self.generating = 0.0, total, desc.startswith("generate")

        def update(self, step):
            self.n += step
            if self.generating:
                updates.append(round(self.n, 6))

        def close(self):
            pass

    monkeypatch.setattr("tqdm.auto.tqdm", Bar)
    cfg = compose_cfg(["benchmark.n=4", "run.batch_size=4", "generation.num_inference_steps=4", "run.progress=true"])
    run_cell(cfg)
    assert updates[-1] == 4 and len(updates) >= 5  # 4 images in one batch: several steps, not one jump of 4
    assert updates == sorted(updates) and all(u < 4 for u in updates[:-1])


@pytest.mark.parametrize(
    ("method", "benchmark"),
    [
        ("sd", ["benchmark=i2p", "benchmark.use_guidance_column=true", "benchmark.n=3"]),
        ("attend_and_excite", ["benchmark=i2p", "benchmark.use_guidance_column=true", "benchmark.n=3"]),
        ("syngen", ["benchmark=i2p", "benchmark.use_guidance_column=true", "benchmark.n=3"]),
        ("sepen", ["benchmark=tiny", "benchmark.n=2"]),
        ("sepen_large", ["benchmark=tiny", "benchmark.n=2"]),
        ("decorrelation", ["benchmark=correlated_pairs", "benchmark.n=1"]),
        ("respodiff", ["benchmark=i2p", "benchmark.use_guidance_column=true", "benchmark.n=3"]),
        ("rebind", ["benchmark=rolebench", "benchmark.n=1"]),
    ],
)
def test_the_recorded_generation_config_is_what_the_pipeline_was_called_with(
    method, benchmark, compose_cfg, monkeypatch
):
    """A spy on the pipeline's __call__ while the cell's images are generated (not while a method trains): every
    call's sampler settings are recorded with the images it made, and every recorded config was a call."""
    import diffusers

    import t2ibench.generation_guards as guards
    from t2ibench.run_store import RunStore

    calls, phase = [], {"generating": False}
    original_call, original_generate = diffusers.StableDiffusionPipeline.__call__, guards.generate_with_oom_retry

    def spy(self, *args, **kwargs):
        if phase["generating"]:
            batch = len(kwargs.get("prompt") or []) or int(kwargs["prompt_embeds"].shape[0])
            key = (float(kwargs["guidance_scale"]), int(kwargs["num_inference_steps"]), kwargs.get("height"))
            calls.extend([key] * batch)
        return original_call(self, *args, **kwargs)

    def generating(*args, **kwargs):
        phase["generating"] = True
        try:
            return original_generate(*args, **kwargs)
        finally:
            phase["generating"] = False

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "__call__", spy)
    monkeypatch.setattr(guards, "generate_with_oom_retry", generating)
    summary = run_cell(compose_cfg([f"method={method}", *benchmark, "generation.num_inference_steps=2"]))
    records = RunStore(summary["store"]).samples()
    recorded = [
        (
            float(r["generation"]["guidance_scale"]),
            int(r["generation"]["num_inference_steps"]),
            r["generation"]["height"],
        )
        for r in records
    ]
    assert len(records) == summary["images"] > 0
    assert sorted(recorded) == sorted(calls), (recorded, calls)
    if "benchmark.use_guidance_column=true" in benchmark:  # I2P's per-row guidance reached the pipeline
        wanted = sorted(float(r["prompt"]["metadata"]["generation_overrides"]["guidance_scale"]) for r in records)
        assert sorted(g for g, _, _ in calls) == wanted
    if method == "decorrelation":
        assert {g for g, _, _ in calls} == {8.5}  # w = 7.5 in the paper's (1 + w) convention
    if method.startswith("sepen"):
        assert {g for g, _, _ in calls} == {6.0}  # the official evaluation's guidance, not generation.*
