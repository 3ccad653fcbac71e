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
        return compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=with_hydra)

    with initialize_config_module(config_module=CONFIG_MODULE, version_base=VERSION_BASE):
        yield composed


def compose_config(overrides: Sequence[str] = (), with_hydra: bool = False) -> Any:
    """The config composed with ``overrides`` (one Hydra initialisation)."""
    with config_composer() as compose:
        return compose(overrides, with_hydra)
