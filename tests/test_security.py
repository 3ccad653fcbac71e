"""Security checks over the source: no remote code unless configured, no unpickling of untrusted files, weights
from safetensors (``torch.load`` only with ``weights_only=True``), no ``allow_pickle``; plus the behaviour behind
them (the pickle refusal is exercised in test_fairness_safety_evaluators.py, HTML escaping in test_report.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("src", "methods", "evaluators", "benchmarks") for p in (REPO / folder).rglob("*.py"))


def _calls():
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                yield path, node


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def _keyword(node: ast.Call, name: str):
    return next((k.value for k in node.keywords if k.arg == name), None)


def test_sources_are_found():
    assert len(SOURCES) > 40 and any(p.name == "runner.py" for p in SOURCES)


def test_no_trust_remote_code_true():
    for path, node in _calls():
        value = _keyword(node, "trust_remote_code")
        if value is not None:
            assert isinstance(value, ast.Constant) and value.value is False, f"{path}:{node.lineno}"


def test_torch_load_only_with_weights_only():
    found = 0
    for path, node in _calls():
        if _name(node.func) == "torch.load":
            found += 1
            value = _keyword(node, "weights_only")
            assert isinstance(value, ast.Constant) and value.value is True, f"{path}:{node.lineno}"
    assert found >= 1  # the one .bin fallback of the CLIP-FlanT5 loader


@pytest.mark.parametrize("banned", ["pickle.load", "pickle.loads", "dill.load", "joblib.load", "yaml.load", "eval"])
def test_no_unpickling_or_eval(banned):
    for path, node in _calls():
        assert _name(node.func) != banned, f"{path}:{node.lineno} calls {banned}"


def test_numpy_loads_refuse_pickles():
    for path, node in _calls():
        if _name(node.func) in ("np.load", "numpy.load"):
            value = _keyword(node, "allow_pickle")
            assert isinstance(value, ast.Constant) and value.value is False, f"{path}:{node.lineno}"


def test_the_only_unpickler_allows_numpy_arrays_only():
    from t2ibench.evaluators.i2p_safety import _NumpyOnlyUnpickler

    unpicklers = [
        (path, node.name)
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and any("Unpickler" in ast.unparse(b) for b in node.bases)
    ]
    assert [name for _, name in unpicklers] == ["_NumpyOnlyUnpickler"]
    import pickle

    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        _NumpyOnlyUnpickler.find_class(_NumpyOnlyUnpickler.__new__(_NumpyOnlyUnpickler), "os", "system")


def test_pipelines_load_safetensors_only():
    text = (REPO / "src" / "t2ibench" / "models.py").read_text()
    assert '"use_safetensors": True' in text  # diffusers then refuses pickled .bin weights
