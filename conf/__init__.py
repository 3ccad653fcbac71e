"""t2ibench's Hydra config groups (``pkg://t2ibench.conf``) and the resolver they use.

``${tiny_preset:OFFICIAL,TINY}`` is OFFICIAL unless the run's model is the tiny random stand-in
(``model.source: tiny``), where it is TINY. Method YAMLs use it for the few schedule and training-budget values
that would make a tiny run take hours (e.g. RespoDiff's 5,000 training iterations), so the official values stay
the defaults on every real model. A command-line override of the key replaces the interpolation, so it always
wins. Each method with a preset records ``preset: official|tiny`` in its config (and in its trained weights'
``meta.json``).
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def tiny_preset(official: Any, tiny: Any, *, _root_: Any) -> Any:
    """``tiny`` when ``model.source`` is ``tiny``, else ``official`` (see the module docstring)."""
    return tiny if OmegaConf.select(_root_, "model.source", default=None) == "tiny" else official


if not OmegaConf.has_resolver("tiny_preset"):
    OmegaConf.register_new_resolver("tiny_preset", tiny_preset)
