"""Benchmarks: datasets turned into lists of :class:`~t2ibench.prompt.Prompt` records, one module per benchmark.

Interface (:mod:`t2ibench.api.benchmark`)::

    from t2ibench.api import load_benchmark
    prompts = load_benchmark("tiny", n=2)          # -> list[Prompt]

A benchmark is a function ``loader(cfg) -> list[Prompt]`` registered by name with
``@BENCHMARKS.register("<name>", config_schema=MyConfig)`` (``from t2ibench.api import BENCHMARKS``) in one module of
this package; ``cfg`` is its schema's instance, and the schema is the group option ``benchmark=<name>``. ``load`` is
``load_benchmark``.
"""

from t2ibench.api.benchmark import COMMON_OPTIONS, load_benchmark, parse_shard
from t2ibench.api.registry import BENCHMARKS
from t2ibench.prompt import Prompt

load = load_benchmark

__all__ = ["BENCHMARKS", "COMMON_OPTIONS", "Prompt", "load", "load_benchmark", "parse_shard"]
