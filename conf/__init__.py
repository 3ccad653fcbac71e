"""t2ibench's Hydra config groups (``pkg://t2ibench.conf``), the schemas they start from, the resolver they use,
and the evaluators' configs.

**Schemas are the group options.** Every plugin's options are a dataclass beside its code (``config_schema``;
:mod:`t2ibench.api.config`), and the run's own sections are :mod:`t2ibench.schema`'s. Importing this package stores
each plugin's schema in Hydra's ConfigStore as the option ``<name>`` of its group (``method=sepen``,
``benchmark=abc6k``: no YAML), and every schema as the root config ``schema_<kind>_<name>``; plugins of other
packages (entry points, :mod:`t2ibench.api.registry`) are stored the same way. YAML stays where it says something: a
variant (``conf/method/sepen_large.yaml``: ``defaults: [sepen, _self_]`` and what it changes), an experiment, a model.

**Evaluator configs.** Every registered evaluator's options are put under ``evaluator.<name>`` of every run by one
Hydra ConfigStore node, ``t2ibench_evaluators`` (in ``conf/config.yaml``'s defaults), built here from the registry
(a ``conf/evaluator/<name>.yaml``, if one is there, is applied on top): a new evaluator is its module, with no line to
add anywhere else (``evaluators=[a,b]`` selects which run).

``${t2ibench_data:RELPATH}`` is where a data file or folder lives (an experiment's ``method.image_dir`` of released
images). ``${tiny_preset:OFFICIAL,TINY}`` is OFFICIAL unless the run's model is the tiny random stand-in
(``model.source: tiny``), where it is TINY. Method YAMLs use it for the few schedule and training-budget values
that would make a tiny run take hours (e.g. RespoDiff's 5,000 training iterations), so the official values stay
the defaults on every real model. A command-line override of the key replaces the interpolation, so it always
wins. Each method with a preset records ``preset: official|tiny`` in its config (and in its trained weights'
``meta.json``).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from omegaconf import OmegaConf


def tiny_preset(official: Any, tiny: Any, *, _root_: Any) -> Any:
    """``tiny`` when ``model.source`` is ``tiny``, else ``official`` (see the module docstring)."""
    return tiny if OmegaConf.select(_root_, "model.source", default=None) == "tiny" else official


def vqa_checkpoint(name: str) -> str:
    """The hub checkpoint of a VQA family (``${vqa_checkpoint:clip-flant5}`` is ``zhiqiulin/clip-flant5-xxl``): a VQA
    config's null model, resolved once when the config is built, so the id that will load is in the config."""
    from t2ibench.backbones.chat_vlm import family

    return family(name or "clip-flant5").hub_default


def t2ibench_data(relpath: str) -> str:
    """``${t2ibench_data:genai_bench/images_1600/DALLE_3}``: where that data file or folder is (the data dir when it is
    there, else the cache that ``t2ibench-data fetch`` fills); see :func:`t2ibench.data_files.data_path`."""
    from t2ibench.data_files import data_path

    return str(data_path(relpath))


if not OmegaConf.has_resolver("t2ibench_data"):
    OmegaConf.register_new_resolver("t2ibench_data", t2ibench_data)
if not OmegaConf.has_resolver("tiny_preset"):
    OmegaConf.register_new_resolver("tiny_preset", tiny_preset)
if not OmegaConf.has_resolver("vqa_checkpoint"):
    OmegaConf.register_new_resolver("vqa_checkpoint", vqa_checkpoint)


def _register_schemas() -> None:
    from t2ibench import schema
    from t2ibench.api import BENCHMARKS, EVALUATORS, METHODS
    from t2ibench.api.config import register

    schema.register()
    for kind, registry in (("method", METHODS), ("evaluator", EVALUATORS), ("benchmark", BENCHMARKS)):
        for name in registry.names():
            register(kind, name, registry.get(name).config_schema, group=kind != "evaluator")


def _register_evaluator_configs() -> None:
    from hydra.core.config_store import ConfigStore

    from t2ibench.api import EVALUATORS
    from t2ibench.api.config import schema_node

    folder = resources.files(__name__).joinpath("evaluator")
    configs = {}
    for name in EVALUATORS.names():
        entry = folder.joinpath(f"{name}.yaml")
        values = OmegaConf.create(entry.read_text(encoding="utf-8")) if entry.is_file() else None
        values = values or OmegaConf.create({})
        values.pop("defaults", None)  # the YAML starts from the schema; what it sets on top is kept
        configs[name] = OmegaConf.merge(schema_node(EVALUATORS.get(name).config_schema), values)
    ConfigStore.instance().store(name="t2ibench_evaluators", node={"evaluator": configs})


_register_schemas()
_register_evaluator_configs()
