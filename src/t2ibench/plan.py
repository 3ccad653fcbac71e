"""A cell's plan: the composed config checked once and turned into a typed, frozen :class:`CellPlan`.

Everything a cell needs is validated here, before any model is loaded: option types (``generation.guidance_scale=abc``
is one line), method, benchmark and evaluator names (through the registries), seeds, batch size, the benchmark's
prompts, the resolved generation config (nulls from ``model.generation_defaults``), the seeding, the labels, where
the cell's images and tables go, and whether it is a stand-in cell (:mod:`t2ibench.provenance`).

``method_by_benchmark`` (an experiment's per-benchmark method options, keyed by benchmark label and method name, e.g.
``{coco30k: {respodiff: {inference: random}}}``) and ``evaluators_by_benchmark`` are applied here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2ibench.api.config import as_dict, typed
from t2ibench.errors import T2IBenchError
from t2ibench.prompt import Prompt
from t2ibench.schema import GENERATION_KEYS, ResultsConfig, RunConfig


def resolve_generation(generation: Mapping[str, Any], defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """``generation.*`` with every null taken from the model's ``generation_defaults``."""
    defaults = dict(defaults or {})
    resolved = {}
    for key in GENERATION_KEYS:
        value = generation.get(key)
        resolved[key] = defaults.get(key) if value is None else value
    for key in ("num_inference_steps", "guidance_scale"):
        if resolved[key] is None:
            raise T2IBenchError(f"generation.{key} is not set and the model has no default for it")
    unknown = sorted(set(generation) - set(GENERATION_KEYS))
    if unknown:
        raise T2IBenchError(f"unknown generation options: {', '.join(unknown)}; valid: {', '.join(GENERATION_KEYS)}")
    return resolved


# (section, key, kind): the value checks beyond the schema's types (t2ibench.schema), before anything runs; they also
# check configs given as plain dicts (run_cell in scripts and tests). null = the default.
TYPED_OPTIONS = (
    ("generation", "num_inference_steps", "positive integer"),
    ("generation", "guidance_scale", "number"),
    ("generation", "height", "multiple of 8"),
    ("generation", "width", "multiple of 8"),
    ("benchmark", "n", "non-negative integer"),
    ("benchmark", "subset_seed", "integer"),
    ("run", "batch_size", "positive integer"),
    ("run", "images_per_prompt", "positive integer"),
)


def _type_ok(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "number":
        return isinstance(value, int | float) and value == value
    if not isinstance(value, int):
        return False
    return {
        "integer": True,
        "positive integer": value > 0,
        "non-negative integer": value >= 0,
        "multiple of 8": value > 0 and value % 8 == 0,
    }[kind]


def check_option_types(cfg: Mapping[str, Any]) -> None:
    """One-line errors for overrides of the wrong type (e.g. ``generation.guidance_scale=abc``)."""
    for section, key, kind in TYPED_OPTIONS:
        value = (cfg.get(section) or {}).get(key)
        if value is not None and not _type_ok(value, kind):
            raise T2IBenchError(f"{section}.{key} must be a {kind} (or null), got {value!r}")


def stand_in_of(model_cfg: Mapping[str, Any], evaluators: Sequence[Any]) -> dict[str, Any] | None:
    """What makes a cell a stand-in cell (the tiny model, stand-in evaluator backbones), or None for a real cell."""
    from t2ibench.models import model_identity, tiny_description

    identity = model_identity(model_cfg)
    found: dict[str, Any] = {}
    if identity.get("source") == "tiny":
        found["model"] = tiny_description(identity)
    roles = {e.name: e.stand_ins() for e in evaluators if e.stand_ins()}
    if roles:
        found["evaluators"] = roles
    return found or None


@dataclass(frozen=True)
class CellPlan:
    """One (model, method, benchmark[, shard]) cell, validated (see the module docstring)."""

    model: dict[str, Any]
    identity: dict[str, Any]
    method: dict[str, Any]
    generation: dict[str, Any]
    benchmark_name: str
    benchmark_options: dict[str, Any]
    prompts: tuple[Prompt, ...]
    seeding: dict[str, Any]
    seeds: tuple[int, ...]
    batch_size: int
    evaluators: dict[str, dict[str, Any]]
    labels: dict[str, str]
    shard: str | None
    stand_in: dict[str, Any] | None
    run_root: Path
    results_dir: Path
    published_dir: str | None
    experiment: str
    cache_dir: str | None
    progress: bool
    jpeg_quality: int | None
    # what selects the cell's images and scores beyond its labels and generation config: the benchmark's n and
    # subset_seed (the shard index is not: shards of one selection are one row), the seeds and the evaluators
    selection: dict[str, Any] = field(default_factory=dict)

    def make_method(self) -> Any:
        from t2ibench.api import METHODS

        return METHODS.get(self.method["name"])(self.method, self.generation)

    def make_evaluators(self) -> list[Any]:
        from t2ibench.api import EVALUATORS

        return [EVALUATORS.get(name)(cfg) for name, cfg in self.evaluators.items()]


def plan_cell(cfg: Mapping[str, Any]) -> CellPlan:
    """The :class:`CellPlan` of a composed config (``conf/config.yaml`` after overrides, resolved)."""
    from t2ibench.api import BENCHMARKS, EVALUATORS, METHODS, load_benchmark
    from t2ibench.api.benchmark import COMMON_OPTIONS, parse_shard
    from t2ibench.models import model_identity
    from t2ibench.provenance import STAND_IN_FOLDER
    from t2ibench.run_store import shard_label
    from t2ibench.seeding import parse_seeds, resolve_seeding

    check_option_types(cfg)
    model_cfg, bench_cfg = dict(cfg["model"]), dict(cfg["benchmark"])
    run = typed(RunConfig, cfg.get("run") or {}, "run")  # one place per default: the schema's
    run_cfg = as_dict(run)
    # each section at its schema's types and defaults, the defaults as the command line composes them for this run
    # (the tiny model's stand-ins and presets), so that a run built in Python gets the options the CLI would give it
    context = {"model": model_cfg, "run": run_cfg}
    bench_schema = BENCHMARKS.get(bench_cfg.get("name")).config_schema
    bench_cfg = as_dict(typed(bench_schema, bench_cfg, "benchmark", context))
    bench_name = bench_cfg.pop("name")
    bench_label = bench_cfg.pop("label", None) or bench_name
    method_cfg = dict(cfg["method"])
    per_method = dict((cfg.get("method_by_benchmark") or {}).get(bench_label) or {})
    method_cfg.update(per_method.get(method_cfg["name"]) or {})
    # every option at its type and default, dict and list options as given (they replace the defaults): what the
    # store key hashes and the records hold is what the method runs with
    method_cfg = as_dict(typed(METHODS.get(method_cfg["name"]).config_schema, method_cfg, "method", context))
    names = cfg.get("evaluators") or []
    by_benchmark = dict(cfg.get("evaluators_by_benchmark") or {})  # experiments mixing benchmarks (RespoDiff)
    if bench_label in by_benchmark:
        names = by_benchmark[bench_label]
    names = [names] if isinstance(names, str) else list(names)  # evaluators=clip_score means [clip_score]
    evaluator_cfgs = dict(cfg.get("evaluator") or {})
    evaluators = {}
    for name in names:
        schema = EVALUATORS.get(name).config_schema
        evaluators[name] = as_dict(typed(schema, evaluator_cfgs.get(name) or {}, f"evaluator.{name}", context))
    seeds = parse_seeds(run.seeds)
    batch_size = run.batch_size
    seeding = resolve_seeding(run_cfg, bench_cfg.pop("seeding", None))
    prompts = load_benchmark(bench_name, **bench_cfg)
    if not prompts:
        raise T2IBenchError(
            f"benchmark '{bench_name}' yields no prompts with {bench_cfg} (check benchmark.n and benchmark.shard)"
        )
    generation = resolve_generation(dict(cfg.get("generation") or {}), model_cfg.get("generation_defaults"))
    stand_in = stand_in_of(model_cfg, [EVALUATORS.get(n)(c) for n, c in evaluators.items()])
    run_root = Path(run.root)
    if stand_in and "model" in stand_in:
        run_root = run_root / STAND_IN_FOLDER  # images of the tiny model never sit beside a real model's
    results = typed(ResultsConfig, cfg.get("results") or {}, "results")
    results_root = Path(results.root)
    if stand_in:
        results_root = results_root / STAND_IN_FOLDER
    experiment = str(cfg.get("experiment_name", "default"))
    return CellPlan(
        model=model_cfg,
        identity=model_identity(model_cfg),
        method=method_cfg,
        generation=generation,
        benchmark_name=bench_name,
        benchmark_options={k: v for k, v in bench_cfg.items() if k not in COMMON_OPTIONS},
        prompts=tuple(prompts),
        seeding=seeding,
        seeds=tuple(seeds),
        batch_size=batch_size,
        evaluators=evaluators,
        labels={
            "model": model_cfg.get("name", "model"),
            "method": method_cfg.get("label") or method_cfg["name"],
            "benchmark": bench_label,
        },
        shard=shard_label(*parse_shard(bench_cfg.get("shard"))),
        stand_in=stand_in,
        run_root=run_root,
        results_dir=results_root / experiment,
        published_dir=results.published,
        experiment=experiment,
        cache_dir=run.cache_dir,
        progress=run.progress,
        jpeg_quality=run.jpeg_quality,
        selection={
            "n": bench_cfg.get("n"),
            "subset_seed": bench_cfg.get("subset_seed"),
            "seeds": sorted({int(k) for k in seeds}),
            "evaluators": sorted(evaluators),
        },
    )
