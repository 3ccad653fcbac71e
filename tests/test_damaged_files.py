"""Damaged files of a run store are detected and repaired through the CLI, never used: a truncated or overwritten
PNG is made again (its bytes no longer match the sha256 of its record), a record line that is not a sample record is
set aside in ``samples.rejected.jsonl`` and its image made again, and the run says what it repaired."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ARGS = ["benchmark.n=2", "run.seeds=[0]", "generation.num_inference_steps=2", "run.progress=false"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _run(cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", *ARGS], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_damaged_images_and_record_lines_are_repaired_not_used(tmp_path):
    _run(tmp_path)
    store = next((tmp_path / "outputs" / "runs").glob("stand-ins/tiny/sd/tiny/*"))
    pngs = sorted(store.rglob("*.png"))
    assert len(pngs) == 2
    good = {p: p.read_bytes() for p in pngs}
    table = (tmp_path / "results" / "stand-ins" / "default" / "table.csv").read_text()
    lines = (store / "samples.jsonl").read_text().splitlines()

    # damage: one PNG truncated to half, one record replaced by {}, an unreadable line added
    victim = json.loads(lines[1])
    truncated = next(p for p in pngs if not str(p).endswith(victim["image"]))  # the other image
    truncated.write_bytes(good[truncated][: len(good[truncated]) // 2])
    (store / "samples.jsonl").write_text("\n".join([lines[0], "{}", "not json"]) + "\n")

    output = _run(tmp_path)
    assert "3 damaged file(s) repaired" in output  # the PNG and the two lines
    assert "2 generated" in output  # the truncated image and the one whose record was lost
    assert {p: p.read_bytes() for p in pngs} == good  # made again, the same bytes
    rejected = (store / "samples.rejected.jsonl").read_text().splitlines()
    assert rejected == ["{}", "not json"]  # kept, not lost
    records = [json.loads(line) for line in (store / "samples.jsonl").read_text().splitlines()]
    assert {(r["prompt"]["id"], r["seed"]) for r in records} == set(
        [(json.loads(lines[0])["prompt"]["id"], 0), (victim["prompt"]["id"], 0)]
    )
    assert (tmp_path / "results" / "stand-ins" / "default" / "table.csv").read_text() == table

    # a third run finds nothing to repair and nothing to do
    again = _run(tmp_path)
    assert "repaired" not in again and "0 generated, 0 scored" in again
