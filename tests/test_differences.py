"""Differences that are real and cells that are whole: the paired bootstrap over prompts (by hand and against a
known distribution), ties in the leaderboard, the baseline differences, and the completeness rule (partial cells are
shown as partial, listed in missing.md, and neither ranked nor compared)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from t2ibench.paper import compare, write_differences, write_leaderboard
from t2ibench.stats import paired_bootstrap


def test_paired_bootstrap_by_hand():
    a = {("p1", 0): 1.0, ("p1", 1): 3.0, ("p2", 0): 2.0, ("p3", 0): 5.0, ("only-a", 0): 9.0}
    b = {("p1", 0): 0.0, ("p1", 1): 0.0, ("p2", 0): 0.0, ("p3", 0): 3.0, ("only-b", 0): 7.0}
    result = paired_bootstrap(a, b, resamples=500, seed=3)
    # per prompt over the shared keys: p1 (1 + 3) / 2 = 2, p2 2, p3 2: every resample's mean is 2
    assert (result.diff, result.low, result.high) == (2.0, 2.0, 2.0)
    assert result.prompts == 3 and result.images == 4 and result.resamples == 500 and result.seed == 3
    assert result.significant
    same = paired_bootstrap(b, b)
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0) and not same.significant
    assert paired_bootstrap({("x", 0): 1.0}, {("y", 0): 1.0}) is None  # nothing shared: no difference
    assert paired_bootstrap(a, b, seed=3, resamples=500) == result  # seeded: the same interval every time


def test_paired_bootstrap_matches_a_known_distribution():
    """Per-prompt differences drawn from N(0.3, 1) over 400 prompts: the interval is the mean's, 0.3 +- 1.96 / 20,
    within the bootstrap's own noise, and as wide as scipy's percentile bootstrap."""
    rng = np.random.default_rng(0)
    diffs = rng.normal(0.3, 1.0, 400)
    a = {(f"p{i}", 0): float(d) for i, d in enumerate(diffs)}
    b = {(f"p{i}", 0): 0.0 for i in range(400)}
    result = paired_bootstrap(a, b, resamples=4000)
    assert result.diff == pytest.approx(diffs.mean())
    half = 1.96 * diffs.std(ddof=1) / 20
    assert (result.high - result.low) / 2 == pytest.approx(half, rel=0.08)
    assert result.low < diffs.mean() < result.high and result.significant
    ref = scipy.stats.bootstrap((diffs,), np.mean, n_resamples=4000, method="percentile", random_state=1)
    assert result.high - result.low == pytest.approx(
        ref.confidence_interval.high - ref.confidence_interval.low, rel=0.08
    )


def _experiment(root, name, cells, values):
    """A results folder: table.csv from ``cells`` (method -> (mean, status)) and scores.csv from ``values``
    (method -> per-prompt values), one seed per prompt."""
    folder = root / name
    folder.mkdir(parents=True)
    rows = [
        {
            "model": "m",
            "method": method,
            "benchmark": "b",
            "config": f"c{i}",
            "selection": "seed 0, clip_score",
            "images": len(values[method]),
            "status": status,
            "stand_in": False,
            "clip_score": mean,
        }
        for i, (method, (mean, status)) in enumerate(cells.items())
    ]
    pd.DataFrame(rows).to_csv(folder / "table.csv", index=False)
    scores = [
        {
            "model": "m",
            "method": r["method"],
            "benchmark": "b",
            "config": r["config"],
            "selection": r["selection"],
            "prompt_id": f"p{j}",
            "seed": 0,
            "metric": "clip_score",
            "value": v,
        }
        for r in rows
        for j, v in enumerate(values[r["method"]])
    ]
    pd.DataFrame(scores).to_csv(folder / "scores.csv", index=False)
    return folder


def test_the_leaderboard_shows_ties_as_ties_and_does_not_rank_partial_cells(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(30, 3, 200)
    values = {
        "a": base + 2.0 + rng.normal(0, 0.01, 200),  # a and b: 0.005 apart on average, far within the noise
        "b": base + 2.0 + rng.normal(0, 0.01, 200),
        "c": base,  # 2 below both, on every prompt
        "d": base + 5.0,  # best mean, but partial
    }
    cells = {m: (float(v.mean()), "complete") for m, v in values.items()}
    cells["d"] = (float(values["d"].mean()), "partial: 199 / 200 images")
    _experiment(tmp_path, "e", cells, values)
    text = write_leaderboard(tmp_path).read_text()
    section = text.split("## b: clip_score (higher is better)")[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]
    ranked = {r[1]: r[0] for r in rows[1:]}
    top = sorted(("a", "b"), key=lambda m: -values[m].mean())
    assert ranked == {top[0]: "=1", top[1]: "=1", "c": "3", "d": "–"}
    assert "not ranked: partial: 199 / 200 images" in section
    assert "2000 resamples" in text
    vs_c = next(r for r in rows if r[1] == top[1])[5]  # the second of the tie against c: a real difference
    low, high = (float(v) for v in vs_c.split("[")[1].rstrip("]").split(","))
    assert 1.99 < low < high < 2.01  # about 2 on every prompt: a real difference


def test_differences_against_the_baseline(tmp_path):
    rng = np.random.default_rng(2)
    values = {"sd": rng.normal(30, 2, 50), "syngen": None, "attend_and_excite": None, "decorrelation": None}
    values["syngen"] = values["sd"] + 1.0 + rng.normal(0, 0.5, 50)
    values["attend_and_excite"] = values["sd"] + rng.normal(0, 0.5, 50)
    values["decorrelation"] = values["sd"] + 3.0
    cells = {m: (float(v.mean()), "complete") for m, v in values.items()}
    cells["decorrelation"] = (cells["decorrelation"][0], "partial: shard 1/2 not run")
    folder = _experiment(tmp_path, "e", cells, values)
    write_differences(folder)
    table = pd.read_csv(folder / "differences.csv").set_index("method")
    keyed = {m: {(f"p{j}", 0): float(v) for j, v in enumerate(values[m])} for m in values}
    expected = paired_bootstrap(keyed["syngen"], keyed["sd"], resamples=2000)
    assert table.loc["syngen", "difference"] == pytest.approx(expected.diff)
    assert (table.loc["syngen", "ci_low"], table.loc["syngen", "ci_high"]) == pytest.approx(
        (expected.low, expected.high)
    )
    assert bool(table.loc["syngen", "real"]) and table.loc["syngen", "resamples"] == 2000
    assert not bool(table.loc["attend_and_excite", "real"])
    assert "decorrelation" not in table.index
    assert "not differenced (partial: shard 1/2 not run)" in (folder / "differences.md").read_text()


def test_a_partial_cell_is_not_compared_with_the_paper():
    table = pd.DataFrame(
        [
            {"model": "m", "method": "sd", "benchmark": "b", "status": "partial: 544 / 553 images", "clip_score": 30.0},
            {"model": "m", "method": "x", "benchmark": "b", "status": "complete", "clip_score": 31.0},
        ]
    )
    entry = {
        "paper": "p",
        "table": "t",
        "group": "",
        "row": "r",
        "scale": "1",
        "benchmark": "b",
        "value": "30.5",
        "metric": "clip_score",
        "base_model": "",
        "base_method": "",
    }
    partial, whole = compare(
        [
            {**entry, "model": "m", "method": "sd", "column": "c1"},
            {**entry, "model": "m", "method": "x", "column": "c2"},
        ],
        table,
        {"sd", "x"},
    )
    assert partial["ours"] is None and partial["status"] == "not compared (m/sd partial: 544 / 553 images)"
    assert whole["ours"] == 31.0 and whole["status"] == "ok"


def test_partial_cells_say_what_they_lack(compose_cfg, released_overrides, tmp_path):
    """An external cell with an image missing (allow_missing) and a sharded cell with one shard run are partial:
    the table says how much they hold, missing.md lists what is missing; running the other shard completes it."""
    from PIL import Image

    from t2ibench import benchmarks
    from t2ibench.runner import run_cell

    prompts = benchmarks.load("genai_bench", sample=True)
    folder = tmp_path / "released"
    folder.mkdir()
    for prompt in prompts[1:]:  # the first prompt's image is missing
        Image.new("RGB", (32, 32), (10, 20, 30)).save(folder / f"{prompt.id}.jpeg")
    overrides = [*released_overrides(folder), "benchmark.sample=true", "method.allow_missing=true"]
    run_cell(compose_cfg(overrides))
    results = tmp_path / "results" / "stand-ins" / "default"
    table = pd.read_csv(results / "table.csv")
    assert table.loc[0, "status"] == "partial: 7 / 8 images"
    assert "7 (partial)" in (results / "table.md").read_text()
    missing = (results / "missing.md").read_text()
    assert "DALLE_3 (tiny stand-in) / external / genai_bench: partial: 7 / 8 images" in missing
    assert "00001 seed 0" in missing
    common = [
        "benchmark=genai_bench",
        "benchmark.sample=true",
        "evaluators=[clip_score]",
        "evaluator.clip_score.backbone=tiny",
    ]
    sharded = ["benchmark.n=2", "generation.num_inference_steps=1", "experiment_name=sharded", *common]
    run_cell(compose_cfg([*sharded, "benchmark.shard=0/2"]))
    status = pd.read_csv(tmp_path / "results" / "stand-ins" / "sharded" / "table.csv").loc[0, "status"]
    assert status == "partial: shard 1/2 not run"
    run_cell(compose_cfg([*sharded, "benchmark.shard=1/2"]))
    status = pd.read_csv(tmp_path / "results" / "stand-ins" / "sharded" / "table.csv").loc[0, "status"]
    assert status == "complete" and not (tmp_path / "results" / "stand-ins" / "sharded" / "missing.md").exists()


def test_an_image_an_evaluator_cannot_score_leaves_the_cell_partial_with_the_reason(
    compose_cfg, released_overrides, tmp_path, monkeypatch
):
    from PIL import Image

    from t2ibench import benchmarks
    from t2ibench.api import EVALUATORS
    from t2ibench.runner import run_cell

    folder = tmp_path / "released"
    folder.mkdir()
    for prompt in benchmarks.load("genai_bench", sample=True):
        Image.new("RGB", (32, 32), (10, 20, 30)).save(folder / f"{prompt.id}.jpeg")
    evaluator = EVALUATORS.get("clip_score")
    original = evaluator.score

    def broken(self, store, records):
        if any(r["prompt"]["id"] == "00002" for r in records):
            raise ValueError("cannot decode this image")
        return original(self, store, records)

    monkeypatch.setattr(evaluator, "score", broken)
    cfg = compose_cfg([*released_overrides(folder), "benchmark.sample=true"])
    run_cell(cfg)
    results = tmp_path / "results" / "stand-ins" / "default"
    assert pd.read_csv(results / "table.csv").loc[0, "status"] == "partial: clip_score on 7 / 8 images"
    missing = (results / "missing.md").read_text()
    assert "clip_score could not score 00002 seed 0: ValueError: cannot decode this image" in missing
    monkeypatch.setattr(evaluator, "score", original)  # fixed: the next run scores the one image left
    assert run_cell(cfg)["scored"] == 1
    assert pd.read_csv(results / "table.csv").loc[0, "status"] == "complete" and not (results / "missing.md").exists()

    def everything_fails(self, store, records):
        raise RuntimeError("the model is broken")

    monkeypatch.setattr(evaluator, "score", everything_fails)  # not an image's failure: the run stops with it
    with pytest.raises(RuntimeError, match="the model is broken"):
        run_cell(
            compose_cfg(
                [*released_overrides(folder), "benchmark.sample=true", "experiment_name=x", "model.name=SDXL_Base"]
            )
        )
