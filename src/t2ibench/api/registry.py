"""Registries by name: ``conf/<group>/<name>.yaml`` and the Python implementation share one name.

A registry discovers its implementations by importing every public module of its plugin package (by name, on
first lookup), so adding a method, benchmark or evaluator touches one module and one YAML, and the core never
imports a plugin. Modules must import heavy or optional packages lazily (inside functions), so discovery never
fails for a missing extra.

``METHODS``, ``EVALUATORS`` and ``BENCHMARKS`` are the three registries; plugins register with
``@METHODS.register("name")`` (``from t2ibench.api import METHODS``), the runner looks them up by name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from t2ibench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to implementations (classes or functions) of one kind."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("sd")`` on a class or function."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def _discover(self) -> None:
        if self._discovered:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        self._discovered = True

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
