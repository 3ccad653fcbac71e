"""End-to-end runs of the ``t2ibench`` console script (subprocesses, offline)."""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

from t2ibench.cli import conf_options

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
METHOD_NAMES = ", ".join(conf_options("method"))


def t2ibench(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


def test_unknown_names_exit_nonzero_with_one_line(tmp_path):
    for args, expected in (
        (["method=nope"], f"t2ibench: error: unknown method 'nope'; valid methods: {METHOD_NAMES}"),
        (
            ["-m", "method=sd,nope"],
            f"t2ibench: error: unknown method 'nope'; valid methods: {METHOD_NAMES}",
        ),
        (["benchmark=nope"], "t2ibench: error: unknown benchmark 'nope'; valid benchmarks: "),
        (
            ["evaluators=[clip_score,nope]"],
            f"t2ibench: error: unknown evaluator 'nope'; valid evaluators: {', '.join(conf_options('evaluator'))}",
        ),
        (["model=nope"], "t2ibench: error: unknown model 'nope'; valid models: "),
        (["+tiny=yes"], "t2ibench: error: unknown tiny 'yes'; valid tiny options: all"),
    ):
        result = t2ibench(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def test_errors_during_a_run_are_one_line(tmp_path):
    """Whichever stage raises it, a user error is one `t2ibench: error:` line and exit status 2 (no log prefix)."""
    prompts_dir = tmp_path / "prompts"
    prompts_dir.mkdir()
    (tmp_path / "open.csv").write_text('prompt,id\n"a cat,1\nb dog,2\n')
    for args, message in (
        (["run.batch_size=0"], "run.batch_size must be a positive integer"),  # the runner's checks
        (["benchmark=prompt_file", f"benchmark.path={prompts_dir}"], "is a directory; give a prompt file"),
        (["benchmark=prompt_file", f"benchmark.path={tmp_path}/open.csv"], "open.csv:2: a quoted field opened on"),
        (["method=syngen", "method.parser=en_core_web_trf"], "`python -m spacy download en_core_web_trf`"),
    ):
        result = t2ibench(*args, f"run.root={tmp_path}/runs", cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and errors[0].startswith("t2ibench: error: ") and message in errors[0], errors
        assert "Traceback" not in result.stderr + result.stdout and "[ERROR]" not in result.stderr + result.stdout


def test_help_lists_config_groups_and_options(tmp_path):
    result = t2ibench("--help", cwd=tmp_path)
    assert result.returncode == 0
    section = result.stdout.split("== Config groups ==")[1].split("== Config ==")[0]
    groups = {
        line.split(":")[0]: [o.strip() for o in line.split(":", 1)[1].split(",")]
        for line in section.splitlines()
        if ": " in line
    }
    assert set(groups) == {"benchmark", "evaluator", "method", "model", "experiment", "tiny"}
    for group, option in (
        ("benchmark", "tiny"),
        ("benchmark", "i2p"),
        ("benchmark", "rolebench"),
        ("evaluator", "clip_score"),
        ("method", "sd"),
        ("model", "sd14"),
        ("model", "tiny"),
        ("experiment", "smoke"),
        ("experiment", "rebind_role_collapse"),
        ("tiny", "all"),
    ):
        assert option in groups[group], (group, groups[group])


def test_default_run_twice_generates_nothing_new_and_tables_are_identical(tmp_path):
    first = t2ibench(cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    store = next((tmp_path / "outputs" / "runs" / "stand-ins" / "tiny" / "sd" / "tiny").iterdir())
    assert len(list(store.rglob("*.png"))) == 8
    assert (store / "samples.jsonl").read_text().count("\n") == 8 and (store / "scores" / "clip_score.csv").exists()
    results = tmp_path / "results" / "stand-ins" / "default"
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for name in ("table.md", "table.csv", "table.tex", "provenance.json"):
        (snapshot / name).write_bytes((results / name).read_bytes())
    mtimes = {p: p.stat().st_mtime_ns for p in store.rglob("*.png")}
    second = t2ibench(cwd=tmp_path)
    assert second.returncode == 0
    log = second.stderr + second.stdout
    assert "(0 generated, 0 scored)" in log, log[-2000:]
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*.png")} == mtimes
    for name in ("table.md", "table.csv", "table.tex", "provenance.json"):
        assert filecmp.cmp(snapshot / name, results / name, shallow=False), name


def test_multirun_runs_every_cell_into_one_table(tmp_path):
    result = t2ibench(
        "-m",
        "generation.guidance_scale=3.0,7.5",
        "benchmark.n=1",
        "generation.num_inference_steps=2",
        "experiment_name=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "results" / "stand-ins" / "sweep" / "table.csv").read_text().splitlines()
    assert len(table) == 3  # header + two cells
    assert len(list(Path(tmp_path / "outputs" / "runs" / "stand-ins" / "tiny" / "sd" / "tiny").iterdir())) == 2


def test_experiment_config(tmp_path):
    result = t2ibench("experiment=smoke", "generation.num_inference_steps=1", "benchmark.n=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    csv = (tmp_path / "results" / "stand-ins" / "smoke" / "table.csv").read_text()
    assert ",4," in csv.splitlines()[1]  # 2 prompts x seeds [0, 1]
