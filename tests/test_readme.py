"""README.md keeps the two set-up commands, and .ci/run runs README's test command verbatim."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    test_command = "HF_HUB_OFFLINE=1 python -m pytest -q"
    assert test_command in ci.splitlines()
    setup_lines = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(setup_lines) == 2
    main_job, tests = setup_lines
    assert "pip install torch==2.13.0" in main_job and main_job.endswith("HF_HUB_OFFLINE=1 t2ibench")
    assert "pip install torch==2.13.0" in tests and tests.endswith(test_command)
    assert "torch==2.13.0" in ci.split("-e '.[test]'")[0]  # torch is installed before the package


def test_configuration_table_lists_exactly_the_options_in_conf():
    """The README's configuration table names every option of every group, and no other (what `--help` lists)."""
    import re

    from t2ibench.cli import conf_options

    table = (REPO / "README.md").read_text().split("## Configuration")[1].split("Other keys:")[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`conf/"):
            rows[cells[0].strip("`")] = set(re.findall(r"`([a-z0-9_]+)`", cells[2]))
    assert set(rows) == {"model", "method", "benchmark", "evaluator", "experiment", "tiny"}
    other_words = {"n", "subset_seed", "shard", "evaluators", "save_pretrained"}  # options and words of the prose
    for group, names in rows.items():
        options = set(conf_options(group))
        assert options <= names, (group, "missing from the README", options - names)
        assert names - other_words <= options, (group, "not in conf/", names - other_words - options)
