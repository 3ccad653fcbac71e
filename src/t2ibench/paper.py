"""Regenerated paper tables (ours, the published value and the difference side by side) and the leaderboard.

``results/published/<experiment>.csv`` holds the numbers printed in a paper, one per line (a ``#`` comment line
first says where they come from): ``paper, table, group, row, column, value, scale, model, method, benchmark,
metric, base_model, base_method``. ``model, method, benchmark`` select our cell (the labels of ``table.csv``),
``metric`` its column; ``scale`` converts ours to the paper's units (x100 for scores printed in %); a metric
``gain:<m>`` is base minus row (the base cell is ``base_model, base_method``), as the ReBind table prints the gain
over SDXL. Ours is never filled in: a cell that was not run, or whose method t2ibench does not implement, is
``missing`` with the reason, and so is a metric we do not compute (e.g. a published standard deviation).

Outputs in ``results/<experiment>/``: ``comparison.md``, ``comparison.csv`` and ``comparison.tex`` (booktabs).
``results/leaderboard.md`` ranks the rows of every experiment's ``table.csv`` per (benchmark, metric).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2ibench.atomic import atomic_write_bytes, atomic_write_text
from t2ibench.errors import T2IBenchError

COLUMNS = (
    "paper",
    "table",
    "group",
    "row",
    "column",
    "value",
    "scale",
    "model",
    "method",
    "benchmark",
    "metric",
    "base_model",
    "base_method",
)
# metrics where lower is better (the papers' down arrows); everything else ranks higher-is-better
LOWER_IS_BETTER = ("fid", "devrat", "inappropriate", "exp_max", ".beta", "beta")


def repository_published_dir() -> Path:
    """``results/published`` of the checkout this package runs from (editable installs), else ``./results``."""
    here = Path(__file__).resolve().parents[2] / "results" / "published"
    return here if here.is_dir() else Path("results") / "published"


def load_published(path: str | Path) -> list[dict[str, str]]:
    """The rows of a published-numbers CSV (comment lines skipped); a malformed line names file and line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    body = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    if not body:
        raise T2IBenchError(f"{path}: no published numbers")
    header_line, header = body[0][0], next(csv.reader([body[0][1]]))
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise T2IBenchError(f"{path}:{header_line}: missing column(s) {', '.join(missing)}")
    rows = []
    for number, line in body[1:]:
        values = next(csv.reader([line]))
        if len(values) != len(header):
            raise T2IBenchError(f"{path}:{number}: expected {len(header)} fields, got {len(values)}")
        row = dict(zip(header, values, strict=True))
        try:
            float(row["value"]), float(row["scale"] or 1)
        except ValueError:
            raise T2IBenchError(
                f"{path}:{number}: value {row['value']!r} or scale {row['scale']!r} is not a number"
            ) from None
        rows.append(row)
    return rows


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _our_value(table: Any, model: str, method: str, benchmark: str, metric: str) -> float | None:
    if table is None or not len(table) or metric not in table.columns:
        return None
    match = table[(table["model"] == model) & (table["method"] == method) & (table["benchmark"] == benchmark)]
    if not len(match):
        return None
    value = match.iloc[0][metric]
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _reason(table: Any, entry: Mapping[str, str], implemented: set[str]) -> str:
    if _row_exists(table, entry):
        return "missing (metric not computed)"
    method = entry["method"]
    known = any(method == name or method.startswith(name + "_") for name in implemented)  # labels: respodiff_race
    return "missing (cell not run)" if known else "missing (method not in t2ibench)"


def _row_exists(table: Any, entry: Mapping[str, str]) -> bool:
    if table is None or not len(table):
        return False
    return bool(
        (
            (table["model"] == entry["model"])
            & (table["method"] == entry["method"])
            & (table["benchmark"] == entry["benchmark"])
        ).any()
    )


def compare(published: Sequence[Mapping[str, str]], table: Any, implemented: set[str]) -> list[dict[str, Any]]:
    """One record per published number: ours (in the paper's units), the published value, the difference."""
    out = []
    for entry in published:
        scale = float(entry["scale"] or 1)
        metric = entry["metric"]
        if metric.startswith("gain:"):
            inner = metric[len("gain:") :]
            row = _our_value(table, entry["model"], entry["method"], entry["benchmark"], inner)
            base = _our_value(table, entry["base_model"], entry["base_method"], entry["benchmark"], inner)
            ours = None if row is None or base is None else base - row
        else:
            ours = _our_value(table, entry["model"], entry["method"], entry["benchmark"], metric)
        paper_value = float(entry["value"])
        ours_scaled = None if ours is None else ours * scale
        out.append(
            {
                "group": entry.get("group", ""),
                "row": entry["row"],
                "column": entry["column"],
                "ours": ours_scaled,
                "paper": paper_value,
                "diff": None if ours_scaled is None else ours_scaled - paper_value,
                "decimals": _decimals(entry["value"]),
                "status": "ok" if ours is not None else _reason(table, entry, implemented),
                "cell": f"{entry['model']}/{entry['method']}/{entry['benchmark']}",
            }
        )
    return out


def _ordered(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _fmt(value: float | None, decimals: int, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def comparison_table(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The paper's layout: one line per (group, row), for each paper column three: ours, paper, difference."""
    columns = _ordered([r["column"] for r in records])
    keys = _ordered([(r["group"], r["row"]) for r in records])
    by = {(r["group"], r["row"], r["column"]): r for r in records}
    has_group = any(g for g, _ in keys)
    header = (["group"] if has_group else []) + ["row"]
    for column in columns:
        header += [f"{column} ours", f"{column} paper", f"{column} Δ"]
    body = []
    for group, row in keys:
        line = ([group] if has_group else []) + [row]
        for column in columns:
            record = by.get((group, row, column))
            if record is None:
                line += ["", "", ""]
            elif record["ours"] is None:
                line += [record["status"], _fmt(record["paper"], record["decimals"]), ""]
            else:
                line += [
                    _fmt(record["ours"], record["decimals"]),
                    _fmt(record["paper"], record["decimals"]),
                    _fmt(record["diff"], record["decimals"], signed=True),
                ]
        body.append(line)
    return header, body


def write_comparison(
    results_dir: str | Path, published_path: str | Path, tiny: bool = False
) -> list[dict[str, Any]] | None:
    """Write ``comparison.{md,csv,tex}`` for the experiment in ``results_dir``; None when nothing is published."""
    import pandas as pd

    from t2ibench.methods import METHODS
    from t2ibench.tables import _latex

    published_path = Path(published_path)
    if not published_path.is_file():
        return None
    results_dir = Path(results_dir)
    published = load_published(published_path)
    table_path = results_dir / "table.csv"
    table = pd.read_csv(table_path) if table_path.is_file() and table_path.stat().st_size else None
    if table is not None:
        for key in ("model", "method", "benchmark"):
            table[key] = table[key].astype(str)
    records = compare(published, table, set(METHODS.names()))
    header, body = comparison_table(records)
    first = published[0]
    title = f"{first['table']} — {first['paper']}"
    note = (
        "**Tiny stand-in models (`+tiny=all`): our numbers only check the pipeline, they mean nothing.**\n\n"
        if tiny
        else ""
    )
    found = sum(r["ours"] is not None for r in records)
    lines = [
        f"# {results_dir.name}: {title}",
        "",
        note + f"Ours (in the paper's units), the paper's value and ours minus the paper's. {found} of "
        f"{len(records)} published numbers have a regenerated value; the rest say why they are missing.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < (2 if header[0] == "group" else 1) else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in body]
    lines += ["", f"Published numbers: `{published_path.name}`; our cells: `table.csv` (provenance.json).", ""]
    atomic_write_text(results_dir / "comparison.md", "\n".join(lines))
    buffer = io.StringIO()
    pd.DataFrame(records).to_csv(buffer, index=False)
    atomic_write_bytes(results_dir / "comparison.csv", buffer.getvalue().encode("utf-8"))
    n_keys = 2 if header[0] == "group" else 1
    atomic_write_text(results_dir / "comparison.tex", _latex(f"{results_dir.name}: {title}", header, body, n_keys))
    return records


def lower_is_better(metric: str) -> bool:
    return any(metric == m or metric.endswith(m) or metric.startswith(m) for m in LOWER_IS_BETTER)


def write_leaderboard(results_root: str | Path) -> Path | None:
    """``results/leaderboard.md``: per (benchmark, metric), the rows of every experiment ranked best first."""
    import pandas as pd

    results_root = Path(results_root)
    frames = []
    for path in sorted(results_root.glob("*/table.csv")):
        if path.parent.name == "published" or not path.stat().st_size:
            continue
        frame = pd.read_csv(path)
        frame = pd.concat([pd.DataFrame({"experiment": [path.parent.name] * len(frame)}), frame], axis=1)
        frames.append(frame)
    if not frames:
        return None
    lines = [
        "# Leaderboard",
        "",
        "Every experiment's rows ranked per benchmark and metric (best first; lower is better for FID, DevRat, "
        "inappropriate rates and beta). Rebuilt after every run from `results/*/table.csv`.",
        "",
    ]
    skip = ("_ci_low", "_ci_high", "_n")
    for frame in frames:
        frame["benchmark"] = frame["benchmark"].astype(str)
    every = pd.concat(frames, ignore_index=True)
    keys = {"model", "method", "benchmark", "images", "config", "experiment"}
    metrics = sorted(c for c in every.columns if c not in keys and not c.endswith(skip))
    for benchmark in sorted(every["benchmark"].unique()):
        part = every[every["benchmark"] == benchmark]
        for metric in metrics:
            scored = part[part[metric].notna()] if metric in part else part.iloc[0:0]
            if not len(scored):
                continue
            low = lower_is_better(metric)
            ranked = scored.sort_values(metric, ascending=low, kind="stable")
            lines += [f"## {benchmark}: {metric} ({'lower' if low else 'higher'} is better)", ""]
            lines += ["| rank | method | model | experiment | value |", "|---:|---|---|---|---:|"]
            for rank, (_, row) in enumerate(ranked.iterrows(), start=1):
                lines.append(f"| {rank} | {row['method']} | {row['model']} | {row['experiment']} | {row[metric]:.4f} |")
            lines.append("")
    path = results_root / "leaderboard.md"
    atomic_write_text(path, "\n".join(lines))
    return path
