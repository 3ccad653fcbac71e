"""One cell of a sweep, in named steps: plan -> store -> generate the missing images -> score -> record.

:func:`run_cell` takes the composed Hydra config (see ``conf/config.yaml``) and:

1. :func:`t2ibench.plan.plan_cell`: validates everything once into a frozen :class:`~t2ibench.plan.CellPlan` (the
   benchmark's prompts, the resolved generation config, seeds, evaluators, labels, where images and tables go);
2. :func:`open_store`: the cell's run store, keyed by the model identity, the method config, the generation config
   the method really samples with (:meth:`~t2ibench.api.Method.effective_generation`) and the seeding;
3. :func:`generate_missing`: cuts the (prompt, seed) items into batches by the fixed rule of
   :func:`~t2ibench.seeding.make_batches` and generates only the batches that have a missing image; the model is
   loaded (once per process) only when something is missing, ``method.prepare`` runs before the first batch, and
   every image's record carries the generation config its pipeline call used; images are written by a
   :class:`~t2ibench.sample_writer.SampleWriter` thread while the next batch is sampled (all of them before the step
   returns, on error too);
4. :func:`score`: scores the cell's images with each evaluator (cached rows are reused);
5. :func:`record`: writes the cell record under ``results/<experiment_name>/cells/``.

Tables, the paper comparison and the leaderboard are the report step's (:func:`t2ibench.tables.refresh_results`):
``run_cell`` refreshes them at its end unless ``tables=False``; in a sweep the CLI refreshes each results folder
once, when the sweep ends (``t2ibench.cli.SweepReport``).

A *stand-in* cell (the tiny random model, or an evaluator whose backbone is a tiny stand-in; see
:mod:`t2ibench.provenance`) keeps its images under ``<run.root>/stand-ins/`` (tiny model only) and its tables under
``<results.root>/stand-ins/<experiment_name>/``, apart from every real cell.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from t2ibench.hashing import stable_hash
from t2ibench.plan import CellPlan, plan_cell
from t2ibench.stats import fmt_number

if TYPE_CHECKING:
    from t2ibench.api import Evaluator, Method
    from t2ibench.api.method import Item
    from t2ibench.run_store import RunStore

log = logging.getLogger("t2ibench")


def open_store(plan: CellPlan, method: Method) -> RunStore:
    """The cell's run store (created if needed); its hash covers what changes an image."""
    from t2ibench.run_store import RunStore

    gen_config = {
        "model": plan.identity,
        "method": plan.method,
        "generation": method.effective_generation(None),
        "seeding": plan.seeding,
    }
    if plan.jpeg_quality is not None and method.needs_pipeline:  # stores of runs without it keep their key
        gen_config["jpeg_quality"] = plan.jpeg_quality
    return RunStore.open(plan.run_root, plan.labels, gen_config, plan.shard)


def cell_items(plan: CellPlan, store: RunStore, method: Method) -> list[Item]:
    """The cell's images, in the fixed order (the method may keep only the prompts it is defined on)."""
    from t2ibench.seeding import make_items

    if plan.seeding["source"] == "dataset" and list(plan.seeds) != [0]:
        log.info(
            "seeds come from each prompt's dataset_seed (%d images per prompt); run.seeds is not used",
            plan.seeding["images_per_prompt"],
        )
    return method.select_items(make_items(list(plan.prompts), list(plan.seeds), plan.seeding), store)


def prepared_pipeline(plan: CellPlan, method: Method, items: Sequence[Item], record_model: dict[str, Any]) -> Any:
    """The model's pipeline (None for a method that samples nothing), checked and prepared for the method (training
    or loading its weights); the resolved hub revision goes into ``record_model``."""
    from t2ibench.models import load_pipeline
    from t2ibench.trained_weights import TrainedWeightsCache

    if not method.needs_pipeline:
        return None
    pipe = load_pipeline(plan.model)
    record_model["resolved_revision"] = getattr(pipe, "_t2ibench_resolved_revision", None)
    method.check_pipeline(pipe)
    method.prepare(pipe, prompts_of(items), TrainedWeightsCache(plan.cache_dir))
    return pipe


def sample_context(plan: CellPlan, store: RunStore, pipe: Any, record_model: dict[str, Any]) -> dict[str, Any]:
    """What every image record of this cell's run carries beside its own generation config and noise."""
    from t2ibench.models import resolve_device
    from t2ibench.provenance import library_versions

    return {
        "benchmark": {"name": plan.benchmark_name, "options": plan.benchmark_options},
        "method": plan.method,
        "model": record_model,
        "gen_hash": store.meta()["gen_hash"],
        "device": resolve_device(plan.model.get("device", "auto")),
        "pipeline": type(pipe).__name__ if pipe is not None else "external",
        "versions": library_versions(),
    }


def image_record(method: Method, context: Mapping[str, Any], item: Item, batch_size: int) -> dict[str, Any]:
    """The record of one generated image: the cell's context, the generation config its pipeline call used, the
    batch it was made in and its noise."""
    noise = item.noise
    noise_record = noise._asdict() if hasattr(noise, "_asdict") else {"seed": int(noise), "index": 0, "count": 1}
    return {
        **context,
        "generation": method.effective_generation(item.prompt),  # what the pipeline was called with
        "batch_size": batch_size,
        "noise": noise_record,
    }


def jpeg_round_trip(image: Any, quality: int) -> Any:
    """``image`` as a JPEG of ``quality`` decodes it (PIL's encoder and its default 4:2:0 subsampling, as
    ``Image.save(path.jpeg, quality=...)``), in RGB."""
    from PIL import Image

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def generation_bar(plan: CellPlan, total: int) -> Any:
    """The progress bar of the generate step (fractions of an image as the sampler's steps go)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=f"generate {plan.labels['method']}",
        unit="img",
        smoothing=0.1,
        bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} img [{elapsed}<{remaining}, {rate_fmt}]",
        disable=not plan.progress,
    )


def generate_missing(plan: CellPlan, store: RunStore, method: Method) -> tuple[list[Item], int, dict[str, Any]]:
    """Generate the cell's missing images; returns (the cell's items, how many were generated, the model record).

    Steps: the cell's items; the batches with a missing image (fixed batching rule); the pipeline, loaded and
    prepared only when something is missing; then each batch sampled while the previous one is written."""
    from t2ibench.generation_guards import StepProgress, generate_with_oom_retry, nan_guard, warn_truncated_prompts
    from t2ibench.models import model_record
    from t2ibench.sample_writer import SampleWriter
    from t2ibench.seeding import make_batches

    items = cell_items(plan, store, method)
    todo = [b for b in make_batches(items, plan.batch_size) if not all(store.is_done(i.prompt, i.key) for i in b)]
    record_model = model_record(plan.identity)
    if not todo:
        first = store.records().get((items[0].prompt.id, items[0].key))
        return items, 0, (first or {}).get("model", record_model)
    pipe = prepared_pipeline(plan, method, items, record_model)
    context = sample_context(plan, store, pipe, record_model)
    missing = [sum(1 for i in batch if not store.is_done(i.prompt, i.key)) for batch in todo]
    progress = StepProgress(generation_bar(plan, sum(missing)), pipe, plan.generation["num_inference_steps"])
    warn_truncated_prompts(pipe, prompts_of(items))
    generated = 0

    def write(batch: list[Item], images: list[Any]) -> None:
        nonlocal generated
        if len(images) != len(batch):
            raise RuntimeError(f"method '{plan.method['name']}' returned {len(images)} images for {len(batch)} items")
        if plan.jpeg_quality is not None and method.needs_pipeline:  # images read from elsewhere are kept as they are
            images = [jpeg_round_trip(image, plan.jpeg_quality) for image in images]
        samples = [
            (item.prompt, item.key, image, image_record(method, context, item, len(batch)))
            for item, image in zip(batch, images, strict=True)
            if not store.is_done(item.prompt, item.key)
        ]
        writer.submit(samples)  # PNG encoding, hashing and fsyncs run beside the next batch's sampling
        generated += len(samples)
        progress.written(len(samples))

    try:
        with nan_guard(pipe), SampleWriter(store) as writer:
            for batch, count in zip(todo, missing, strict=True):
                progress.start(count)
                generate_with_oom_retry(method, pipe, batch, write, context["device"])
    finally:
        progress.close()
    return items, generated, record_model


def prompts_of(items: Sequence[Item]) -> list[Any]:
    """The prompts of ``items``, each once, in order."""
    return list({i.prompt.id: i.prompt for i in items}.values())


def score(store: RunStore, items: Sequence[Item], evaluators: Sequence[Evaluator]) -> tuple[int, dict[str, float]]:
    """Score the cell's images with each evaluator; returns (rows scored now, the cell's metrics)."""
    keys = [(i.prompt.id, i.key) for i in items]
    samples = store.samples(keys)
    scored, metrics = 0, {}
    for evaluator in evaluators:
        before = len(evaluator.current_rows(store.read_scores(evaluator.name), samples))
        rows = evaluator.evaluate(store, keys)
        scored += len(rows) - before
        for cell in evaluator.aggregate(rows):
            if cell.value == cell.value:  # NaN: nothing to show
                metrics[cell.metric] = float(cell.value)
    return scored, metrics


def process_record(started: float) -> dict[str, Any]:
    """Where and when the cell ran: host, pid, the GPUs it was given (``CUDA_VISIBLE_DEVICES``, set by a launcher
    such as ``hydra/launcher=gpus``), start and end (Unix seconds). Not part of any table."""
    import os
    import platform

    return {
        "host": platform.node(),
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "started": round(started, 3),
        "finished": round(time.time(), 3),
    }


def record(
    plan: CellPlan,
    store: RunStore,
    items: Sequence[Item],
    model: Mapping[str, Any],
    evaluators: Sequence[Evaluator],
    started: float | None = None,
    absent: Sequence[tuple[str, int]] = (),
) -> dict[str, Any]:
    """Write the cell record (what the tables aggregate) and return it. ``absent``: (prompt id, seed) of the images
    the run asked for that the method could not make or read (the cell is then partial)."""
    from t2ibench.tables import write_cell_record

    entry = {
        "labels": plan.labels,
        "gen_hash": store.meta()["gen_hash"],
        "shard": plan.shard,
        "selection": plan.selection,
        "selection_hash": stable_hash(plan.selection),
        # absolute, and relative to the results folder: tables rebuild the same from any working folder, and a
        # project folder moved as a whole still finds its stores
        "store": str(store.path.resolve()),
        "store_from_results": os.path.relpath(store.path.resolve(), Path(plan.results_dir).resolve()),
        "prompt_ids": [p.id for p in prompts_of(items)],
        "seeds": sorted({i.key for i in items}),
        "absent": [[p, int(k)] for p, k in absent],
        "seeding": plan.seeding,
        "model": dict(model),
        "stand_in": plan.stand_in,
        "method_config": plan.method,
        "generation": store.meta()["generation_config"]["generation"],
        "benchmark": {"name": plan.benchmark_name, "options": plan.benchmark_options},
        "evaluators": {e.name: e.options() for e in evaluators},
        "process": process_record(time.time() if started is None else started),
    }
    write_cell_record(plan.results_dir, entry)
    return entry


def run_cell(cfg: Mapping[str, Any], tables: bool = True) -> dict[str, Any]:
    """Run one (model, method, benchmark) cell (see the module docstring); returns a summary dict."""
    from t2ibench.atomic import check_writable, held_lock

    started, wall_start = time.perf_counter(), time.time()
    plan = plan_cell(cfg)
    check_writable(plan.run_root, "run store folder (run.root)")  # at the door, before any image is made
    check_writable(plan.results_dir, "results folder (results.root)")
    method = plan.make_method()
    evaluators = plan.make_evaluators()
    store = open_store(plan, method)
    # one process at a time per store (a requeued job waits for the first instead of computing everything twice)
    with held_lock(store.path / ".cell.lock", f"the cell {store.path}", log):
        items, generated, model = generate_missing(plan, store, method)
        scored, metrics = score(store, items, evaluators)
        record(plan, store, items, model, evaluators, wall_start, method.absent)
    table = None
    if tables:
        from t2ibench.tables import refresh_results

        table = refresh_results(plan.results_dir, plan.published_dir)
    summary = {
        "cell": "/".join(plan.labels.values()),
        "store": str(store.path),
        "results": str(plan.results_dir),
        "images": len(items),
        "generated": generated,
        "scored": scored,
        "seconds": round(time.perf_counter() - started, 1),
        "table": table,
        "metrics": metrics,
        "stand_in": plan.stand_in,
        "repaired": list(store.repairs),
    }
    shown = list(metrics.items())
    text = ", ".join(f"{c}={fmt_number(v)}" for c, v in shown[:6]) + (
        f" (+{len(shown) - 6} more)" if len(shown) > 6 else ""
    )
    log.info(
        "done %s%s: %d images (%d generated, %d scored%s) in %.1fs; %s; tables in %s",
        summary["cell"],
        " (tiny stand-in: the numbers check the pipeline only)" if plan.stand_in else "",
        len(items),
        generated,
        scored,
        f", {len(store.repairs)} damaged file(s) repaired" if store.repairs else "",
        summary["seconds"],
        text or "no metrics",
        plan.results_dir,
    )
    return summary
