"""Tables: per-cell aggregates rendered as Markdown, CSV and LaTeX under ``results/<experiment>/``.

Every finished cell writes a small record to ``results/<experiment>/cells/`` (one file per cell, so
concurrent jobs of a multirun never write the same file). :func:`build_tables` reads whatever cells
exist, merges the shards of one (model, method, benchmark, generation config), asks each evaluator to
aggregate the per-image rows of the cell's own (prompt, seed) items, and writes:

* ``table.md``: one row per method (with model and benchmark), one column per metric, ``mean ± half-width
  of the 95% CI (over images)``;
* ``table.csv``: the same with ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``, ``<metric>_n`` columns;
* ``table.tex``: a booktabs ``tabular`` ready to paste;
* ``provenance.json``: per row the model id and revision (requested and resolved), method and generation
  config, seeds, image count, evaluator configs (backbone, revision, conventions) and library versions.

Nothing here depends on the time of the run, so rebuilding from the same cells gives identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from t2ibench.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from t2ibench.hashing import stable_hash

ROW_KEYS = ("model", "method", "benchmark")


def cell_record_path(results_dir: Path, record: Mapping[str, Any]) -> Path:
    labels = record["labels"]
    parts = [labels["model"], labels["method"], labels["benchmark"], record["gen_hash"]]
    if record.get("shard"):
        parts.append(record["shard"])
    return results_dir / "cells" / ("__".join(parts) + ".json")


def write_cell_record(results_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Store one cell's record (labels, store path, items, evaluator configs, provenance)."""
    path = cell_record_path(Path(results_dir), record)
    atomic_write_json(path, dict(record))
    return path


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _cell_text(cell: Mapping[str, Any], plus_minus: str = "±") -> str:
    if cell.get("ci_low") is None or cell.get("ci_high") is None:
        return _fmt(cell["value"])
    half = (cell["ci_high"] - cell["ci_low"]) / 2
    return f"{_fmt(cell['value'])} {plus_minus} {_fmt(half)}"


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
            }.get(ch, ch)
        )
    return "".join(out)


def _aggregate_group(records: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cells and provenance of one (model, method, benchmark, gen_hash) group of shard records."""
    import pandas as pd

    from t2ibench.evaluators import EVALUATORS
    from t2ibench.run_store import RunStore

    first = records[0]
    row: dict[str, Any] = {k: first["labels"][k] for k in ROW_KEYS}
    cells: dict[str, dict[str, Any]] = {}
    eval_configs: dict[str, Any] = {}
    n_images = 0
    versions: set[str] = set()
    # each (prompt, seed) once: an unsharded re-run of sharded cells (or a requeued duplicate) adds no images
    seen: set[tuple[str, int]] = set()
    record_keys = []
    for record in records:
        keys = [(p, int(s)) for p in record["prompt_ids"] for s in record["seeds"] if (p, int(s)) not in seen]
        seen.update(keys)
        record_keys.append(keys)
    for name in sorted({n for r in records for n in r["evaluators"]}):
        evaluator = EVALUATORS.get(name)(next(r["evaluators"][name] for r in records if name in r["evaluators"]))
        eval_configs[name] = evaluator.eval_config()
        frames = []
        for record, keys in zip(records, record_keys, strict=True):
            store = RunStore(record["store"])
            samples = store.samples(keys)
            frames.append(evaluator.current_rows(store.read_scores(name), samples))
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        for cell in evaluator.aggregate(frame):
            cells[cell.metric] = cell.to_dict()
    for record, keys in zip(records, record_keys, strict=True):
        samples = RunStore(record["store"]).samples(keys)
        n_images += len(samples)
        versions.update(json.dumps(s.get("versions", {}), sort_keys=True) for s in samples)
    row["images"] = n_images
    provenance = {
        "labels": {k: first["labels"][k] for k in ROW_KEYS},
        "gen_hash": first["gen_hash"],
        "model": first["model"],
        "method_config": first["method_config"],
        "generation": first["generation"],
        "seeds": first["seeds"],
        "seeding": first.get("seeding", {"source": "config"}),
        "shards": sorted(r.get("shard") or "all" for r in records),
        "images": n_images,
        "evaluators": eval_configs,
        "library_versions": [json.loads(v) for v in sorted(versions)],
        "stores": sorted(r["store"] for r in records),
    }
    return {"row": row, "cells": cells}, provenance


def build_tables(results_dir: str | Path, experiment: str | None = None) -> Any:
    """Aggregate every cell record under ``results_dir/cells`` and write the tables; returns the CSV frame."""
    import pandas as pd

    results_dir = Path(results_dir)
    records = [json.loads(p.read_text()) for p in sorted((results_dir / "cells").glob("*.json"))]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        key = (*(record["labels"][k] for k in ROW_KEYS), record["gen_hash"])
        groups.setdefault(key, []).append(record)
    rows, provenance = [], []
    for key in sorted(groups):
        aggregated, prov = _aggregate_group(groups[key])
        rows.append(aggregated)
        provenance.append(prov)
    metrics = sorted({m for r in rows for m in r["cells"]})
    for r, p in zip(rows, provenance, strict=True):
        r["row"]["config"] = p["gen_hash"]
    csv_rows = []
    for r in rows:
        flat = dict(r["row"])
        for metric in metrics:
            cell = r["cells"].get(metric)
            flat[metric] = None if cell is None else cell["value"]
            flat[f"{metric}_ci_low"] = None if cell is None else cell["ci_low"]
            flat[f"{metric}_ci_high"] = None if cell is None else cell["ci_high"]
            flat[f"{metric}_n"] = None if cell is None else cell["n"]
        csv_rows.append(flat)
    frame = pd.DataFrame(csv_rows)
    title = experiment or results_dir.name
    # Two generation configs of the same (model, method, benchmark) are told apart by a config column.
    labels = [tuple(r["row"][k] for k in ROW_KEYS) for r in rows]
    show_config = len(set(labels)) < len(labels)
    header = [*ROW_KEYS, *(["config"] if show_config else []), "images", *metrics]
    body = [
        [str(r["row"][k]) for k in header[: len(header) - len(metrics)]]
        + [_cell_text(r["cells"][m]) if m in r["cells"] else "missing" for m in metrics]
        for r in rows
    ]
    atomic_write_bytes(results_dir / "table.csv", frame.to_csv(index=False).encode("utf-8"))
    atomic_write_text(results_dir / "table.md", _markdown(title, header, body, len(header) - len(metrics), provenance))
    atomic_write_text(results_dir / "table.tex", _latex(title, header, body, len(header) - len(metrics)))
    atomic_write_json(
        results_dir / "provenance.json", {"experiment": title, "rows": provenance, "table_hash": stable_hash(csv_rows)}
    )
    return frame


def _markdown(
    title: str, header: list[str], body: list[list[str]], n_keys: int, provenance: list[dict[str, Any]]
) -> str:
    lines = [f"# {title}", "", "Mean ± half-width of the 95% confidence interval over images.", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * n_keys + ["---:"] * (len(header) - n_keys)) + "|")
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    lines += ["", "## Provenance", ""]
    for prov in provenance:
        model = prov["model"]
        where = model.get("id") or model.get("path") or model.get("source")
        revision = model.get("resolved_revision") or model.get("revision") or "-"
        backbones = ", ".join(
            f"{name}: {cfg.get('backbone', '-')}@{cfg.get('revision') or '-'}"
            for name, cfg in sorted(prov["evaluators"].items())
        )
        lines.append(
            f"- {' / '.join(prov['labels'][k] for k in ROW_KEYS)} "
            f"(config {prov['gen_hash']}): model {where}@{revision}; {_seeds_text(prov)}; {prov['images']} images; {backbones}"
        )
    lines += ["", "Full provenance (library versions, generation and evaluator configs): provenance.json", ""]
    return "\n".join(lines)


def _seeds_text(prov: dict[str, Any]) -> str:
    seeding = prov.get("seeding") or {"source": "config"}
    if seeding.get("source") == "dataset":
        return f"{seeding['images_per_prompt']} image(s) per prompt from its dataset seed"
    return f"seeds {prov['seeds']}"


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
