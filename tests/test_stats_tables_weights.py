import json

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from t2ibench.runner import run_cell
from t2ibench.stats import mean_cell, mean_ci
from t2ibench.tables import build_tables
from t2ibench.trained_weights import TrainedWeightsCache, training_key


def test_mean_ci_matches_scipy_t_interval():
    values = [3.1, 2.7, 4.4, 3.9, 3.3, 2.2]
    mean, low, high = mean_ci(values)
    ref_low, ref_high = scipy_stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values)
    )
    assert mean == pytest.approx(np.mean(values)) and low == pytest.approx(ref_low) and high == pytest.approx(ref_high)
    assert mean_ci([5.0]) == (5.0, None, None)
    cell = mean_cell("m", [1.0, float("nan"), 3.0])
    assert cell.n == 2 and cell.value == 2.0


def test_trained_weights_cache_roundtrip(tmp_path):
    cache = TrainedWeightsCache(tmp_path)
    key = training_key({"id": "m", "revision": "abc"}, {"name": "sepen", "lr": 8e-6}, ["a cat and a dog"])
    assert key != training_key({"id": "m", "revision": "abd"}, {"name": "sepen", "lr": 8e-6}, ["a cat and a dog"])
    assert key != training_key({"id": "m", "revision": "abc"}, {"name": "sepen", "lr": 8e-6}, ["a cat and a frog"])
    assert cache.load("sepen", key) is None and not cache.exists("sepen", key)
    weights = {"to_k": torch.randn(4, 3), "bias": torch.arange(3.0)[::2]}
    folder = cache.save("sepen", key, weights, {"steps": 200})
    assert folder == tmp_path / "sepen" / key and cache.exists("sepen", key)
    back = cache.load("sepen", key)
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    assert cache.metadata("sepen", key)["steps"] == 200


def test_tables_markdown_csv_latex_and_provenance(tmp_path, tiny_cfg):
    run_cell(tiny_cfg(tmp_path, run__seeds=[0, 1]))
    run_cell(tiny_cfg(tmp_path, run__seeds=[0, 1], generation={"guidance_scale": 3.0}))
    results = tmp_path / "results" / "stand-ins" / "test"
    frame = build_tables(results, "test")
    assert len(frame) == 2 and set(frame["images"]) == {4}
    assert {"clip_score", "clip_score_ci_low", "clip_score_ci_high", "clip_score_n"} <= set(frame.columns)
    assert (frame["clip_score_ci_low"] <= frame["clip_score"]).all() and (
        frame["clip_score"] <= frame["clip_score_ci_high"]
    ).all()
    md = (results / "table.md").read_text()
    assert "| model | method | benchmark | config | images | clip_score ↑ |" in md  # two configs: a config column
    tex = (results / "table.tex").read_text()
    assert "\\toprule" in tex and "clip\\_score" in tex and "$\\pm$" in tex
    prov = json.loads((results / "provenance.json").read_text())
    row = prov["rows"][0]
    assert row["evaluators"]["clip_score"]["backbone"] == "tiny" and row["seeds"] == [0, 1] and row["images"] == 4
    assert row["library_versions"][0]["torch"] == torch.__version__
    # Per-image rows behind the cell: the mean in the CSV is the mean of the score file's rows.
    scores = __import__("pandas").read_csv(next((tmp_path / "runs").rglob("clip_score.csv")))
    assert any(abs(scores["clip_score"].mean() - v) < 1e-9 for v in frame["clip_score"])


def test_shards_are_merged_into_one_row(tmp_path, tiny_cfg):
    for i in range(2):
        run_cell(tiny_cfg(tmp_path, benchmark={"name": "tiny", "n": 4, "shard": f"{i}/2"}))
    frame = build_tables(tmp_path / "results" / "stand-ins" / "test")
    assert len(frame) == 1 and frame["images"].item() == 4 and frame["clip_score_n"].item() == 4
    assert len(list((tmp_path / "results" / "stand-ins" / "test" / "cells").glob("*shard*.json"))) == 2
