"""One schema per config: dataclasses whose fields are a plugin's (or the model's, generation's, run's) options,
with their official defaults, in one place.

Each plugin declares ``Config`` (a dataclass of :func:`option` fields) beside its code. From it:

* the Hydra config: :func:`register` stores the schema in Hydra's ConfigStore as the root config
  ``schema_<kind>_<name>``, typed (``method.max_train_steps=abc`` is refused before anything runs) and closed (an
  unknown key is refused); the plugin's YAML (``conf/<kind>/<name>.yaml``) starts from it with
  ``defaults: [/schema_<kind>_<name>@_here_, _self_]`` and holds only what a variant changes;
* direct use: :func:`official_defaults` fills a partial config with the official values (a method built in a test or
  a script gets the same defaults as the CLI);
* derived key lists: :func:`keys_with` (``runtime=True`` fields do not change numbers and stay out of score keys;
  ``training=True`` fields key a method's trained weights).

An option's value in the composed config may differ from its official default only through an interpolation the
schema spells out: :func:`stand_in` (``${oc.select:model.stand_ins.<key>,<default>}``: the tiny model's stand-in,
e.g. the small spaCy parser), :func:`tiny_preset` (``${tiny_preset:<official>,<tiny>}``: a small budget on the tiny
model only, see ``conf/__init__.py``) and :func:`follows` (e.g. ``${run.progress}``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

_NODE = "t2ibench_node"  # metadata key: the value (an interpolation) the option takes in the composed config


def option(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    node: str | None = None,
    **flags: bool,
) -> Any:
    """A schema field: its official ``default`` (or ``factory`` for lists, dicts and nested schemas), ``node``, the
    interpolation it takes in the composed config (see the module docstring), and flags read by :func:`keys_with`
    (``runtime=True``, ``training=True``, ...)."""
    metadata = {**flags, _NODE: node}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def stand_in(key: str, default: Any, **flags: bool) -> Any:
    """An option that takes the tiny model's stand-in ``model.stand_ins.<key>`` when there is one."""
    return option(default, node=f"${{oc.select:model.stand_ins.{key},{_literal(default)}}}", **flags)


def tiny_preset(official: Any, tiny: Any, **flags: bool) -> Any:
    """An option whose value is ``tiny`` on the tiny random model only (``${tiny_preset:...}``)."""
    return option(official, node=f"${{tiny_preset:{_literal(official)},{_literal(tiny)}}}", **flags)


def follows(path: str, default: Any, **flags: bool) -> Any:
    """An option that follows another key of the run's config (e.g. ``run.progress``)."""
    return option(default, node=f"${{{path}}}", **flags)


def _literal(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def official_defaults(schema: type) -> dict[str, Any]:
    """The official default of every field of ``schema`` (plain values, nested dataclasses as dicts)."""
    out = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def with_defaults(schema: type | None, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` over the official defaults of ``schema`` (nested dicts merged one level)."""
    if schema is None:
        return dict(cfg)
    merged = official_defaults(schema)
    for key, value in dict(cfg).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **dict(value)}
        else:
            merged[key] = value
    return merged


def keys_with(schema: type, flag: str) -> tuple[str, ...]:
    """The names of the fields of ``schema`` marked ``flag`` (``runtime`` or ``training``)."""
    return tuple(f.name for f in dataclasses.fields(schema) if f.metadata.get(flag))


def schema_node(schema: type) -> Any:
    """The typed OmegaConf node of ``schema``, each option at its composed-config value (interpolation or default),
    nested schemas included."""
    from omegaconf import OmegaConf

    node = OmegaConf.structured(schema)
    _apply_nodes(node, schema)
    return node


def _apply_nodes(node: Any, schema: type) -> None:
    for f in dataclasses.fields(schema):
        if f.metadata.get(_NODE):
            node[f.name] = f.metadata[_NODE]
        elif f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
            _apply_nodes(node[f.name], f.default_factory)


def register(kind: str, name: str, schema: type) -> str:
    """Store ``schema`` in Hydra's ConfigStore as the root config ``schema_<kind>_<name>``; returns that name."""
    from hydra.core.config_store import ConfigStore

    config_name = f"schema_{kind}_{name}"
    ConfigStore.instance().store(name=config_name, node=schema_node(schema))
    return config_name
