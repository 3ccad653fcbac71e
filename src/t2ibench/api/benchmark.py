"""The benchmark interface: a benchmark is a loader ``(cfg) -> list[Prompt]`` registered by name in ``BENCHMARKS``
with its options' schema (``@BENCHMARKS.register("<name>", config_schema=MyConfig)`` in one module), where ``cfg`` is
that schema's instance (every option at its type and default). Its module docstring documents the ``metadata`` keys
its prompts carry; evaluators rely on them. A loader that reads data files lists them as ``data_files=(...)`` in the
same decorator (:class:`t2ibench.data_files.DataFile`, with its embedded sample and its provenance), and its schema
extends :class:`FileBenchmarkConfig`.

:func:`load_benchmark` applies the options common to every benchmark after the loader:
    n: keep n prompts (None: all). With ``subset_seed`` None the first n in the benchmark's order, else a
       seeded random subset (kept in the benchmark's order), so ids stay stable across subsets.
    subset_seed: seed of the random subset (None: first n).
    shard: ``"i/k"`` keeps every k-th prompt starting at i (0-based), for splitting a sweep over jobs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from t2ibench.api.config import option, stand_in, typed
from t2ibench.api.registry import BENCHMARKS
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt

COMMON_OPTIONS = ("n", "subset_seed", "shard")


@dataclass
class BenchmarkConfig:
    """Keys every benchmark config has; each benchmark's schema (``loader.config_schema``) extends it."""

    name: str = "benchmark"
    label: str | None = option(None)  # the name in the run store and tables (default: the name)
    n: int | None = None  # keep the first n prompts (null: all)
    subset_seed: int | None = None  # with a seed, n is a seeded random subset (kept in benchmark order)
    shard: str | None = None  # "i/k": every k-th prompt from i, for splitting a sweep across jobs


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``"i/k"`` -> (i, k); None -> (0, 1)."""
    if shard in (None, "", "0/1"):
        return 0, 1
    try:
        index, count = (int(part) for part in str(shard).split("/"))
    except ValueError:
        raise T2IBenchError(f"benchmark.shard={shard!r} must look like 'i/k' (e.g. 0/4)") from None
    if count < 1 or not 0 <= index < count:
        raise T2IBenchError(f"benchmark.shard={shard!r}: need 0 <= i < k")
    return index, count


@dataclass
class FileBenchmarkConfig(BenchmarkConfig):
    """Keys of a benchmark that reads a data file (located, verified and cached by :mod:`t2ibench.data_files`)."""

    data_dir: str | None = (
        None  # a folder laid out like shared/datasets; null = $T2IBENCH_DATA_DIR, the cache, a download
    )
    verify_sha256: bool = True  # false accepts a file whose sha256 differs (its hash is recorded in each prompt)
    sample: bool = stand_in("benchmark_sample", False)  # true: the embedded sample of the first rows (tiny model)


def load_benchmark(name: str, **options: Any) -> list[Prompt]:
    """Prompts of benchmark ``name`` with ``options`` (a partial config: the rest are the schema's defaults; see the
    module docstring for the common options)."""
    loader = BENCHMARKS.get(name)
    cfg = typed(loader.config_schema, {**options, "name": name}, "benchmark")
    n, subset_seed, shard = cfg.n, cfg.subset_seed, cfg.shard
    prompts = list(loader(cfg))
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise T2IBenchError(f"benchmark '{name}' yields duplicate prompt ids: {', '.join(duplicated)}")
    if n is not None:
        if n < 0:
            raise T2IBenchError(f"benchmark.n must be >= 0, got {n}")
        if subset_seed is None:
            prompts = prompts[:n]
        else:
            keep = sorted(random.Random(subset_seed).sample(range(len(prompts)), min(n, len(prompts))))
            prompts = [prompts[i] for i in keep]
    index, count = parse_shard(shard)
    return prompts[index::count]
