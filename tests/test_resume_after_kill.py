"""A sweep killed with SIGKILL in the middle of generation or of scoring resumes to the same final state as an
uninterrupted run: the same PNG bytes, no duplicate or missing sample or score rows, no half-written file read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

# 16 images, two evaluators scored one image per chunk: wide windows to be killed in.
ARGS = [
    "benchmark.n=8",
    "run.seeds=[0,1]",
    "run.batch_size=3",
    "generation.num_inference_steps=3",
    "evaluators=[clip_score,vqascore]",
    "evaluator.clip_score.chunk_size=1",
    "evaluator.vqascore.chunk_size=1",
    "evaluator.vqascore.batch_size=1",
    "run.progress=false",
]
N = 16
EVALUATORS = ("clip_score", "vqascore")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _command() -> list[str]:
    return [sys.executable, "-m", "t2ibench.cli", *ARGS]


def _store(cwd: Path) -> Path | None:
    stores = list((cwd / "outputs" / "runs").glob("stand-ins/tiny/sd/tiny/*"))
    return stores[0] if stores else None


def _kill_when(cwd: Path, ready) -> None:
    """Start a run and SIGKILL it as soon as ``ready(store)`` holds."""
    process = subprocess.Popen(_command(), cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and process.poll() is None:
            store = _store(cwd)
            if store is not None and ready(store):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def _score_rows(store: Path) -> int:
    return (
        sum(max(len(p.read_text().splitlines()) - 1, 0) for p in (store / "scores").glob("*.csv"))
        if (store / "scores").exists()
        else 0
    )


def _state(cwd: Path) -> dict:
    store = _store(cwd)
    lines = (store / "samples.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    scores = []
    for name in EVALUATORS:
        frame = pd.read_csv(store / "scores" / f"{name}.csv")
        scores += [
            (name, p, s, h, round(v, 6))
            for p, s, h, v in zip(frame["prompt_id"], frame["seed"], frame["image_sha256"], frame[name], strict=True)
        ]
    return {
        "pngs": {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*.png"))},
        "samples": sorted((r["prompt"]["id"], r["seed"], r["image_sha256"]) for r in records),
        "sample_lines": len(lines),
        "scores": sorted(scores),
        "temporaries": [p.name for p in store.rglob(".tmp-*")],
        "table": (cwd / "results" / "stand-ins" / "default" / "table.csv").read_text(),
    }


def test_killed_generation_and_scoring_resume_to_the_uninterrupted_state(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    assert subprocess.run(_command(), cwd=clean, env=ENV, capture_output=True, timeout=600).returncode == 0
    expected = _state(clean)
    assert len(expected["pngs"]) == N and expected["sample_lines"] == N and len(expected["scores"]) == 2 * N

    _kill_when(killed, lambda store: len(list(store.rglob("*.png"))) >= 2)  # in the middle of generation
    assert 2 <= len(list(_store(killed).rglob("*.png"))) < N
    _kill_when(killed, lambda store: 1 <= _score_rows(store) < 2 * N)  # resumed, then killed in the middle of scoring
    assert 1 <= _score_rows(_store(killed)) < 2 * N
    assert subprocess.run(_command(), cwd=killed, env=ENV, capture_output=True, timeout=600).returncode == 0
    resumed = _state(killed)
    assert resumed["pngs"] == expected["pngs"]  # the same bytes: the fixed batching rule rebuilds the same batches
    assert resumed["samples"] == expected["samples"] and resumed["sample_lines"] == N  # no duplicate, none missing
    assert resumed["scores"] == expected["scores"] and resumed["temporaries"] == []
    assert resumed["table"] == expected["table"]
