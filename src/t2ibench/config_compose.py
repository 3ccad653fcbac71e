"""Composing t2ibench's Hydra config (``conf/config.yaml`` and its groups) outside a Hydra run: ``t2ibench --help``,
``t2ibench-fetch`` and ``t2ibench-data`` compose it with the same config module, version base and root config as
``t2ibench`` itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

CONFIG_MODULE = "t2ibench.conf"
CONFIG_NAME = "config"
VERSION_BASE = "1.3"


@contextmanager
def config_composer() -> Iterator[Callable[..., Any]]:
    """``with config_composer() as compose:``, then ``compose(overrides, with_hydra=False)`` returns the composed
    ``DictConfig`` (with the ``hydra`` node when ``with_hydra``); many compositions share one Hydra initialisation."""
    from hydra import compose, initialize_config_module

    def composed(overrides: Sequence[str] = (), with_hydra: bool = False) -> Any:
        cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=with_hydra)
        replace_containers(cfg, overrides)  # dict options replace their default, as in a run
        return cfg

    with initialize_config_module(config_module=CONFIG_MODULE, version_base=VERSION_BASE):
        yield composed


def compose_config(overrides: Sequence[str] = (), with_hydra: bool = False) -> Any:
    """The config composed with ``overrides`` (one Hydra initialisation)."""
    with config_composer() as compose:
        return compose(overrides, with_hydra)


def replace_containers(cfg: Any, overrides: Sequence[str]) -> None:
    """Apply the dict values among ``overrides`` (``'method.thresholds={1:0.3}'``, ``'method.thresholds={}'``) by
    replacing the option's value, not merging into it: Hydra merges a dict given on the command line into the
    default, while a dict option means what it holds (the official Attend-and-Excite code replaces its thresholds, and
    ``{}`` means no refinement). Lists already replace. Called on every composed config (a run, a sweep's cell,
    ``--cfg job``, ``--help``); the Python API follows the same rule (:func:`t2ibench.api.config.typed`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if "=" in o and not o.startswith("-")])
    for override in parsed:
        key = override.key_or_group
        if override.is_delete() or override.is_sweep_override() or override.package is not None or "/" in key:
            continue
        value = override.value()
        if isinstance(value, dict) and OmegaConf.is_dict(OmegaConf.select(cfg, key, default=None)):
            with open_dict(cfg):
                OmegaConf.update(cfg, key, value, merge=False)
