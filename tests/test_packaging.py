"""The installed package has every module of the source tree: setuptools installs only the packages that
pyproject.toml lists, so a subpackage missing there works in an editable install and breaks in a wheel (as
``t2ibench.api`` and ``t2ibench.backbones`` once did)."""

from __future__ import annotations

from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_every_source_package_and_data_folder_is_listed_in_pyproject():
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    found = set()
    for name, folder in tool["package-dir"].items():
        root = REPO / folder
        for path in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
            if "__pycache__" in path.parts:
                continue
            has_code = (path / "__init__.py").exists()
            has_data = any(path.glob("*.yaml"))
            if has_code or (has_data and path != root):
                found.add(".".join([name, *path.relative_to(root).parts]))
    missing = sorted(found - listed)
    assert not missing, f"add to [tool.setuptools].packages in pyproject.toml: {missing}"
    assert {"t2ibench.api", "t2ibench.backbones"} <= listed
