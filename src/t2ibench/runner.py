"""One cell of a sweep, end to end: prompts -> images -> run store -> scores -> tables.

:func:`run_cell` takes the composed Hydra config (see ``conf/config.yaml``) and:

1. loads the benchmark's prompts (``benchmark.*`` options, including ``n`` and ``shard``);
2. resolves the generation config (``generation.*``; nulls come from ``model.generation_defaults``) and
   opens the cell's run store under ``run.root``;
3. cuts the (prompt, seed) items into batches by the fixed rule of :func:`~t2ibench.methods.base.make_batches`
   and generates only the batches that have a missing image; the model is loaded (once per process) only
   when something is missing, and ``method.prepare`` runs before the first batch;
4. scores the cell's images with each evaluator in ``evaluators`` (cached rows are reused);
5. writes the cell record and rebuilds the tables of ``results/<experiment_name>/``.

A *stand-in* cell (the tiny random model, or an evaluator whose backbone is a tiny stand-in; see
:mod:`t2ibench.provenance`) keeps its images under ``<run.root>/stand-ins/`` (tiny model only) and its tables under
``<results.root>/stand-ins/<experiment_name>/``, apart from every real cell.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2ibench.errors import T2IBenchError
from t2ibench.stats import fmt_number

log = logging.getLogger("t2ibench")

GENERATION_KEYS = ("scheduler", "num_inference_steps", "guidance_scale", "height", "width", "negative_prompt")


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


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise T2IBenchError(f"{name} must be an integer, got {value!r}") from None
    if number < 1 or str(value).strip() != str(number):
        raise T2IBenchError(f"{name} must be a positive integer, got {value!r}")
    return number


SEED_SOURCES = ("auto", "config", "dataset")


def resolve_seeding(run_cfg: Mapping[str, Any], seeding: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where image seeds come from: ``config`` (``run.seeds``, one image per seed) or ``dataset`` (each prompt's
    ``metadata.dataset_seed``, ``images_per_prompt`` images as one seed stream). ``run.seed_source=auto``
    takes the benchmark's ``seeding`` (e.g. I2P's official 10 images from the row's seed), else ``config``."""
    source = run_cfg.get("seed_source", "auto") or "auto"
    if source not in SEED_SOURCES:
        raise T2IBenchError(f"run.seed_source={source!r}; valid: {', '.join(SEED_SOURCES)}")
    seeding = dict(seeding or {})
    if source == "auto":
        source = seeding.get("source", "config")
    if source == "config":
        return {"source": "config"}
    count = run_cfg.get("images_per_prompt") or seeding.get("images_per_prompt") or 1
    return {"source": "dataset", "images_per_prompt": _positive_int(count, "run.images_per_prompt")}


def make_items(prompts: list[Any], seeds: list[int], seeding: Mapping[str, Any]) -> list[tuple[Any, int, Any]]:
    """(prompt, store key, noise seed) per image, in the fixed order: prompts in benchmark order, images inner."""
    from t2ibench.methods.base import ImageSeed

    if seeding["source"] == "config":
        return [(p, s, s) for p in prompts for s in seeds]
    count = seeding["images_per_prompt"]
    items = []
    for prompt in prompts:
        if "dataset_seed" not in prompt.metadata:
            raise T2IBenchError(
                f"prompt {prompt.id} has no metadata.dataset_seed; use run.seed_source=config with run.seeds"
            )
        base = int(prompt.metadata["dataset_seed"])
        items += [(prompt, k, ImageSeed(base, k, count)) for k in range(count)]
    return items


def _seeds(value: Any) -> list[int]:
    values = value if isinstance(value, list | tuple) else [value]
    try:
        seeds = [int(s) for s in values]
    except (TypeError, ValueError):
        raise T2IBenchError(f"run.seeds must be a list of integers, got {value!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise T2IBenchError(f"run.seeds must be a non-empty list of distinct integers, got {value!r}")
    return seeds


# (section, key, kind): options that must have a type before anything runs (null = the default)
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


def warn_truncated_prompts(pipe: Any, prompts: list[Any]) -> int:
    """Log one warning naming the prompts the text encoder cuts (beyond the tokenizer's 77 positions for CLIP),
    with the words that are lost; returns how many prompts are cut."""
    tokenizer = getattr(pipe, "tokenizer", None)
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if tokenizer is None or not 0 < limit < 100_000:
        return 0
    cut = []
    for prompt in prompts:
        ids = tokenizer(prompt.text, truncation=False, verbose=False).input_ids  # the warning below says it once
        if len(ids) > limit:
            lost = tokenizer.decode(ids[limit - 1 : -1], skip_special_tokens=True)
            cut.append((prompt.id, lost))
    if cut:
        log.warning(
            "%d prompt(s) are longer than the text encoder's %d tokens and are truncated, as the pipeline does; "
            "e.g. %s loses %r",
            len(cut),
            limit,
            cut[0][0],
            cut[0][1][:120],
        )
    return len(cut)


class _NaNGuard:
    """A forward pre-hook on the VAE decoder that refuses non-finite latents (before they become black images)."""

    def __init__(self, pipe: Any):
        vae = getattr(pipe, "vae", None)
        self.handle = None
        if vae is not None and hasattr(vae, "decoder"):
            self.handle = vae.decoder.register_forward_pre_hook(self._check)

    @staticmethod
    def _check(module: Any, args: tuple) -> None:
        import torch

        latents = args[0] if args else None
        if isinstance(latents, torch.Tensor) and not torch.isfinite(latents).all():
            bad = int((~torch.isfinite(latents)).flatten(1).any(1).sum())
            raise T2IBenchError(
                f"non-finite (NaN/inf) latents in {bad} of {latents.shape[0]} image(s) of this batch; nothing of it was "
                "written. Usually an fp16 overflow: try model.dtype=float32 (or bfloat16), or a smaller guidance scale"
            )

    def __enter__(self) -> _NaNGuard:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.remove()


def nan_guard(pipe: Any) -> _NaNGuard:
    """``with nan_guard(pipe):`` generation stops with a clear error on NaN/inf latents."""
    return _NaNGuard(pipe)


def _is_oom(err: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(err, oom)) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def generate_with_oom_retry(method: Any, pipe: Any, batch: list[Any], write: Any, device: str = "") -> None:
    """Generate ``batch`` and ``write(batch, images)``; on out-of-memory, retry as two halves (recursively), then
    a clear error at batch size 1. Each image records the batch size it was made in (halved batches give images
    equal to the configured batch's to a few uint8 levels)."""
    import gc

    import torch

    try:
        images = method.generate(pipe, [p for p, _, _ in batch], [noise for _, _, noise in batch])
    except Exception as err:  # noqa: BLE001 - only out-of-memory errors are handled, the rest re-raised
        if not _is_oom(err):
            raise
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(batch) == 1:
            raise T2IBenchError(
                f"out of memory at batch size 1 on {device or 'the device'}; use a smaller image size, "
                "model.dtype=float16, or a device with more memory"
            ) from None
        half = len(batch) // 2
        log.warning("out of memory at batch size %d; retrying as %d + %d", len(batch), half, len(batch) - half)
        generate_with_oom_retry(method, pipe, batch[:half], write, device)
        generate_with_oom_retry(method, pipe, batch[half:], write, device)
        return
    write(batch, images)


def write_paper_outputs(cfg: Mapping[str, Any], results_dir: Path, stand_in: bool = False) -> None:
    """The paper comparison of this experiment (when ``results/published/<experiment>.csv`` exists; for stand-in
    cells a pipeline check without our values) and, for real cells, the leaderboard across experiments."""
    from t2ibench.paper import repository_published_dir, write_comparison, write_leaderboard

    results = dict(cfg.get("results") or {})
    published = Path(results.get("published") or repository_published_dir())
    experiment = cfg.get("experiment_name", "default")
    write_comparison(results_dir, published / f"{experiment}.csv", stand_in=stand_in)
    if not stand_in:
        write_leaderboard(results_dir.parent)


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


class _StepProgress:
    """Advances the progress bar per denoising step of the batch being generated (not in jumps of a batch): a
    forward hook on the denoiser counts its gradient-free calls (the sampling loop's; guidance forwards run with
    gradients) and moves the bar by ``batch / steps`` images per call, never past the batch, which is then
    settled exactly when its images are written."""

    def __init__(self, bar: Any, pipe: Any, steps: int):
        self.bar, self.steps, self.batch, self.shown = bar, max(1, int(steps)), 0, 0.0
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        self.handle = denoiser.register_forward_hook(self._on_forward) if denoiser is not None else None

    def start(self, batch: int) -> None:
        self.batch, self.shown = batch, 0.0

    def _on_forward(self, *_: Any) -> None:
        import torch

        if torch.is_grad_enabled() or not self.batch:
            return
        step = min(self.batch / self.steps, self.batch * (1 - 0.5 / self.steps) - self.shown)
        if step > 0:
            self.shown += step
            self.bar.update(step)

    def written(self, images: int) -> None:
        """``images`` of the current batch were written: settle the bar to whole images."""
        self.bar.update(images - self.shown)
        self.shown = 0.0
        self.batch = max(0, self.batch - images)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()
        self.bar.n = round(self.bar.n)
        self.bar.close()


def run_cell(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Run one (model, method, benchmark) cell; returns a summary dict (see the module docstring)."""
    from tqdm.auto import tqdm

    from t2ibench import benchmarks
    from t2ibench.atomic import file_lock
    from t2ibench.benchmarks import COMMON_OPTIONS, parse_shard
    from t2ibench.evaluators import EVALUATORS
    from t2ibench.methods import METHODS
    from t2ibench.methods.base import make_batches
    from t2ibench.models import load_pipeline, model_identity, model_record, resolve_device
    from t2ibench.provenance import STAND_IN_FOLDER, library_versions
    from t2ibench.run_store import RunStore, shard_label
    from t2ibench.tables import build_tables, write_cell_record
    from t2ibench.trained_weights import TrainedWeightsCache

    started = time.perf_counter()
    model_cfg, method_cfg, bench_cfg = dict(cfg["model"]), dict(cfg["method"]), dict(cfg["benchmark"])
    run_cfg = dict(cfg["run"])
    method_cls = METHODS.get(method_cfg["name"])
    check_option_types(cfg)
    names = cfg.get("evaluators") or []
    by_benchmark = dict(cfg.get("evaluators_by_benchmark") or {})  # experiments mixing benchmarks (RespoDiff)
    bench_key = cfg["benchmark"].get("label") or cfg["benchmark"]["name"]
    if bench_key in by_benchmark:
        names = by_benchmark[bench_key]
    evaluator_names = [names] if isinstance(names, str) else list(names)  # evaluators=clip_score means [clip_score]
    evaluator_cfgs = dict(cfg.get("evaluator") or {})
    evaluators = []
    for name in evaluator_names:
        cls = EVALUATORS.get(name)
        if name not in evaluator_cfgs:
            raise T2IBenchError(
                f"evaluator '{name}' has no config: add `evaluator@evaluator.{name}: {name}` to the defaults of conf/config.yaml"
            )
        evaluators.append(cls(evaluator_cfgs[name]))
    seeds = _seeds(run_cfg.get("seeds", [0]))
    batch_size = _positive_int(run_cfg.get("batch_size", 1), "run.batch_size")

    bench_name = bench_cfg.pop("name")
    bench_label = bench_cfg.pop("label", None) or bench_name
    seeding = resolve_seeding(run_cfg, bench_cfg.pop("seeding", None))
    prompts = benchmarks.load(bench_name, **bench_cfg)
    if not prompts:
        raise T2IBenchError(
            f"benchmark '{bench_name}' yields no prompts with {bench_cfg} (check benchmark.n and benchmark.shard)"
        )
    shard = shard_label(*parse_shard(bench_cfg.get("shard")))
    bench_options = {k: v for k, v in bench_cfg.items() if k not in COMMON_OPTIONS}

    generation = resolve_generation(dict(cfg.get("generation") or {}), model_cfg.get("generation_defaults"))
    identity = model_identity(model_cfg)
    stand_in = stand_in_of(model_cfg, evaluators)
    gen_config = {"model": identity, "method": method_cfg, "generation": generation, "seeding": seeding}
    labels = {
        "model": model_cfg.get("name", "model"),
        "method": method_cfg.get("label") or method_cfg["name"],
        "benchmark": bench_label,
    }
    run_root = Path(run_cfg.get("root", "outputs/runs"))
    if stand_in and "model" in stand_in:
        run_root = run_root / STAND_IN_FOLDER  # images of the tiny model never sit beside a real model's
    store = RunStore.open(run_root, labels, gen_config, shard)
    gen_hash = store.meta()["gen_hash"]

    if seeding["source"] == "dataset" and run_cfg.get("seeds") not in (None, [0]):
        log.info(
            "seeds come from each prompt's dataset_seed (%d images per prompt); run.seeds is not used",
            seeding["images_per_prompt"],
        )
    items = make_items(prompts, seeds, seeding)
    method = method_cls(method_cfg, generation)
    items = method.select_items(items, store)
    method_prompts = list({p.id: p for p, _, _ in items}.values())  # the prompts the method makes images of
    todo = [batch for batch in make_batches(items, batch_size) if not all(store.is_done(p, k) for p, k, _ in batch)]
    record_model = model_record(identity)
    generated = 0
    if todo:
        pipe = load_pipeline(model_cfg) if method.needs_pipeline else None
        if method.needs_pipeline:
            record_model["resolved_revision"] = getattr(pipe, "_t2ibench_resolved_revision", None)
            method.check_pipeline(pipe)
            method.prepare(pipe, method_prompts, TrainedWeightsCache(run_cfg.get("cache_dir")))
        extra = {
            "benchmark": {"name": bench_name, "options": bench_options},
            "method": method_cfg,
            "model": record_model,
            "generation": generation,
            "gen_hash": gen_hash,
            "batch_size": batch_size,
            "device": resolve_device(model_cfg.get("device", "auto")),
            "pipeline": type(pipe).__name__ if pipe is not None else "external",
            "versions": library_versions(),
        }
        missing = [sum(1 for p, k, _ in batch if not store.is_done(p, k)) for batch in todo]
        bar = tqdm(
            total=sum(missing),
            desc=f"generate {labels['method']}",
            unit="img",
            smoothing=0.1,
            bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} img [{elapsed}<{remaining}, {rate_fmt}]",
            disable=not run_cfg.get("progress", True),
        )
        progress = _StepProgress(bar, pipe, generation["num_inference_steps"])
        warn_truncated_prompts(pipe, method_prompts)

        def write(batch: list[Any], images: list[Any]) -> None:
            nonlocal generated
            if len(images) != len(batch):
                raise RuntimeError(
                    f"method '{method_cfg['name']}' returned {len(images)} images for {len(batch)} items"
                )
            written = 0
            for (prompt, key, noise), image in zip(batch, images, strict=True):
                if not store.is_done(prompt, key):
                    noise_record = (
                        noise._asdict() if hasattr(noise, "_asdict") else {"seed": int(noise), "index": 0, "count": 1}
                    )
                    store.write_sample(prompt, key, image, {**extra, "batch_size": len(batch), "noise": noise_record})
                    written += 1
            generated += written
            progress.written(written)

        try:
            with nan_guard(pipe):
                for batch, count in zip(todo, missing, strict=True):
                    progress.start(count)
                    generate_with_oom_retry(method, pipe, batch, write, extra["device"])
        finally:
            progress.close()
    else:
        first = store.records().get((items[0][0].id, items[0][1]))
        if first:
            record_model = first.get("model", record_model)

    keys = [(p.id, k) for p, k, _ in items]
    scored = 0
    for evaluator in evaluators:
        before = len(evaluator.current_rows(store.read_scores(evaluator.name), store.samples(keys)))
        rows = evaluator.evaluate(store, keys)
        scored += len(rows) - before

    results_root = Path(cfg.get("results", {}).get("root", "results"))
    if stand_in:
        results_root = results_root / STAND_IN_FOLDER
    results_dir = results_root / cfg.get("experiment_name", "default")
    record = {
        "labels": labels,
        "gen_hash": gen_hash,
        "shard": shard,
        "store": str(store.path),
        "prompt_ids": [p.id for p in method_prompts],
        "seeds": sorted({k for _, k, _ in items}),
        "seeding": seeding,
        "model": record_model,
        "stand_in": stand_in,
        "method_config": method_cfg,
        "generation": generation,
        "benchmark": {"name": bench_name, "options": bench_options},
        "evaluators": {e.name: e.cfg for e in evaluators},
    }
    with file_lock(results_dir / ".lock"):  # the last of concurrent cells to finish sees every cell record
        write_cell_record(results_dir, record)
        table = build_tables(results_dir, cfg.get("experiment_name"))
        write_paper_outputs(cfg, results_dir, stand_in=bool(stand_in))
    summary = {
        "cell": "/".join(labels.values()),
        "store": str(store.path),
        "results": str(results_dir),
        "images": len(items),
        "generated": generated,
        "scored": scored,
        "seconds": round(time.perf_counter() - started, 1),
        "table": table,
        "stand_in": stand_in,
    }
    shown = list(_row_metrics(table, labels, gen_hash).items())
    metrics = ", ".join(f"{c}={fmt_number(v)}" for c, v in shown[:6]) + (
        f" (+{len(shown) - 6} more)" if len(shown) > 6 else ""
    )
    log.info(
        "done %s%s: %d images (%d generated, %d scored) in %.1fs; %s; tables in %s",
        summary["cell"],
        " (tiny stand-in: the numbers check the pipeline only)" if stand_in else "",
        len(items),
        generated,
        scored,
        summary["seconds"],
        metrics or "no metrics",
        results_dir,
    )
    return summary


def _row_metrics(table: Any, labels: Mapping[str, str], gen_hash: str) -> dict[str, float]:
    if table is None or not len(table):
        return {}
    row = table[
        (table["method"] == labels["method"])
        & (table["benchmark"] == labels["benchmark"])
        & (table["config"] == gen_hash)
    ]
    if not len(row):
        return {}
    skip = ("model", "method", "benchmark", "config", "images", "stand_in")
    values = {
        c: row.iloc[0][c] for c in table.columns if c not in skip and not c.endswith(("_ci_low", "_ci_high", "_n"))
    }
    return {c: float(v) for c, v in values.items() if v is not None and v == v}  # NaN: a metric of another row only
