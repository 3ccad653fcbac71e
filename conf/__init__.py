"""t2ibench's Hydra config groups (``pkg://t2ibench.conf``), the resolver they use, and the evaluators' configs.

**Evaluator configs.** Every ``conf/evaluator/<name>.yaml`` is put under ``evaluator.<name>`` of every run by one
Hydra ConfigStore node, ``t2ibench_evaluators`` (in ``conf/config.yaml``'s defaults), built here from the folder: a new
evaluator is its module and its YAML, with no line to add anywhere else (``evaluators=[a,b]`` selects which run;
``tests/test_layers.py`` keeps the folder equal to the evaluator registry).

``${tiny_preset:OFFICIAL,TINY}`` is OFFICIAL unless the run's model is the tiny random stand-in
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


if not OmegaConf.has_resolver("tiny_preset"):
    OmegaConf.register_new_resolver("tiny_preset", tiny_preset)


def _register_evaluator_configs() -> None:
    from hydra.core.config_store import ConfigStore

    folder = resources.files(__name__).joinpath("evaluator")
    configs = {
        entry.name[: -len(".yaml")]: OmegaConf.create(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    }
    ConfigStore.instance().store(name="t2ibench_evaluators", node={"evaluator": configs})


_register_evaluator_configs()
