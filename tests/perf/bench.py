"""What the harness costs over the bare diffusers pipeline: figures beside their targets (a benchmark, not a test;
nothing is asserted).

    python tests/perf/bench.py              # 256 px, 50 PNDM steps, 5 ABAB pairs, then the quick setting
    python tests/perf/bench.py --quick      # the quick setting only (128 px, 4 steps; CI runs it with --pairs 1)
    python tests/perf/bench.py --profile    # + a cProfile of one harness run: every non-model cost over 1%
    python tests/perf/bench.py --full       # + SD-1.5- (512 px) and SDXL-shaped (1024 px) random weights, fp16 (CUDA)
    python tests/perf/bench.py --full --gpu-only   # the GPU figures alone; --dry-run: their code path on CPU

The model is the official code's parity pipeline ``../shared/parity/tiny-sd`` (``$T2IBENCH_SHARED``) where present,
the embedded tiny model otherwise (``--tiny`` forces it); both are SD-1.x-shaped. Each figure alternates its two calls
(A B A B, after one untimed warm-up call of each) and is the median of the per-pair ratios, with [min-max]:

1. the harness's seconds per image (``run_cell`` into a fresh run store: batching, seeding, the progress bar, PNG
   encoding + sha256 + fsync in the writer thread, the sample records; no evaluators) against the bare pipeline called
   with the same model, prompts, steps, initial latents and batches (PIL images kept in memory): the overhead ratio;
2. images per second at batch 1 against batch 4 (the harness, plain SD);
3. re-running the finished cell (every image and score cached) against its first run (generation + CLIP score);
4. peak memory of this process (max RSS; on CUDA also the peak allocated GPU memory);
5. writing one batch of four 1024 px images (random pixels: the slowest to encode) into a run store, serially against
   the parallel threads the harness uses: what the last batch of a cell, which has no next batch to hide behind, costs.

Start-up (``import t2ibench``, ``--help``, the first image) is ``bench_startup.py``'s; the guided methods at the papers'
settings are ``bench_methods.py``'s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import (  # noqa: E402
    full_size_models,
    machine_line,
    measured_model,
    paired,
    peak_gpu,
    ratios,
    reset_peak_gpu,
    spread,
    timed,
    verdict,
)

TARGETS = {"overhead": 1.05, "batched": 1.0, "rerun": 0.05}
N_PROMPTS, SEEDS = 2, [0, 1]  # 4 images per run


def cell_config(root: Path, model: dict[str, Any], generation: dict[str, Any], batch: int, scored: bool) -> dict:
    """A composed-config dict for :func:`t2ibench.runner.run_cell` (CLIP score with the tiny CLIP when ``scored``)."""
    return {
        "model": model,
        "method": {"name": "sd"},
        "benchmark": {"name": "tiny", "n": N_PROMPTS},
        "evaluators": ["clip_score"] if scored else [],
        "evaluator": {
            "clip_score": {"backbone": "tiny", "seed": 0, "batch_size": 8, "device": "cpu", "progress": False}
        },
        "generation": generation,
        "run": {
            "seeds": SEEDS,
            "batch_size": batch,
            "root": str(root / "runs"),
            "cache_dir": str(root / "cache"),
            "progress": True,  # as a user runs it: the bar's per-step hook is part of the figure (drawn to a sink)
        },
        "results": {"root": str(root / "results")},
        "experiment_name": "bench",
    }


class Harness:
    """One fresh run store per call of :meth:`generate` (so every call generates all its images)."""

    def __init__(self, model: dict[str, Any], generation: dict[str, Any], batch: int):
        self.model, self.generation, self.batch = model, generation, batch
        self.folder = Path(tempfile.mkdtemp(prefix="t2ibench-bench-"))
        self.calls = 0

    def generate(self) -> None:
        from t2ibench.runner import run_cell

        self.calls += 1
        run_cell(cell_config(self.folder / str(self.calls), self.model, self.generation, self.batch, False), False)


def bare_call(pipe: Any, generation: dict[str, Any], batch: int) -> Any:
    """The bare pipeline on the same prompts, initial latents and batches as :class:`Harness`."""
    from t2ibench import benchmarks
    from t2ibench.seeding import initial_latents, latent_shape

    items = [(p.text, s) for p in benchmarks.load("tiny", n=N_PROMPTS) for s in SEEDS]
    shape = latent_shape(pipe, generation["height"], generation["width"])

    def call() -> list[Any]:
        kept = []
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            latents = initial_latents([s for _, s in chunk], shape).to(pipe.device, pipe.unet.dtype)
            kept += pipe(
                [t for t, _ in chunk],
                latents=latents,  # the pipeline scales them by the scheduler's init_noise_sigma
                num_inference_steps=generation["num_inference_steps"],
                guidance_scale=generation["guidance_scale"],
                height=generation["height"],
                width=generation["width"],
            ).images
        return kept

    return call


def rerun_figure(model: dict[str, Any], generation: dict[str, Any], pairs: int) -> tuple[list[float], list[float]]:
    """(seconds of first runs, seconds of re-runs) of the cell with CLIP score, ``pairs`` fresh cells."""
    from t2ibench.runner import run_cell

    first, again = [], []
    for i in range(pairs):
        folder = Path(tempfile.mkdtemp(prefix="t2ibench-bench-"))
        cfg = cell_config(folder / str(i), model, generation, 4, True)
        first.append(timed(lambda cfg=cfg: run_cell(cfg)))
        again.append(timed(lambda cfg=cfg: run_cell(cfg)))
    return first, again


def bench(
    label: str,
    model: dict[str, Any],
    generation: dict[str, Any],
    pairs: int,
    overhead_only: bool = False,
    rerun: bool = True,
) -> None:
    from t2ibench.models import load_pipeline

    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    steps, size = generation["num_inference_steps"], f"{generation['height']}x{generation['width']}"
    images = N_PROMPTS * len(SEEDS)
    print(
        f"\n## {label}: {images} images per run, {steps} steps ({type(pipe.scheduler).__name__}), {size}, {pairs} ABAB pairs",
        flush=True,
    )
    harness = Harness(model, generation, 4)
    t_bare, t_harness = paired(bare_call(pipe, generation, 4), harness.generate, pairs)
    overhead = ratios(t_harness, t_bare)
    print(
        f"1. harness {spread([t / images for t in t_harness], 4)} s/img vs bare diffusers "
        f"{spread([t / images for t in t_bare], 4)} s/img (batch 4): overhead x{spread(overhead)}"
        f"   target <= {TARGETS['overhead']}: {verdict(statistics.median(overhead) <= TARGETS['overhead'])}",
        flush=True,
    )
    if overhead_only:
        return
    single = Harness(model, generation, 1)
    t_single, t_batched = paired(single.generate, harness.generate, pairs)
    gain = ratios(t_single, t_batched)  # images/s at batch 4 over images/s at batch 1
    print(
        f"2. images/s at batch 1: {spread([images / t for t in t_single], 2)}; at batch 4: "
        f"{spread([images / t for t in t_batched], 2)}: x{spread(gain, 2)}"
        f"   target batched >= batch 1: {verdict(statistics.median(gain) >= TARGETS['batched'])}",
        flush=True,
    )
    if not rerun:
        return
    first, again = rerun_figure(model, generation, max(1, min(pairs, 3)))
    share = ratios(again, first)
    print(
        f"3. re-run of the finished cell {spread(again, 3)} s vs its first run {spread(first, 2)} s: "
        f"{100 * statistics.median(share):.1f}%   target <= {100 * TARGETS['rerun']:.0f}%: "
        f"{verdict(statistics.median(share) <= TARGETS['rerun'])}",
        flush=True,
    )


def png_figure(pairs: int, size: int = 1024, images: int = 4) -> None:
    """One batch's image writes (PNG encoding, sha256, atomic fsynced writes, the records): serial against the
    parallel threads of :meth:`RunStore.write_samples`, on random-pixel images (the slowest to encode)."""
    import numpy as np
    from PIL import Image

    from t2ibench.prompt import Prompt
    from t2ibench.run_store import RunStore

    rng = np.random.default_rng(0)
    batch = [
        (Prompt(f"p{i}", "noise", "bench"), i, Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)), {})
        for i in range(images)
    ]
    root = Path(tempfile.mkdtemp(prefix="t2ibench-bench-png-"))
    stores = iter(range(10_000))

    def write(workers: int | None) -> None:
        RunStore.open(root / str(next(stores)), {"model": "m", "method": "sd", "benchmark": "b"}, {}).write_samples(
            batch, workers
        )

    serial, parallel = paired(lambda: write(1), lambda: write(None), pairs)
    print(
        f"5. writing one batch of {images} {size} px random-pixel PNGs: parallel {spread(parallel)} s vs serial "
        f"{spread(serial)} s: x{spread(ratios(parallel, serial), 2)}",
        flush=True,
    )


def profile(model: dict[str, Any], generation: dict[str, Any]) -> None:
    """cProfile of one harness run: the functions outside torch/diffusers/transformers over 1% of the run."""
    harness = Harness(model, generation, 4)
    harness.generate()  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    harness.generate()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = max(v[3] for v in stats.stats.values())  # cumulative time of the outermost call
    model_code = ("/torch/", "/diffusers/", "/transformers/", "/accelerate/")
    rows = []
    for (path, line, name), (_cc, _nc, own, cumulative, _callers) in stats.stats.items():
        if any(part in path for part in model_code) or path == "~":  # "~": built-ins (torch kernels are model cost)
            continue
        rows.append((cumulative, own, f"{Path(path).name}:{line}:{name}"))
    print(f"\n## profile of one harness run ({total:.2f} s): outside torch/diffusers/transformers, over 1% of the run")
    print(f"{'cumulative':>10} {'own':>8}  function")
    for cumulative, own, where in sorted(rows, reverse=True):
        if cumulative >= 0.01 * total:
            print(f"{100 * cumulative / total:>9.1f}% {100 * own / total:>7.1f}%  {where}")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
    print("top own time (all code):" + text.getvalue().split("\n", 6)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick setting only (128 px, 4 steps)")
    parser.add_argument("--pairs", type=int, default=None, help="ABAB pairs per figure (default 5)")
    parser.add_argument("--overhead-only", action="store_true", help="figure 1 only (the slowest settings first)")
    parser.add_argument("--tiny", action="store_true", help="the embedded tiny model even where the parity one exists")
    parser.add_argument("--profile", action="store_true", help="also a cProfile summary of one harness run")
    parser.add_argument(
        "--full", action="store_true", help="also SD-1.5- and SDXL-shaped random-weight fp16 pipelines (CUDA)"
    )
    parser.add_argument("--shapes", nargs="+", default=["SD-1.5", "SDXL"], help="the --full shapes to measure")
    parser.add_argument("--xl-pairs", type=int, default=2, help="ABAB pairs of the SDXL-shaped --full figures")
    parser.add_argument("--gpu-only", action="store_true", help="with --full: skip the CPU figures")
    parser.add_argument("--dry-run", action="store_true", help="the --full code path on CPU, tiny pipelines, no figure")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import torch

    from t2ibench import models

    pairs = args.pairs or 5
    print(f"# t2ibench harness perf, {machine_line()}", flush=True)
    model, label = measured_model(prefer_parity=not args.tiny)
    settings = [(128, 4, "quick")] if args.quick else [(256, 50, "papers' steps"), (128, 4, "quick")]
    if args.gpu_only or args.dry_run:
        settings = []
    for size, steps, name in settings:
        generation = {"num_inference_steps": steps, "guidance_scale": 7.5, "height": size, "width": size}
        bench(f"{label}, CPU, {name}", model, generation, pairs, args.overhead_only)
        if args.profile:
            profile(model, generation)
    if args.full or args.dry_run:
        if not (args.dry_run or torch.cuda.is_available()):
            print("\n--full needs a CUDA GPU; not run on this machine (--dry-run checks the code path on CPU)")
        else:
            for label, full_model, pipe, generation in full_size_models(args.dry_run, tuple(args.shapes)):
                full_pairs = 1 if args.dry_run else (args.pairs or 5) if "SD-1.5" in label else args.xl_pairs
                reset_peak_gpu()
                # the re-run figure (cache reads, CPU CLIP score) is a CPU figure: not repeated on the GPU
                bench(label, full_model, generation, full_pairs, args.overhead_only, rerun=False)
                if torch.cuda.is_available():
                    print(f"4. {peak_gpu().removeprefix('; ')}", flush=True)
                del pipe
                models.clear_cache()
    png_figure(1 if args.dry_run else min(pairs, 3))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    print(f"4. peak memory (max RSS of this process): {peak:.2f} GiB")


if __name__ == "__main__":
    main()
