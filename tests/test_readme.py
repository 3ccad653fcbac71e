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
    """The README's configuration table names every YAML option of the groups that are folders, and no other; the
    plugin groups point to `t2ibench list` (read from the registries) instead of a hand-kept list."""
    import re

    from t2ibench.api import METHODS
    from t2ibench.cli import conf_options

    table = (REPO / "README.md").read_text().split("## Configuration")[1].split("Other keys:")[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells, set(re.findall(r"`([a-z0-9_]+)`", cells[2])))
    assert set(rows) == {"model", "method", "benchmark", "evaluator", "experiment", "tiny"}
    other_words = {"n", "subset_seed", "shard", "evaluators", "save_pretrained"}  # options and words of the prose
    for group in ("model", "experiment", "tiny"):
        names = rows[group][1]
        options = set(conf_options(group))
        assert options <= names, (group, "missing from the README", options - names)
        assert names - other_words <= options, (group, "not in conf/", names - other_words - options)
    for group in ("method", "benchmark", "evaluator"):
        cells = rows[group][0]
        assert "the registry" in cells[1] and "`t2ibench list`" in cells[2], group
    variants = set(conf_options("method")) - set(METHODS.names())
    assert variants == rows["method"][1] - other_words, "the method variants of conf/method/"
