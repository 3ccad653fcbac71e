"""Files in a group's shared project folder: every file t2ibench writes atomically gets the permissions ``open()``
would give it under the user's umask (not the private 0600 of a temporary file)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from t2ibench.atomic import atomic_write_bytes, atomic_write_json, current_umask


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_json(tmp_path / "b.json", {"a": 1})
        with open(tmp_path / "c.txt", "w") as handle:  # what open() gives, for comparison
            handle.write("x")
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("a.bin", "b.json", "c.txt")}
    assert modes == dict.fromkeys(modes, 0o666 & ~mask)


def test_a_run_under_umask_002_leaves_group_writable_files(tmp_path):
    """Images, records, score files, cell records and tables of a CLI run, under umask 002."""
    result = subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", "benchmark.n=1", "run.seeds=[0]", "generation.num_inference_steps=2"],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.umask(0o002),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    kinds = {p.suffix for p in files}
    assert {".png", ".jsonl", ".csv", ".json", ".md", ".tex"} <= kinds
    wrong = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    wrong = {k: v for k, v in wrong.items() if v != oct(0o664)}
    assert not wrong
