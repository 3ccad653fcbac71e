"""t2ibench's core API, what every plugin builds on (lm-evaluation-harness keeps the same in ``api/``).

* :class:`Method` (:mod:`t2ibench.api.method`), :class:`Evaluator` (:mod:`t2ibench.api.evaluator`) and the benchmark
  loader contract (:mod:`t2ibench.api.benchmark`);
* the registries ``METHODS``, ``EVALUATORS``, ``BENCHMARKS`` (:mod:`t2ibench.api.registry`), through which the
  runner finds plugins by name (it never imports a plugin);
* :class:`MetricSpec` and :class:`Cell` (what an evaluator's table metrics mean), :class:`Requirements` (what a
  plugin downloads), :class:`Prompt`, :class:`T2IBenchError`.

Layers (imports point down only; ``tests/test_layers.py`` checks it): the top (cli, runner, report, tables, paper,
fetch, data_cli) -> plugins (``methods/``, ``evaluators/``, ``benchmarks/``: import the layers below and their own
``_private`` modules) -> ``t2ibench.backbones`` (shared cached model loaders) -> the core (this package,
``seeding``, ``run_store``, ``prompt``, ``hashing``, ``errors``, ...).
"""

from t2ibench.api.benchmark import COMMON_OPTIONS, load_benchmark, parse_shard
from t2ibench.api.evaluator import Evaluator
from t2ibench.api.method import Method, apply_scheduler, padded_ids
from t2ibench.api.registry import BENCHMARKS, EVALUATORS, METHODS, Registry
from t2ibench.api.requirements import Requirements
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt
from t2ibench.stats import Cell, MetricSpec

__all__ = [
    "BENCHMARKS",
    "COMMON_OPTIONS",
    "EVALUATORS",
    "METHODS",
    "Cell",
    "Evaluator",
    "Method",
    "MetricSpec",
    "Prompt",
    "Registry",
    "Requirements",
    "T2IBenchError",
    "apply_scheduler",
    "load_benchmark",
    "padded_ids",
    "parse_shard",
]
