"""The harness performance script runs in its quick mode (one ABAB pair) and prints every figure with its target
(values are not asserted: it is a benchmark)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "perf" / "bench.py"
NUMBER = r"[\d.]+ \[[\d.]+-[\d.]+\]"  # median [min-max]


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``tests/perf/<name>`` offline; it must exit 0."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT.with_name(name)), *args],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_quick_benchmark_prints_every_figure_and_target():
    result = run_script("bench.py", "--quick", "--pairs", "1")
    out = result.stdout
    for pattern in (
        rf"1\. harness {NUMBER} s/img vs bare diffusers {NUMBER} s/img \(batch 4\): overhead x{NUMBER}   target <= 1\.05: (met|NOT met)",
        rf"2\. images/s at batch 1: {NUMBER}; at batch 4: {NUMBER}: x{NUMBER}   target batched >= batch 1: (met|NOT met)",
        rf"3\. re-run of the finished cell {NUMBER} s vs its first run {NUMBER} s: [\d.]+%   target <= 5%: (met|NOT met)",
        r"4\. peak memory \(max RSS of this process\): [\d.]+ GiB",
        rf"5\. writing one batch of 4 1024 px random-pixel PNGs: parallel {NUMBER} s vs serial {NUMBER} s: x{NUMBER}",
    ):
        assert re.search(pattern, out), f"missing {pattern!r} in:\n{out}"


def test_gpu_figures_code_path_runs_on_cpu_as_a_labelled_dry_run():
    """``--full`` builds SD-1.5- and SDXL-shaped pipelines on CUDA; ``--dry-run`` runs that code path (registering
    a pipeline built in-process, harness vs bare on both shapes) with the tiny pipelines, labelled as no figure."""
    result = run_script("bench.py", "--dry-run")
    headers = re.findall(
        r"^## (SD-1\.5|SDXL)-shaped random weights, DRY RUN on CPU .*not a figure", result.stdout, re.M
    )
    assert headers == ["SD-1.5", "SDXL"], result.stdout
    assert len(re.findall(r"^1\. harness .* overhead x", result.stdout, re.M)) == 2
    assert "StableDiffusionXL" not in result.stderr  # the SDXL pipeline ran through the harness without error


def test_guided_method_benchmark_runs_as_a_labelled_dry_run():
    """``bench_methods.py --dry-run``: the ``--full`` code path of the guided-method figures on the CPU (tiny
    pipeline, 2 steps): batch-1 ratios with their forward counts, batch 4 vs batch 1, each with its target, and the
    UNet's own batching ceiling on the CPU."""
    result = run_script("bench_methods.py", "--dry-run", "--pairs", "1")
    out = result.stdout
    assert re.search(r"^## SD-1\.5-shaped random weights, DRY RUN on CPU .*not a figure", out, re.M), out
    for method, target in (("syngen", "<= 1.5"), ("attend_and_excite", "<= 2.0")):
        line = rf"^{method} +batch 1: {NUMBER} s/img vs SD {NUMBER} s/img: x{NUMBER}   target {re.escape(target)}: (met|NOT met)"
        assert re.search(line, out, re.M), f"missing {line!r} in:\n{out}"
        assert re.search(rf"^{method} +batch 4 in one call: .* target >= 1\.5: (met|NOT met)", out, re.M), out
    counts = re.findall(r"UNet forwards per image: (\d+) with gradient \+ (\d+) CFG \(SD: 0 \+ (\d+)\)", out)
    assert len(counts) == 2 and all(int(g) > 0 and cfg == sd for g, cfg, sd in counts), counts
    assert re.search(r"^sd +batch 4 in one call: .*\(reference\)", out, re.M), out
    for part in ("CFG forward", "gradient fwd\\+bwd"):
        ceiling = rf"^ceiling +{part}.*batch 4 vs 1 per image: x{NUMBER} on \d+ threads; x{NUMBER} if the \d+ threads split batch 4 perfectly"
        assert re.search(ceiling, out, re.M), f"missing {ceiling!r} in:\n{out}"
