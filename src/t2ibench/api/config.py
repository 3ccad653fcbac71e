"""One schema per config: dataclasses whose fields are a plugin's (or the model's, generation's, run's) options,
with their official defaults, in one place.

Each plugin declares ``Config`` (a dataclass of :func:`option` fields) beside its code. From it:

* the Hydra config: :func:`register` stores the schema in Hydra's ConfigStore as the option ``<name>`` of its group
  (``method=sepen``: no YAML) and as the root config ``schema_<kind>_<name>``, typed (``method.max_train_steps=abc``
  is refused before anything runs) and closed (an unknown key is refused); a variant's YAML starts from the option
  (``defaults: [sepen, _self_]``) and holds only what it changes;
* the plugin's own options: :func:`typed` turns a (partial) mapping into the schema's instance, every option at its
  type and default, dict and list options replacing their defaults; with the run's config as context, the defaults
  are those the command line composes (stand-ins, tiny presets), so a run built in Python gets the CLI's options;
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


def stand_in(key: str, default: Any, otherwise: str | None = None, **flags: bool) -> Any:
    """An option that takes the tiny model's stand-in ``model.stand_ins.<key>`` when there is one (``key``: a field
    of :class:`t2ibench.stand_ins.StandIns`), else ``default`` or, in the composed config, ``otherwise`` (an
    interpolation that resolves the default when the config is built, e.g. ``${vqa_checkpoint:${.family}}``: the
    checkpoint that will load shows in ``--cfg job --resolve`` and in the records)."""
    from t2ibench.stand_ins import STAND_IN_KEYS

    if key not in STAND_IN_KEYS:
        raise ValueError(f"stand_in({key!r}): no such stand-in; valid: {', '.join(STAND_IN_KEYS)}")
    fallback = otherwise if otherwise is not None else _literal(default)  # an interpolation the config shows resolved
    return option(default, node=f"${{oc.select:model.stand_ins.{key},{fallback}}}", **flags)


def tiny_preset(official: Any, tiny: Any, **flags: bool) -> Any:
    """An option whose value is ``tiny`` on the tiny random model only (``${tiny_preset:...}``)."""
    return option(official, node=f"${{tiny_preset:{_literal(official)},{_literal(tiny)}}}", **flags)


def follows(path: str, default: Any, **flags: bool) -> Any:
    """An option that follows another key of the run's config (e.g. ``run.progress``)."""
    return option(default, node=f"${{{path}}}", **flags)


def _literal(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _nested_schema(f: dataclasses.Field) -> type | None:
    factory = f.default_factory
    if factory is not dataclasses.MISSING and isinstance(factory, type) and dataclasses.is_dataclass(factory):
        return factory
    return None


def typed(schema: type, cfg: Mapping[str, Any] | Any, where: str = "", context: Mapping[str, Any] | None = None) -> Any:
    """An instance of ``schema``: ``cfg`` (a mapping, possibly partial, or already an instance) over the schema's
    defaults, every value checked and converted to its field's type (``"3"`` for an ``int`` is 3, ``2`` for a
    ``float`` is 2.0).

    The defaults are the official ones; with ``context`` (the run's config: its ``model`` and ``run`` sections) they
    are what the command line composes for that run: the tiny model's stand-ins and presets (:func:`stand_in`,
    :func:`tiny_preset`) and the options that follow another key (:func:`follows`). So a run built in Python gets the
    same options as the same run from the command line.

    The one rule for values: a nested schema merges (``{"vqa": {"model": ...}}`` keeps the other ``vqa`` options), a
    dict or list option **replaces** its default (``thresholds={}`` is the empty dict, as the official code reads
    it). An unknown key or a value of the wrong type is a :class:`~t2ibench.errors.T2IBenchError` naming
    ``where`` (``method``, ``evaluator.clip_score``, ...), the key and the valid keys."""
    from omegaconf import OmegaConf

    if isinstance(cfg, schema):
        return cfg
    if context is None:
        node = OmegaConf.structured(schema, flags={"allow_objects": True})
    else:
        sections = {key: context[key] for key in ("model", "run") if isinstance(context.get(key), Mapping)}
        root = OmegaConf.create(sections, flags={"allow_objects": True})
        root["_options"] = schema_node(schema)
        node = root._get_node("_options")
    _fill(node, schema, cfg, where)
    return OmegaConf.to_object(node)


def _fill(node: Any, schema: type, cfg: Mapping[str, Any] | Any, where: str) -> None:
    from omegaconf.errors import OmegaConfBaseException

    from t2ibench.errors import T2IBenchError

    if dataclasses.is_dataclass(cfg):
        cfg = as_dict(cfg)
    if cfg is not None and not isinstance(cfg, Mapping):  # a DictConfig is a Mapping
        raise T2IBenchError(f"{where or 'options'} must be a mapping of option names to values, got {cfg!r}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    prefix = f"{where}." if where else ""
    for key, value in dict(cfg or {}).items():
        f = fields.get(str(key))
        if f is None:
            raise T2IBenchError(f"unknown option {prefix}{key}; valid: {', '.join(fields)}")
        nested = _nested_schema(f)
        try:
            if nested is not None and (isinstance(value, Mapping) or dataclasses.is_dataclass(value)):
                _fill(node[f.name], nested, value, f"{prefix}{key}")
            else:
                node[f.name] = _int_keys(_plain(value), f.type)
        except OmegaConfBaseException as err:
            message = str(err).splitlines()[0]
            raise T2IBenchError(f"{prefix}{key}={value!r}: {message}") from None


def _int_keys(value: Any, annotation: Any) -> Any:
    """A dict for an int-keyed option with its keys as ints (``{"0": 0.05}``, as JSON writes it, is ``{0: 0.05}``)."""
    if isinstance(value, Mapping) and str(annotation).replace(" ", "").startswith("dict[int,"):
        try:
            return {int(k) if isinstance(k, str) else k: v for k, v in value.items()}
        except ValueError:
            return value  # not integers: the schema's check names the key
    return value


def _plain(value: Any) -> Any:
    """``value`` with OmegaConf containers as plain dicts and lists (so an assignment replaces, never merges)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def as_dict(value: Any) -> Any:
    """A schema instance (or a structure of them) as plain dicts and lists, the values themselves kept (no copies:
    an injected module stays the same object)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_dict(v) for v in value]
    return value


def dict_and_list_keys(schema: type, prefix: str = "") -> list[str]:
    """The dotted names of the dict- and list-valued options of ``schema`` (nested schemas included): the options
    whose value replaces the default when set."""
    out = []
    for f in dataclasses.fields(schema):
        nested = _nested_schema(f)
        if nested is not None:
            out += dict_and_list_keys(nested, f"{prefix}{f.name}.")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, dict | list) or _container_annotation(f.type):
            out.append(f"{prefix}{f.name}")
    return out


def _container_annotation(annotation: Any) -> bool:
    text = str(annotation).replace("typing.", "")
    return text.startswith(("dict", "list", "Dict", "List")) or " dict[" in text or "| dict" in text


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
    from omegaconf import DictConfig, OmegaConf

    for f in dataclasses.fields(schema):
        if f.metadata.get(_NODE):
            node[f.name] = f.metadata[_NODE]
        elif _nested_schema(f) is not None:
            _apply_nodes(node[f.name], f.default_factory)
        elif isinstance(node._get_node(f.name), DictConfig):
            # a dict option's keys are data, not schema: the command line may set any (the value then replaces the
            # default whole, see t2ibench.cli.replace_containers)
            OmegaConf.set_struct(node._get_node(f.name), False)


def register(kind: str, name: str, schema: type, group: bool = False) -> str:
    """Store ``schema`` in Hydra's ConfigStore as the root config ``schema_<kind>_<name>`` and, with ``group``, as
    the option ``<name>`` of the config group ``<kind>`` (so ``method=sepen`` needs no YAML); returns the root name."""
    from hydra.core.config_store import ConfigStore

    config_name = f"schema_{kind}_{name}"
    node = schema_node(schema)
    ConfigStore.instance().store(name=config_name, node=node)
    if group:
        ConfigStore.instance().store(group=kind, name=name, node=node)
    return config_name
