"""Seconds per image of every method on the tiny default (``t2ibench method=M``), training included, beside plain SD.

    python tests/perf/bench_tiny_default.py              # every method of conf/method/, 3 interleaved rounds
    python tests/perf/bench_tiny_default.py --rounds 5 --methods syngen rebind

A benchmark, not a test: it prints figures and the target (every method within 4x plain SD per image), no assertion.
Each call is a whole cell through :func:`t2ibench.runner.run_cell` with the composed CLI config (the tiny model, its
method presets, the tiny benchmark, CLIP score), in a fresh run store and a fresh trained-weights cache, so training
and intermediate images are part of the figure, as on a first run. The model itself is built once per process (as
in a sweep). Plain SD runs on exactly the prompts the method makes images of (Decorrelation and ReBind take only the
prompts with a target word or a RoleBench relation), and the two calls alternate: SD, M, SD, M, ... (ABAB).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 4.0


def compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="t2ibench.conf", version_base="1.3"):
        return OmegaConf.to_container(hydra_compose(config_name="config", overrides=overrides), resolve=True)


def method_styles(cfg: dict[str, Any]) -> list[str]:
    """The tiny-benchmark styles of the prompts the method makes images of."""
    from t2ibench.api import METHODS, load_benchmark
    from t2ibench.plan import resolve_generation
    from t2ibench.seeding import make_items

    prompts = load_benchmark("tiny")
    generation = resolve_generation(cfg["generation"], cfg["model"]["generation_defaults"])
    method = METHODS.get(cfg["method"]["name"])(cfg["method"], generation)
    items = method.select_items(make_items(prompts, cfg["run"]["seeds"], {"source": "config"}), None)
    return sorted({p.metadata["style"] for p, _, _ in items})


def timed_cell(overrides: list[str], folder: Path) -> tuple[float, int]:
    from t2ibench.runner import run_cell

    base = [f"run.root={folder}/runs", f"run.cache_dir={folder}/cache", f"results.root={folder}/results"]
    cfg = compose([*base, "run.progress=false", *overrides])
    started = time.perf_counter()
    summary = run_cell(cfg)
    return time.perf_counter() - started, summary["images"]


def main() -> None:
    from t2ibench.cli import conf_options

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved (SD, method) pairs per method")
    parser.add_argument("--methods", nargs="*", default=None, help="default: every method but external")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    methods = args.methods or [m for m in conf_options("method") if m not in ("sd", "external")]
    root = Path(tempfile.mkdtemp(prefix="t2ibench-bench-"))
    timed_cell([], root / "warm-up")  # builds the tiny model and CLIP once, as a sweep's first cell does
    print(f"tiny default (model=tiny, benchmark=tiny, 10 steps at 256 px, CLIP score), {args.rounds} rounds, ABAB")
    print(f"{'method':<18} {'images':>6} {'SD s/img':>18} {'method s/img':>20} {'ratio':>6}  target <= {TARGET:.0f}x")
    worst = 0.0
    for method in methods:
        cfg = compose([f"method={method}"])
        styles = method_styles(cfg)
        sd_args = [f"benchmark.styles=[{','.join(styles)}]"]
        sd_times, method_times = [], []
        images = 0
        for round_ in range(args.rounds):
            seconds, images = timed_cell(sd_args, root / f"{method}-sd-{round_}")
            sd_times.append(seconds / images)
            seconds, images = timed_cell([f"method={method}"], root / f"{method}-{round_}")
            method_times.append(seconds / images)
        sd, ours = statistics.median(sd_times), statistics.median(method_times)
        ratio = ours / sd
        worst = max(worst, ratio)

        def spread(values: list[float]) -> str:
            return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"

        verdict = "met" if ratio <= TARGET else "NOT met"
        print(
            f"{method:<18} {images:>6} {spread(sd_times):>18} {spread(method_times):>20} {ratio:>5.2f}x  {verdict}",
            flush=True,
        )
    print(f"worst ratio x{worst:.2f} (target <= {TARGET:.0f}x: {'met' if worst <= TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
