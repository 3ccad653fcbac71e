"""Registries by name: the name a plugin registers is its option in its config group (``method=<name>``).

A registry discovers its implementations, on first lookup, by importing every public module of its plugin package
and every module that an installed package declares under the entry-point group ``t2ibench.<kind>s``
(``t2ibench.methods``, ``t2ibench.evaluators``, ``t2ibench.benchmarks``), so adding a method, benchmark or evaluator
is one module, in this repository or in your own package, and the core never imports a plugin by name. Modules must
import heavy or optional packages lazily (inside functions), so discovery never fails for a missing extra; a plugin
package that fails to import is reported in one warning line and the others are still found.

``METHODS``, ``EVALUATORS`` and ``BENCHMARKS`` are the three registries; plugins register with
``@METHODS.register("name")`` (``from t2ibench.api import METHODS``), the runner looks them up by name.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from importlib import metadata
from typing import Any, Generic, TypeVar

from t2ibench.errors import UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """Maps names to implementations (classes or functions) of one kind."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str, **attributes: Any) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("sd")`` on a class or function; ``attributes`` are set on it (a benchmark
        loader's ``config_schema`` and ``data_files``)."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                where = getattr(self._entries[name], "__module__", "?")
                raise ValueError(
                    f"{self.kind} '{name}' is registered twice ({where} and {getattr(obj, '__module__', '?')})"
                )
            for key, value in attributes.items():
                setattr(obj, key, value)
            self._entries[name] = obj
            return obj

        return decorator

    @property
    def entry_point_group(self) -> str:
        """Where other packages declare plugins of this kind (``[project.entry-points."t2ibench.methods"]``)."""
        return f"t2ibench.{self.kind}s"

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        for entry in metadata.entry_points(group=self.entry_point_group):
            try:
                entry.load()  # importing the module registers its plugins (@METHODS.register(...))
            except Exception as err:  # noqa: BLE001 - one broken plugin package must not hide the others
                dist = getattr(entry.dist, "name", "?")
                log.warning(
                    "%s plugin %s = %s (package %s) not loaded: %s", self.kind, entry.name, entry.value, dist, err
                )

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._discover()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The implementation registered as ``name``; an :class:`UnknownNameError` lists the valid ones."""
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None


METHODS: Registry = Registry("method", "t2ibench.methods")
EVALUATORS: Registry = Registry("evaluator", "t2ibench.evaluators")
BENCHMARKS: Registry = Registry("benchmark", "t2ibench.benchmarks")
