"""Environment failures met at the door or reported in one line (``t2ibench: error: ...``, exit status 2), SIGTERM
logged with the cell left resumable, long prompt ids, and a cell run by another live process waited for."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
FAST = ["run.seeds=[0]", "generation.num_inference_steps=2", "run.progress=false"]


def _cli(cwd: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


def test_an_unwritable_results_folder_and_a_seed_out_of_range_stop_at_the_door(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = _cli(tmp_path, "benchmark.n=1", "results.root=a-file/results", *FAST)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("t2ibench: error: the results folder (results.root)")
    assert "a-file/results" in result.stderr and not list(tmp_path.rglob("*.png"))  # before any image
    result = _cli(tmp_path, "run.seeds=[99999999999999999999]")
    assert result.returncode == 2 and "outside the range a torch generator takes" in result.stderr
    assert "Traceback" not in result.stderr


def test_os_errors_anywhere_are_one_line_naming_the_path():
    from t2ibench.cli import os_error_message

    err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "outputs/runs/x/images/a/0.png")
    assert os_error_message(err) == (
        "No space left on device: outputs/runs/x/images/a/0.png (nothing half-written is kept; run again to resume)"
    )


def test_a_prompt_id_too_long_for_a_file_name_gets_a_stable_short_folder(tmp_path):
    long_id = "p" * 300
    prompts = tmp_path / "long.csv"
    prompts.write_text(f"id,prompt\n{long_id},a red cube\n")
    result = _cli(tmp_path, "benchmark=prompt_file", f"benchmark.path={prompts}", *FAST)
    assert result.returncode == 0, result.stderr[-2000:]
    store = next((tmp_path / "outputs" / "runs").glob("stand-ins/tiny/sd/*/*"))
    record = json.loads((store / "samples.jsonl").read_text())
    assert record["prompt"]["id"] == long_id  # the record keeps the id
    folder = Path(record["image"]).parent.name
    assert folder.startswith("p" * 64 + "~") and len(folder) == 64 + 1 + 16 and (store / record["image"]).is_file()


def test_sigterm_is_logged_and_the_cell_resumes(tmp_path):
    args = ["benchmark.n=4", "run.seeds=[0]", "generation.num_inference_steps=30", "run.progress=false"]
    process = subprocess.Popen(
        [sys.executable, "-m", "t2ibench.cli", *args],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(tmp_path.glob("outputs/runs/stand-ins/tiny/sd/tiny/*/cell.json")):
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143, output[-2000:]
    assert "terminated by SIGTERM" in output and "resumable" in output
    result = _cli(tmp_path, *args)
    assert result.returncode == 0 and "4 images" in result.stdout + result.stderr


def test_a_cell_run_by_another_live_process_is_waited_for(tmp_path):
    import fcntl

    assert _cli(tmp_path, "benchmark.n=1", *FAST).returncode == 0
    store = next(tmp_path.glob("outputs/runs/stand-ins/tiny/sd/tiny/*"))
    with open(store / ".cell.lock", "a+b") as lock:  # as a first job of the same cell would hold it
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        (store / ".cell.lock.holder").write_text("node-7 pid 4242\n")
        process = subprocess.Popen(
            [sys.executable, "-m", "t2ibench.cli", "benchmark.n=1", *FAST],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen = []
        for line in process.stdout:  # until it says whom it waits for
            seen.append(line)
            if "waiting for it to finish" in line:
                break
        assert "is being run by node-7 pid 4242: waiting for it to finish" in seen[-1], "".join(seen)[-2000:]
        assert process.poll() is None  # still waiting
        (store / ".cell.lock.holder").unlink()
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    assert "0 generated, 0 scored" in output
