"""The performance script runs in its quick mode and prints every figure with its target (values are not
asserted: it is a benchmark)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "perf" / "bench.py"


def test_quick_benchmark_prints_every_figure_and_target():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "1"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for pattern in (
        r"4\. `t2ibench --help` start-up: [\d.]+ s   target < 2\.0 s: (met|NOT met)",
        r"1\. harness [\d.]+ s/img vs bare diffusers [\d.]+ s/img: overhead x[\d.]+   target <= 1\.05",
        r"2\. images/s at batch 1: [\d.]+; at batch 4: [\d.]+   target batched >= batch 1",
        r"3\. re-run of the finished sweep [\d.]+ s vs first run [\d.]+ s: [\d.]+%   target <= 5%",
        r"6\. SynGen [\d.]+ s/img vs plain [\d.]+ s/img \(batch 1\): x[\d.]+   target <= 2\.0",
        r"5\. peak memory \(max RSS of this process\): [\d.]+ GiB",
    ):
        assert re.search(pattern, out), f"missing {pattern!r} in:\n{out}"
