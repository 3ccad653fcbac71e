"""Imports point down only (README "Layout and extension points", shared/DESIGN.md "Layers"):

    top       cli, runner, plan, report, tables, paper, fetch, data_cli, agreement_cli   (finds plugins through the registries)
    plugins   methods/, evaluators/, benchmarks/                            (one module each, plus _private helpers)
    backbones t2ibench.backbones                                            (shared cached model loaders)
    core      t2ibench.api, seeding, run_store, prompt, models, ...         (everything else under src/t2ibench)

Every ``import``/``from ... import`` statement is checked, including the lazy ones inside functions; imports under
``if TYPE_CHECKING:`` are types only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP = {"cli", "runner", "plan", "report", "tables", "paper", "fetch", "data_cli", "agreement_cli"}
PLUGINS = ("methods", "evaluators", "benchmarks")


def _module(root: Path, path: Path) -> str:
    """The dotted module name of a source file of the installed layout."""
    rel = path.relative_to(root)
    parts = list(rel.parts[1:]) if rel.parts[0] == "src" else ["t2ibench", *rel.parts]
    parts[-1] = parts[-1][: -len(".py")]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported t2ibench module) of every runtime import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("t2ibench"):
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "t2ibench"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("t2ibench")]
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in PLUGINS:
        return "plugin"
    if len(parts) > 1 and parts[1] == "backbones":
        return "backbones"
    if len(parts) > 1 and parts[1] in TOP:
        return "top"
    return "core"


def _sources(root: Path) -> list[Path]:
    files = list((root / "src" / "t2ibench").rglob("*.py"))
    for folder in PLUGINS:
        files += list((root / folder).glob("*.py"))
    return sorted(files)


def _violations(root: Path) -> list[str]:
    rank = {"core": 0, "backbones": 1, "plugin": 2, "top": 3}
    out = []
    for path in _sources(root):
        module = _module(root, path)
        layer = _layer(module)
        for line, target in _imports(path):
            where = f"{path.relative_to(root)}:{line} imports {target}"
            target_layer = _layer(target)
            if target_layer == "plugin" and layer != "plugin":
                out.append(f"{where}: below the plugins, nothing imports a plugin (use the registries)")
            elif target_layer == "top" and layer != "top":
                out.append(f"{where}: only the top layer imports the top layer")
            elif rank[target_layer] > rank[layer] and target_layer != "plugin":
                out.append(f"{where}: an upward import ({layer} -> {target_layer})")
            elif layer == "plugin" and target_layer == "plugin":
                own_package = module.split(".")[:2]
                target_parts = target.split(".")
                if target_parts[:2] != own_package:
                    out.append(f"{where}: a plugin imports another plugin package")
                elif len(target_parts) > 2 and not target_parts[2].startswith("_"):
                    out.append(f"{where}: a plugin imports a sibling plugin (share through a _private module)")
    return out


def test_imports_point_down_only():
    assert _violations(REPO) == []


def test_the_checker_reports_upward_and_sideways_edges(tmp_path):
    """The rule is not vacuous: each kind of bad edge in a small tree is reported, a good one is not."""
    files = {
        "src/t2ibench/seeding.py": "from t2ibench.methods import METHODS\n",  # core -> plugin
        "src/t2ibench/models.py": "from t2ibench.backbones import clip\n",  # core -> backbones
        "src/t2ibench/backbones/clip.py": "from t2ibench.evaluators._clip_score import rows\n",  # backbones -> plugin
        "methods/sd.py": "from t2ibench.methods.sepen import first_piece\n",  # sibling plugin
        "methods/sepen.py": "from t2ibench.evaluators._vqa_cache import vqa_scores\n",  # another plugin package
        "evaluators/vqascore.py": "def f():\n    from t2ibench.runner import run_cell\n",  # plugin -> top, lazily
        "evaluators/clip_score.py": "from t2ibench.evaluators._clip_score import rows\nfrom t2ibench.api import E\n",
        "src/t2ibench/runner.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from t2ibench.methods import M\n",
    }
    for rel, code in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(code)
    found = {line.split(":")[0] for line in _violations(tmp_path)}
    assert found == {
        "src/t2ibench/seeding.py",
        "src/t2ibench/models.py",
        "src/t2ibench/backbones/clip.py",
        "methods/sd.py",
        "methods/sepen.py",
        "evaluators/vqascore.py",
    }


def test_each_plugin_is_one_module():
    """What a new plugin touches: its module (registered by name); its schema is its group option, so the registries
    and the config groups agree with no YAML (tests/test_plugin_shape.py: no stub is left)."""
    from t2ibench.api import BENCHMARKS, EVALUATORS, METHODS
    from t2ibench.cli import conf_options

    assert EVALUATORS.names() == conf_options("evaluator")
    assert set(METHODS.names()) <= set(conf_options("method"))  # + variants: sepen_large, respodiff_race, ...
    assert set(BENCHMARKS.names()) == set(conf_options("benchmark"))
    config = (REPO / "conf" / "config.yaml").read_text()
    assert "evaluator@" not in config  # no per-evaluator line in the defaults list
