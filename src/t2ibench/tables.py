"""Tables: per-cell aggregates rendered as Markdown, CSV and LaTeX under ``results/<experiment>/``.

Every finished cell writes a small record to ``results/<experiment>/cells/`` (one file per cell, so
concurrent jobs of a multirun never write the same file). :func:`build_tables` reads whatever cells
exist, merges the shards of one (model, method, benchmark, generation config, selection), asks each evaluator to
aggregate the per-image rows of the cell's own (prompt, seed) items, and writes (a selection is what picks the
cell's images and scores beyond its config: ``benchmark.n``, ``subset_seed``, the seeds, the evaluators; two
selections are two rows; a record whose run store is not found is reported and its row shown as missing):

* ``table.md``: ``mean ± half-width of the 95% CI (over images)`` per cell and metric, split so that it fits a
  screen (see :func:`sections`): plain metrics side by side (at most 8 per table); a family ``a.b`` (e.g.
  ``inappropriate.sexual``) as one table per family with its members as columns; ``a.b.c`` (RoleBench's
  ``frequent.spatial.beta``) as one table per ``a`` with a row per (cell, ``b``) and ``c`` as columns, as the paper
  splits frequent/rare and the role categories. Column headers carry the direction the evaluator declares
  (↑ higher is better, ↓ lower is better). A short provenance table follows: the model that really ran (with its
  revision), seeds, images and each evaluator's backbones;
* ``table.csv``: one row per cell with ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``, ``<metric>_n`` columns
  and ``stand_in`` (true for tiny stand-in cells);
* ``table.tex``: the same sections as booktabs ``tabular`` blocks, ready to paste;
* ``provenance.json``: everything behind the rows (model id and revision requested and resolved, method and
  generation config, seeds, image count, evaluator configs and backbones, library versions).

A results folder holds either stand-in cells or real ones, never both (:mod:`t2ibench.provenance`): the runner puts
stand-in cells under ``results/stand-ins/``, and a record of the other kind found in a folder is left out of its
tables with a warning. Stand-in rows are labelled ``<model> (tiny stand-in)`` in every rendering.

Nothing here depends on the time of the run, so rebuilding from the same cells gives identical files.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2ibench.agreement import base_metric, skill_cells
from t2ibench.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, remove_stale_temporaries
from t2ibench.hashing import stable_hash
from t2ibench.provenance import STAND_IN_FOLDER, stand_in_label
from t2ibench.stats import MetricSpec, fmt_number

log = logging.getLogger(__name__)

ROW_KEYS = ("model", "method", "benchmark")
# the columns of table.csv that are not metrics (``experiment``: the leaderboard's); a metric has three more columns
KEY_COLUMNS = (*ROW_KEYS, "images", "config", "selection", "status", "stand_in", "experiment")
CI_SUFFIXES = ("_ci_low", "_ci_high", "_n")
WIDE_LIMIT = 8  # metric columns per table before a table is split
NOT_SCORED = "–"  # a metric of another row's evaluator (e.g. FID on the COCO rows only)
STAND_IN_BANNER = (
    "**Tiny stand-in cells: these numbers come from tiny random models and only check the pipeline; they say "
    "nothing about any real model.**"
)


def cell_record_path(results_dir: Path, record: Mapping[str, Any]) -> Path:
    """One file per (labels, generation config, selection, shard): a run of another selection (seeds, n,
    subset_seed, evaluators) of the same cell is another record and another row, never a replacement."""
    labels = record["labels"]
    parts = [labels["model"], labels["method"], labels["benchmark"], record["gen_hash"]]
    if record.get("selection_hash"):
        parts.append("sel-" + record["selection_hash"])
    if record.get("shard"):
        parts.append(record["shard"])
    return results_dir / "cells" / ("__".join(parts) + ".json")


def store_of(record: Mapping[str, Any], results_dir: Path) -> Path | None:
    """The run store of a cell record, found from any working folder: its absolute path, else its path relative to
    the results folder (a project folder moved as a whole); None when neither exists."""
    candidates = [Path(record["store"])]
    if record.get("store_from_results"):
        candidates.append(results_dir / record["store_from_results"])
    return next((c for c in candidates if c.is_dir()), None)


def selection_text(selection: Mapping[str, Any] | None) -> str:
    """A cell's selection as shown in a table (``n=3, subset_seed=1, seeds 0-3, clip_score+vqascore``)."""
    if not selection:
        return "–"
    parts = []
    for key in ("n", "subset_seed"):
        if selection.get(key) is not None:
            parts.append(f"{key}={selection[key]}")
    seeds = list(selection.get("seeds") or [])
    if seeds:
        contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
        parts.append(
            f"seed {seeds[0]}"
            if len(seeds) == 1
            else f"seeds {seeds[0]}-{seeds[-1]}"
            if contiguous
            else "seeds " + ",".join(map(str, seeds))
        )
    parts.append("+".join(selection.get("evaluators") or []) or "no evaluators")
    return ", ".join(parts)


def write_cell_record(results_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Store one cell's record (labels, store path, items, evaluator configs, provenance)."""
    path = cell_record_path(Path(results_dir), record)
    atomic_write_json(path, dict(record))
    if record.get("selection_hash"):  # a record of an older version (no selection) of this cell is replaced, saying so
        legacy = cell_record_path(Path(results_dir), {k: v for k, v in record.items() if k != "selection_hash"})
        if legacy.exists():
            legacy.unlink()
            log.info("%s: replaced by %s (the cell's record now names its selection)", legacy.name, path.name)
    return path


def is_stand_in(record: Mapping[str, Any]) -> bool:
    """True for a stand-in cell (records of older versions: the model source says so)."""
    if "stand_in" in record:
        return bool(record["stand_in"])
    return (record.get("model") or {}).get("source") == "tiny"


def metric_spec(metric: str, evaluators: Sequence[str] | None = None) -> MetricSpec | None:
    """The :class:`MetricSpec` an evaluator declares for ``metric`` (searching ``evaluators``, else all)."""
    from t2ibench.api import EVALUATORS

    for name in evaluators or EVALUATORS.names():
        spec = EVALUATORS.get(name).spec(metric)
        if spec is not None:
            return spec
    base = base_metric(metric)  # a per-skill column means what its metric means
    return metric_spec(base, evaluators) if base else None


def arrow(spec: MetricSpec | None) -> str:
    return {True: " ↑", False: " ↓"}.get(spec.higher_is_better, "") if spec is not None else ""


def _cell_text(cell: Mapping[str, Any], plus_minus: str = "±") -> str:
    if cell.get("ci_low") is None or cell.get("ci_high") is None:
        return fmt_number(cell["value"])
    half = (cell["ci_high"] - cell["ci_low"]) / 2
    return f"{fmt_number(cell['value'])} {plus_minus} {fmt_number(half)}"


def _latex_escape(text: str) -> str:
    out = []
    for ch in str(text):
        out.append(
            {
                "\\": r"\textbackslash{}",
                "&": r"\&",
                "%": r"\%",
                "$": r"\$",
                "#": r"\#",
                "_": r"\_",
                "{": r"\{",
                "}": r"\}",
                "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}",
                "↑": r"$\uparrow$",
                "↓": r"$\downarrow$",
            }.get(ch, ch)
        )
    return "".join(out)


# -- aggregation ---------------------------------------------------------------------------------
def _aggregate_group(records: list[dict[str, Any]], results_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cells and provenance of one (model, method, benchmark, gen_hash, selection) group of shard records. A record
    whose run store cannot be found is reported (one line each) and its images are not counted; a row none of whose
    stores is found is shown as missing, never as zero images."""
    import pandas as pd

    from t2ibench.api import EVALUATORS
    from t2ibench.run_store import RunStore

    first = records[0]
    row: dict[str, Any] = {k: first["labels"][k] for k in ROW_KEYS}
    row["selection"] = selection_text(first.get("selection"))
    stores = {id(r): store_of(r, results_dir) for r in records}
    for record in records:
        if stores[id(record)] is None:
            log.warning(
                "%s: the run store of cell %s is not found at %s (moved or deleted?); its images are left out",
                results_dir,
                "/".join(record["labels"][k] for k in ROW_KEYS)
                + (f" {record['shard']}" if record.get("shard") else ""),
                record["store"],
            )
    missing = [r for r in records if stores[id(r)] is None]
    records = [r for r in records if stores[id(r)] is not None]
    if not records:
        row["images"] = None
        row["status"] = "missing: run store not found"
        provenance = {
            "labels": {k: first["labels"][k] for k in ROW_KEYS},
            "gen_hash": first["gen_hash"],
            "stand_in": first.get("stand_in"),
            "model": first["model"],
            "seeds": first["seeds"],
            "seeding": first.get("seeding", {"source": "config"}),
            "selection": first.get("selection"),
            "images": None,
            "missing_stores": sorted(r["store"] for r in missing),
        }
        return {"row": row, "cells": {}, "stand_in": is_stand_in(first)}, provenance
    cells: dict[str, dict[str, Any]] = {}
    eval_configs: dict[str, Any] = {}
    backbones: dict[str, dict[str, str]] = {}
    n_images = 0
    versions: set[str] = set()
    # each (prompt, seed) once: an unsharded re-run of sharded cells (or a requeued duplicate) adds no images
    seen: set[tuple[str, int]] = set()
    record_keys = []
    for record in records:
        keys = [(p, int(s)) for p in record["prompt_ids"] for s in record["seeds"] if (p, int(s)) not in seen]
        seen.update(keys)
        record_keys.append(keys)
    evaluators_metrics: dict[str, tuple[str, ...]] = {}
    per_image: list[tuple[str, int, str, float]] = []
    failures: list[list[Any]] = []  # (prompt id, seed, evaluator, why) of images an evaluator could not score
    run_stores = [RunStore(stores[id(record)]) for record in records]
    record_samples = [store.samples(keys) for store, keys in zip(run_stores, record_keys, strict=True)]
    every_sample = [sample for samples in record_samples for sample in samples]
    for name in sorted({n for r in records for n in r["evaluators"]}):
        evaluator = EVALUATORS.get(name)(next(r["evaluators"][name] for r in records if name in r["evaluators"]))
        eval_configs[name] = evaluator.eval_config()
        backbones[name] = evaluator.backbones()
        evaluators_metrics[name] = tuple(evaluator.metrics)
        frames = [
            evaluator.current_rows(store.read_scores(name), samples)
            for store, samples in zip(run_stores, record_samples, strict=True)
        ]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        scored = (
            set(zip(frame["prompt_id"].astype(str), frame["seed"].astype(int), strict=True)) if len(frame) else set()
        )
        for store, samples in zip(run_stores, record_samples, strict=True):
            reasons = store.read_failures(name)
            for r in samples:
                image = (r["prompt"]["id"], int(r["seed"]))
                reason = reasons.get((*image, r["image_sha256"], evaluator.eval_key))
                if reason and image not in scored:
                    failures.append([*image, name, reason])
        for cell in evaluator.aggregate(frame):
            cells[cell.metric] = {**cell.to_dict(), "evaluator": name}
        for cell in skill_cells(evaluator.metrics, frame, every_sample):  # GenAI-Bench: per skill (prompt metadata)
            cells[cell.metric] = {**cell.to_dict(), "evaluator": name}
        for metric in evaluator.metrics:  # per-image values, for paired differences between cells
            if len(frame) and metric in frame.columns:
                kept = frame[["prompt_id", "seed", metric]].dropna()
                per_image += [
                    (str(p), int(k), metric, float(v))
                    for p, k, v in zip(kept["prompt_id"], kept["seed"], kept[metric], strict=True)
                ]
    for samples in record_samples:
        n_images += len(samples)
        versions.update(json.dumps(s.get("versions", {}), sort_keys=True) for s in samples)
    row["images"] = n_images
    absent = completeness(records, record_keys, record_samples, cells, evaluators_metrics)
    absent["failures"] = failures
    row["status"] = status_text(absent, n_images, len(missing))
    provenance = {
        "labels": {k: first["labels"][k] for k in ROW_KEYS},
        "gen_hash": first["gen_hash"],
        "stand_in": first.get("stand_in")
        or ({"model": first["model"].get("pipeline", "tiny")} if is_stand_in(first) else None),
        "model": first["model"],
        "method_config": first["method_config"],
        "generation": first["generation"],
        "seeds": first["seeds"],
        "seeding": first.get("seeding", {"source": "config"}),
        "selection": first.get("selection"),
        "shards": sorted(r.get("shard") or "all" for r in records),
        "missing_stores": sorted(r["store"] for r in missing),
        "images": n_images,
        "absent": absent,
        "evaluators": eval_configs,
        "evaluator_backbones": backbones,
        "library_versions": [json.loads(v) for v in sorted(versions)],
        "stores": sorted(str(stores[id(r)]) for r in records),
    }
    return {"row": row, "cells": cells, "stand_in": is_stand_in(first), "per_image": per_image}, provenance


def completeness(
    records: Sequence[Mapping[str, Any]],
    record_keys: Sequence[Sequence[tuple[str, int]]],
    record_samples: Sequence[Sequence[Mapping[str, Any]]],
    cells: Mapping[str, Mapping[str, Any]],
    evaluators_metrics: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """What a cell lacks of what its run asked for: images (a (prompt, seed) of its records without an image, and the
    images a method could not read, e.g. ``method=external`` with ``allow_missing``), shards that never ran, and
    per-image metrics scored on fewer images than the cell holds. Empty lists: the cell is complete."""
    have = {(r["prompt"]["id"], int(r["seed"])) for samples in record_samples for r in samples}
    lacking = {k for keys in record_keys for k in keys if k not in have}
    lacking |= {(str(p), int(k)) for r in records for p, k in r.get("absent", [])}
    images = [list(k) for k in sorted(lacking)]
    shards = []
    labels = [r.get("shard") for r in records if r.get("shard")]
    if labels:
        parsed = [re.fullmatch(r"shard-(\d+)-of-(\d+)", str(label)) for label in labels]  # run_store.shard_label
        count = max(int(m.group(2)) for m in parsed if m)
        present = {int(m.group(1)) for m in parsed if m}
        if not any(not r.get("shard") for r in records):  # an unsharded record of the selection covers every shard
            shards = [f"{i}/{count}" for i in range(count) if i not in present]
    metrics = {}
    n_images = len(have)
    for metrics_of in evaluators_metrics.values():
        for metric in metrics_of:
            scored = int(cells[metric]["n"]) if metric in cells else 0
            if scored < n_images:
                metrics[metric] = scored
    return {"images": images, "shards": shards, "metrics": metrics, "expected": n_images + len(images)}


def status_text(absent: Mapping[str, Any], n_images: int, missing_stores: int = 0) -> str:
    """``complete``, or ``partial: ...`` saying what is missing (``544 / 553 images``, a shard, a metric's count)."""
    parts = []
    if absent["images"]:
        parts.append(f"{n_images} / {absent['expected']} images")
    if absent["shards"]:
        parts.append("shard " + ", ".join(absent["shards"]) + " not run")
    for metric, scored in absent["metrics"].items():
        parts.append(f"{metric} on {scored} / {n_images} images")
    if missing_stores:
        parts.append(f"{missing_stores} run store(s) not found")
    return "partial: " + "; ".join(parts) if parts else "complete"


def is_complete(row: Mapping[str, Any]) -> bool:
    """A table row that holds everything its run asked for (rows of older tables, without a status: complete)."""
    status = row.get("status")
    return status is None or status != status or str(status) == "complete"


def _records(results_dir: Path) -> list[dict[str, Any]]:
    """The cell records of one results folder, of the kind the folder is for (stand-in or real)."""
    records = [json.loads(p.read_text()) for p in sorted((results_dir / "cells").glob("*.json"))]
    stand_in_folder = results_dir.parent.name == STAND_IN_FOLDER
    kept = [r for r in records if is_stand_in(r) == stand_in_folder]
    if len(kept) < len(records):
        log.warning(
            "%s: %d cell record(s) of %s cells left out of these tables (stand-in and real cells never share a table; "
            "the runner writes stand-in cells under %s/)",
            results_dir,
            len(records) - len(kept),
            "real" if stand_in_folder else "stand-in",
            STAND_IN_FOLDER,
        )
    return kept


def cell_groups(results_dir: Path) -> dict[tuple, list[dict[str, Any]]]:
    """The cell records of a results folder grouped into table rows: one group per (labels, generation config,
    selection), holding the records of its shards."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in _records(results_dir):
        key = (*(record["labels"][k] for k in ROW_KEYS), record["gen_hash"], record.get("selection_hash") or "")
        groups.setdefault(key, []).append(record)
    return groups


def build_tables(results_dir: str | Path, experiment: str | None = None) -> Any:
    """Aggregate every cell record under ``results_dir/cells`` and write the tables; returns the CSV frame."""
    import pandas as pd

    results_dir = Path(results_dir)
    removed = remove_stale_temporaries(results_dir)  # of table writes killed before their rename
    if removed:
        log.info("removed %d half-written temporary file(s) of interrupted table writes in %s", removed, results_dir)
    groups = cell_groups(results_dir)
    rows, provenance = [], []
    for key in sorted(groups):
        aggregated, prov = _aggregate_group(groups[key], results_dir)
        rows.append(aggregated)
        provenance.append(prov)
    metrics = sorted({m for r in rows for m in r["cells"]})
    for r, p in zip(rows, provenance, strict=True):
        r["row"]["config"] = p["gen_hash"]
    csv_rows = []
    for r in rows:
        flat = {**r["row"], "stand_in": r["stand_in"]}
        for metric in metrics:
            cell = r["cells"].get(metric)
            flat[metric] = None if cell is None else cell["value"]
            flat[f"{metric}_ci_low"] = None if cell is None else cell["ci_low"]
            flat[f"{metric}_ci_high"] = None if cell is None else cell["ci_high"]
            flat[f"{metric}_n"] = None if cell is None else cell["n"]
        csv_rows.append(flat)
    frame = pd.DataFrame(csv_rows)
    title = experiment or results_dir.name
    stand_in = any(r["stand_in"] for r in rows)
    specs = {m: metric_spec(m, [next(r["cells"][m]["evaluator"] for r in rows if m in r["cells"])]) for m in metrics}
    parts = sections(rows, metrics, specs)
    atomic_write_bytes(results_dir / "table.csv", frame.to_csv(index=False).encode("utf-8"))
    atomic_write_text(results_dir / "table.md", _markdown(title, parts, provenance, stand_in))
    atomic_write_text(results_dir / "table.tex", _latex_sections(title, parts, stand_in))
    atomic_write_json(
        results_dir / "provenance.json", {"experiment": title, "rows": provenance, "table_hash": stable_hash(csv_rows)}
    )
    write_missing(results_dir, title, rows, provenance)
    per_image = [
        {
            **{k: r["row"][k] for k in ROW_KEYS},
            "config": r["row"]["config"],
            "selection": r["row"]["selection"],
            "prompt_id": p,
            "seed": s,
            "metric": m,
            "value": v,
        }
        for r in rows
        for p, s, m, v in r.get("per_image", [])
    ]
    columns = [*ROW_KEYS, "config", "selection", "prompt_id", "seed", "metric", "value"]
    scores = pd.DataFrame(per_image, columns=columns)
    atomic_write_bytes(results_dir / "scores.csv", scores.to_csv(index=False).encode("utf-8"))
    return frame


def write_missing(
    results_dir: Path, title: str, rows: Sequence[Mapping[str, Any]], provenance: Sequence[Mapping[str, Any]]
) -> Path | None:
    """``missing.md``: every partial cell and what it lacks (the first 50 images by key, the shards, the metrics
    scored on fewer images); removed when every cell is complete. None when nothing is missing."""
    path = results_dir / "missing.md"
    partial = [(r, p) for r, p in zip(rows, provenance, strict=True) if not is_complete(r["row"])]
    if not partial:
        path.unlink(missing_ok=True)
        return None
    lines = [
        f"# {title}: partial cells",
        "",
        "A partial cell is shown as partial in the tables, and the comparison and the leaderboard neither rank it nor "
        "difference it. Run the cell again to fill it (what exists is kept).",
        "",
    ]
    for r, prov in partial:
        lines += [f"## {' / '.join(row_label(r['row'], r['stand_in']))}: {r['row']['status']}", ""]
        absent = prov.get("absent") or {}
        images = absent.get("images", [])
        if images:
            shown = ", ".join(f"{p} seed {s}" for p, s in images[:50])
            lines.append(f"- images ({len(images)}): {shown}" + (" ..." if len(images) > 50 else ""))
        if absent.get("shards"):
            lines.append("- shards not run: " + ", ".join(absent["shards"]))
        for metric, scored in (absent.get("metrics") or {}).items():
            lines.append(f"- {metric}: scored on {scored} of the cell's {r['row']['images']} images")
        for prompt_id, seed, evaluator, why in (absent.get("failures") or [])[:50]:
            lines.append(f"- {evaluator} could not score {prompt_id} seed {seed}: {why}")
        for store in prov.get("missing_stores") or []:
            lines.append(f"- run store not found: {store}")
        lines.append("")
    atomic_write_text(path, "\n".join(lines))
    return path


# -- layout ----------------------------------------------------------------------------------------
@dataclass
class Section:
    """One rendered table: a title, the header, the body, and how many leading columns are keys."""

    title: str
    header: list[str]
    body: list[list[str]]
    n_keys: int


def row_label(row: Mapping[str, Any], stand_in: bool) -> list[str]:
    """(model, method, benchmark) as shown: a stand-in row's model says so."""
    model = str(row["model"])
    return [stand_in_label(model) if stand_in else model, str(row["method"]), str(row["benchmark"])]


def sections(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], specs: Mapping[str, MetricSpec | None]
) -> list[Section]:
    """The tables of :func:`build_tables`' layout (see the module docstring) for aggregated ``rows``."""
    labels = [tuple(r["row"][k] for k in ROW_KEYS) for r in rows]
    configs = [(*label, r["row"].get("config")) for label, r in zip(labels, rows, strict=True)]
    show_config = len(set(configs)) > len(set(labels))  # two generation configs of one (model, method, benchmark)
    show_selection = len(set(configs)) < len(configs)  # two selections (seeds, n, evaluators) of one config
    keys = [*ROW_KEYS, *(["config"] if show_config else []), *(["selection"] if show_selection else [])]

    def key_cells(r: Mapping[str, Any]) -> list[str]:
        return (
            row_label(r["row"], r["stand_in"])
            + ([str(r["row"]["config"])] if show_config else [])
            + ([str(r["row"].get("selection", "–"))] if show_selection else [])
        )

    def images(r: Mapping[str, Any]) -> str:
        shown = "missing (run store not found)" if r["row"]["images"] is None else str(r["row"]["images"])
        return shown + (" (partial)" if str(r["row"].get("status", "")).startswith("partial") else "")

    def text(r: Mapping[str, Any], metric: str) -> str:
        return _cell_text(r["cells"][metric]) if metric in r["cells"] else NOT_SCORED

    plain = [m for m in metrics if "." not in m]
    families: dict[str, list[str]] = {}
    nested: dict[str, dict[str, list[str]]] = {}
    for metric in metrics:
        parts = metric.split(".")
        if len(parts) == 2:
            families.setdefault(parts[0], []).append(metric)
        elif len(parts) > 2:
            nested.setdefault(parts[0], {}).setdefault(".".join(parts[1:-1]), []).append(metric)
    out = []
    chunks = [plain[i : i + WIDE_LIMIT] for i in range(0, len(plain), WIDE_LIMIT)] or [[]]
    for number, chunk in enumerate(chunks):
        title = "Summary" if len(chunks) == 1 else f"Summary ({number + 1} of {len(chunks)})"
        header = [*keys, "images", *(m + arrow(specs.get(m)) for m in chunk)]
        body = [key_cells(r) + [images(r)] + [text(r, m) for m in chunk] for r in rows]
        out.append(Section(title, header, body, len(keys) + 1))
    for family, members in families.items():
        suffixes = [m.split(".", 1)[1] for m in members]
        if len(members) <= WIDE_LIMIT:
            header = [*keys, *(s + arrow(specs.get(m)) for s, m in zip(suffixes, members, strict=True))]
            body = [key_cells(r) + [text(r, m) for m in members] for r in rows]
            out.append(Section(family, header, body, len(keys)))
        else:  # long form: one row per cell and member
            body = [key_cells(r) + [s, text(r, m)] for r in rows for s, m in zip(suffixes, members, strict=True)]
            out.append(Section(family, [*keys, "part", family + arrow(specs.get(members[0]))], body, len(keys) + 1))
    for section, groups in nested.items():
        leaves = list(dict.fromkeys(m.rsplit(".", 1)[1] for ms in groups.values() for m in ms))
        spec_of = {
            leaf: next((specs.get(m) for ms in groups.values() for m in ms if m.endswith("." + leaf)), None)
            for leaf in leaves
        }
        header = [*keys, "part", *(leaf + arrow(spec_of[leaf]) for leaf in leaves)]
        body = []
        for r in rows:
            for group in groups:
                body.append(key_cells(r) + [group] + [text(r, f"{section}.{group}.{leaf}") for leaf in leaves])
        out.append(Section(section, header, body, len(keys) + 1))
    return out


def metric_columns(columns: Sequence[str]) -> list[str]:
    """The metric columns of a table.csv (not its keys, not a metric's CI and count columns), in order."""
    return [c for c in columns if c not in KEY_COLUMNS and not c.endswith(CI_SUFFIXES)]


def rows_from_csv(frame: Any) -> list[dict[str, Any]]:
    """The aggregated rows of a ``table.csv`` frame, in the form :func:`sections` takes."""
    metrics = metric_columns(frame.columns)
    rows = []
    for record in frame.to_dict("records"):
        cells = {}
        for metric in metrics:
            value = record[metric]
            if value is None or value != value:
                continue
            low, high = record.get(f"{metric}_ci_low"), record.get(f"{metric}_ci_high")
            cells[metric] = {
                "value": float(value),
                "ci_low": None if low is None or low != low else float(low),
                "ci_high": None if high is None or high != high else float(high),
            }
        row = {k: record.get(k) for k in (*ROW_KEYS, "images", "config", "selection", "status")}
        if row["images"] is not None and row["images"] != row["images"]:  # NaN: a missing row
            row["images"] = None
        rows.append({"row": row, "cells": cells, "stand_in": bool(record.get("stand_in", False))})
    return rows


# -- rendering -------------------------------------------------------------------------------------
def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]], n_keys: int) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(["---"] * n_keys + ["---:"] * (len(header) - n_keys)) + "|")
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in body]
    return lines


def provenance_rows(provenance: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The short provenance table: per row what produced its numbers."""
    header = ["row", "config", "model that ran", "revision", "seeds", "images", "evaluator backbones"]
    body = []
    for prov in provenance:
        model = prov["model"]
        if model.get("source") == "tiny":
            ran = model.get("pipeline", "tiny random pipeline")
            if model.get("stands_in_for"):
                ran += f", standing in for {model['stands_in_for']}"
            revision = "-"
        else:
            ran = str(model.get("id") or model.get("path") or model.get("source"))
            revision = str(model.get("resolved_revision") or model.get("revision") or "-")
        backbones = "; ".join(
            f"{name}: " + ", ".join(f"{role} {value}" for role, value in roles.items()) if roles else name
            for name, roles in sorted((prov.get("evaluator_backbones") or {}).items())
        )
        label = row_label(prov["labels"], bool(prov.get("stand_in")))
        body.append(
            [
                " / ".join(label),
                prov["gen_hash"],
                ran,
                revision,
                _seeds_text(prov),
                "missing" if prov["images"] is None else str(prov["images"]),
                backbones,
            ]
        )
    return header, body


def _markdown(title: str, parts: Sequence[Section], provenance: Sequence[Mapping[str, Any]], stand_in: bool) -> str:
    lines = [f"# {title}", ""]
    if stand_in:
        lines += [STAND_IN_BANNER, ""]
    lines += [
        "Mean ± half-width of the 95% confidence interval over images; ↑ higher is better, ↓ lower is better; "
        f"{NOT_SCORED} not scored in that cell.",
        "",
    ]
    for part in parts:
        if len(parts) > 1:
            lines += [f"## {part.title}", ""]
        lines += markdown_table(part.header, part.body, part.n_keys) + [""]
    header, body = provenance_rows(provenance)
    lines += ["## Provenance", ""] + markdown_table(header, body, len(header)) + [""]
    lines += ["Full provenance (library versions, generation and evaluator configs): provenance.json", ""]
    return "\n".join(lines)


def _seeds_text(prov: Mapping[str, Any]) -> str:
    seeding = prov.get("seeding") or {"source": "config"}
    if seeding.get("source") == "dataset":
        return f"{seeding['images_per_prompt']} per prompt from its dataset seed"
    return f"{prov['seeds']}"


def _latex(title: str, header: list[str], body: list[list[str]], n_keys: int) -> str:
    spec = "l" * n_keys + "r" * (len(header) - n_keys)
    lines = [
        f"% {_latex_escape(title)}: mean $\\pm$ half-width of the 95\\% CI over images (generated by t2ibench)",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(_latex_escape(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    for row in body:
        lines.append(" & ".join(_latex_escape(c).replace("±", "$\\pm$") for c in row) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def _latex_sections(title: str, parts: Sequence[Section], stand_in: bool) -> str:
    note = "% TINY STAND-IN CELLS: these numbers come from tiny random models and mean nothing\n" if stand_in else ""
    return note + "\n".join(
        _latex(f"{title}: {part.title}" if len(parts) > 1 else title, part.header, part.body, part.n_keys)
        for part in parts
    )


def refresh_results(results_dir: str | Path, published: str | Path | None = None) -> Any:
    """The report step of a run: rebuild ``table.*``, the paper comparison (``published``: the folder of the papers'
    CSVs; default the checkout's) and, for real cells, the leaderboard, under the results folder's lock (the last of
    concurrent writers sees every cell record). Returns the table frame. The HTML report is :func:`build_report`."""
    from t2ibench.atomic import file_lock
    from t2ibench.paper import repository_published_dir, write_comparison, write_differences, write_leaderboard
    from t2ibench.provenance import STAND_IN_FOLDER

    results_dir = Path(results_dir)
    stand_in = results_dir.resolve().parent.name == STAND_IN_FOLDER
    folder = Path(published) if published else repository_published_dir()
    with file_lock(results_dir / ".lock"):
        table = build_tables(results_dir, results_dir.name)
        write_comparison(results_dir, folder / f"{results_dir.name}.csv", stand_in=stand_in)
        write_differences(results_dir, stand_in=stand_in)
        if not stand_in:
            write_leaderboard(results_dir.parent)
    return table
