"""No idle GPU on a node: ``hydra/launcher=gpus`` (hydra-ray-launcher) runs a sweep's cells one GPU each, with two
GPUs simulated on the CPU (Ray's ``num_gpus``). Ray pins each running cell to its own ``CUDA_VISIBLE_DEVICES``, holds
the next cell until a GPU is free, and a failed cell frees its GPU too; the cells' records say where they ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd


def test_cells_fill_every_gpu_one_each_and_a_failed_cell_frees_its_gpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}  # Ray maps its ids onto a set one
    env.update(HF_HUB_OFFLINE="1", RAY_DEDUP_LOGS="0", RAY_USAGE_STATS_ENABLED="0")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "t2ibench.cli",
            "-m",
            "hydra/launcher=gpus",
            "hydra.launcher.ray.init.num_gpus=2",  # two simulated GPUs
            "hydra.launcher.ray.init.num_cpus=2",
            "generation.num_inference_steps=1,2,0,3",  # 0 steps: cell #2 fails (a user error), the others run
            "benchmark.n=2",
            "run.batch_size=1",
            "run.progress=false",
            "evaluators=[]",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-4000:]  # the sweep ran to its end and reports its failed cell
    assert "1 cell(s) of the sweep failed" in result.stderr and "#2" in result.stderr, result.stderr[-3000:]
    results = tmp_path / "results" / "stand-ins" / "default"
    records = [json.loads(p.read_text()) for p in sorted((results / "cells").glob("*.json"))]
    assert sorted(r["generation"]["num_inference_steps"] for r in records) == [1, 2, 3]
    runs = [r["process"] for r in records]
    assert all(p["cuda_visible_devices"] in ("0", "1") for p in runs), runs  # one GPU each, none shared
    assert len({p["pid"] for p in runs}) == 3  # a fresh process per cell (its GPU memory is released at its end)
    for a in runs:  # cells that ran at the same time had different GPUs
        for b in runs:
            if a is not b and a["started"] < b["finished"] and b["started"] < a["finished"]:
                assert a["cuda_visible_devices"] != b["cuda_visible_devices"], runs
    assert {p["cuda_visible_devices"] for p in runs} == {"0", "1"}  # both GPUs were used
    assert len(pd.read_csv(results / "table.csv")) == 3  # tables rebuilt once at the end, from every finished cell


def test_a_launcher_whose_plugin_is_missing_says_how_to_install_it(monkeypatch):
    import importlib.util

    import pytest

    from t2ibench import T2IBenchError
    from t2ibench.cli import check_overrides

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.endswith("ray_launcher") else real(name, *a)
    )
    with pytest.raises(T2IBenchError, match=r"hydra/launcher=gpus needs .*pip install -e '\.\[gpus\]'"):
        check_overrides(["hydra/launcher=gpus", "method=sd"])
    check_overrides(["hydra/launcher=submitit_local", "method=sd"])  # installed: no error
