"""Tables that are never silently wrong (driven through the CLI): a row is what its cell was, wherever the tables are
rebuilt from, and a cell whose run store is gone is shown as missing, never as zero images."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
FAST = ["run.seeds=[0]", "generation.num_inference_steps=2", "run.progress=false"]


def _run(cwd: Path, *args: str, module: str = "t2ibench.cli") -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_tables_rebuilt_from_another_folder_are_the_same_and_a_lost_store_is_missing_not_zero(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    _run(project, "benchmark.n=2", *FAST)
    results = project / "results" / "stand-ins" / "default"
    before = {name: (results / name).read_bytes() for name in ("table.csv", "table.md", "table.tex")}
    host = "".join(c if c.isalnum() else "_" for c in os.uname().nodename)[:40]
    stale = results / f".tmp-{host}~999999999-killed"  # a table write killed before its rename (its pid is gone)
    stale.write_text("half")
    _run(elsewhere, str(results), module="t2ibench.report")
    assert {name: (results / name).read_bytes() for name in before} == before
    assert not stale.exists()

    # the whole project folder moved: the stores are found relative to the results folder
    moved = tmp_path / "moved"
    shutil.move(str(project), str(moved))
    _run(elsewhere, str(moved / "results" / "stand-ins" / "default"), module="t2ibench.report")
    table = pd.read_csv(moved / "results" / "stand-ins" / "default" / "table.csv")
    assert table["images"].tolist() == [2] and table["status"].tolist() == ["complete"]

    # the run store deleted: one line says so, the row is missing (no images, no metric), not 0 images
    shutil.rmtree(moved / "outputs")
    output = _run(elsewhere, str(moved / "results" / "stand-ins" / "default"), module="t2ibench.report")
    assert "is not found" in output
    table = pd.read_csv(moved / "results" / "stand-ins" / "default" / "table.csv")
    assert table["images"].isna().all() and table["status"].tolist() == ["missing: run store not found"]
    assert "missing (run store not found)" in (moved / "results" / "stand-ins" / "default" / "table.md").read_text()


def test_different_selections_of_one_cell_are_different_rows(tmp_path):
    """benchmark.n, run.seeds and the evaluator list select a cell's images and scores: each selection is its own
    row, with its own image count and mean, and a run without evaluators removes no other row's column."""
    _run(tmp_path, "benchmark.n=2", *FAST)
    _run(tmp_path, "benchmark.n=3", *FAST)
    _run(tmp_path, "benchmark.n=2", "evaluators=[]", *FAST)
    results = tmp_path / "results" / "stand-ins" / "default"
    table = pd.read_csv(results / "table.csv").sort_values("selection")
    assert table["images"].tolist() == [2, 2, 3]
    assert table["selection"].tolist() == [
        "n=2, seed 0, clip_score",
        "n=2, seed 0, no evaluators",
        "n=3, seed 0, clip_score",
    ]
    scored = table.dropna(subset=["clip_score"])
    assert len(scored) == 2 and scored["clip_score"].nunique() == 2  # n=2 and n=3 are not one mixed mean
    assert len(list((results / "cells").glob("*.json"))) == 3
    header = next(line for line in (results / "table.md").read_text().splitlines() if line.startswith("| model"))
    assert [c.strip() for c in header.strip("|").split("|")][:5] == [
        "model",
        "method",
        "benchmark",
        "selection",
        "images",
    ]
