"""Concurrent cells writing to one results folder and one run store do not corrupt each other: score files are
merged under a lock and the last table build sees every cell record."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from t2ibench import Prompt
from t2ibench.run_store import RunStore

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _hammer(root: str, worker: int, count: int) -> None:
    store = RunStore.open(root, {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    for i in range(count):
        row = {"prompt_id": f"w{worker}-{i}", "seed": 0, "image_sha256": "x", "eval_key": "k", "value": float(i)}
        store.merge_scores("metric", [row], "k", {"evaluator": "metric"})


def test_concurrent_score_merges_lose_no_rows(tmp_path):
    RunStore.open(tmp_path, {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(str(tmp_path), w, 25)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    store = RunStore.open(tmp_path, {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    frame = store.read_scores("metric")
    assert len(frame) == 75 and frame["prompt_id"].is_unique  # every worker's rows, none twice


def test_merge_replaces_a_row_of_the_same_key(tmp_path):
    store = RunStore.open(tmp_path, {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    store.write_sample(Prompt("p", "a cat", "t"), 0, Image.new("RGB", (8, 8)), {})
    row = {"prompt_id": "p", "seed": 0, "image_sha256": "h", "eval_key": "k", "value": 1.0}
    store.merge_scores("metric", [row], "k", {})
    frame = store.merge_scores("metric", [{**row, "value": 2.0}], "k", {})
    assert frame["value"].tolist() == [2.0]


def test_concurrent_shards_and_methods_into_one_results_folder(tmp_path):
    """Five cells at once into one results folder: 2 methods x 2 shards, plus a duplicate of one shard (a requeued
    job) writing into the same run store as its twin. The merged table has every cell, each store's samples and
    scores have every image once, and equals the table of the unsharded run; adding that run's cells to the same
    folder counts no image twice."""
    common = [
        "benchmark.n=4",
        "generation.num_inference_steps=2",
        "run.batch_size=1",  # then a shard's images are bit-identical to the unsharded run's
        "experiment_name=together",
        "run.progress=false",
        "evaluators=[clip_score]",
        "evaluator.clip_score.chunk_size=1",
    ]
    cells = [[f"method={m}", f"benchmark.shard={s}/2", *common] for m in ("sd", "attend_and_excite") for s in (0, 1)]
    cells.append(cells[0])
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "t2ibench.cli", *args],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in cells
    ]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, (out + err)[-3000:]
    sharded = pd.read_csv(tmp_path / "results" / "stand-ins" / "together" / "table.csv")
    assert sorted(sharded["method"]) == ["attend_and_excite", "sd"] and set(sharded["clip_score_n"]) == {4}
    stores = sorted(p.parent for p in (tmp_path / "outputs" / "runs" / "stand-ins" / "tiny").rglob("samples.jsonl"))
    assert len(stores) == 4
    for store in stores:
        frame = pd.read_csv(store / "scores" / "clip_score.csv")
        assert len(frame) == 2 and not frame.duplicated(["prompt_id", "seed"]).any()
        assert len(RunStore(store).records()) == 2 and len(list(store.rglob("*.png"))) == 2
        assert not list(store.rglob(".tmp-*"))
    unsharded = subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", "-m", "method=sd,attend_and_excite", *common],
        cwd=tmp_path,
        env={**ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert unsharded.returncode == 0, unsharded.stderr[-3000:]
    again = pd.read_csv(tmp_path / "results" / "stand-ins" / "together" / "table.csv")
    again, sharded = again.sort_values("method"), sharded.sort_values("method")
    columns = ["method", "images", "clip_score_n"]
    assert again[columns].values.tolist() == sharded[columns].values.tolist()
    for column in ("clip_score", "clip_score_ci_low"):  # the same images, maybe in other CLIP batches
        assert again[column].tolist() == pytest.approx(sharded[column].tolist(), abs=1e-4)
