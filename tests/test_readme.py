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
