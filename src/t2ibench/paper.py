"""Regenerated paper tables (ours, the published value and the difference side by side) and the leaderboard.

``results/published/<experiment>.csv`` holds the numbers printed in a paper, one per line (a ``#`` comment line
first says where they come from): ``paper, table, group, row, column, value, scale, model, method, benchmark,
metric, base_model, base_method``. ``model, method, benchmark`` select our cell (the labels of ``table.csv``),
``metric`` its column; ``scale`` converts ours to the paper's units (x100 for scores printed in %); a metric
``gain:<m>`` is base minus row (the base cell is ``base_model, base_method``), as the ReBind table prints the gain
over SDXL. Ours is never filled in: a cell that was not run, or whose method t2ibench does not implement, is
``missing`` with the reason, and so is a metric we do not compute (e.g. a published standard deviation).

Outputs in ``results/<experiment>/``: ``comparison.md``, ``comparison.csv`` and ``comparison.tex`` (booktabs). A wide
table is split the way the paper groups its columns (one table per column family, e.g. "Spatial" with its M, U and
beta), so that it fits a page. For stand-in cells (``results/stand-ins/<experiment>/``) the comparison is a
*pipeline check*: per published number, whether the experiment produced the matching cell and metric, with the
paper's value for reference and neither our value nor a difference.

``results/leaderboard.md`` ranks the rows of every real experiment's ``table.csv`` per (benchmark, metric), in the
direction each evaluator declares for the metric (:class:`t2ibench.stats.MetricSpec`); stand-in cells are never in it.
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
from t2ibench.stats import fmt_number, paired_bootstrap

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
WIDE_COLUMNS = 4  # paper columns (x3: ours, paper, difference) a comparison shows side by side before it splits


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


def _cell_rows(table: Any, model: str, method: str, benchmark: str) -> Any:
    """The rows of ``table`` of one (model, method, benchmark) cell (None without a table)."""
    if table is None or not len(table):
        return None
    return table[(table["model"] == model) & (table["method"] == method) & (table["benchmark"] == benchmark)]


def _partial(table: Any, model: str, method: str, benchmark: str) -> str | None:
    """The status of the cell when it is partial (then it is neither compared nor differenced), else None."""
    from t2ibench.tables import is_complete

    match = _cell_rows(table, model, method, benchmark)
    if match is None or not len(match) or "status" not in match.columns or is_complete(match.iloc[0]):
        return None
    return str(match.iloc[0]["status"])


def _our_value(table: Any, model: str, method: str, benchmark: str, metric: str) -> float | None:
    match = _cell_rows(table, model, method, benchmark)
    if match is None or metric not in match.columns or not len(match) or _partial(table, model, method, benchmark):
        return None
    value = match.iloc[0][metric]
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _reason(table: Any, entry: Mapping[str, str], implemented: set[str]) -> str:
    cells = [(entry["model"], entry["method"])]
    if entry["metric"].startswith("gain:"):
        cells.append((entry["base_model"], entry["base_method"]))
    for model, method in cells:
        status = _partial(table, model, method, entry["benchmark"])
        if status:
            return f"not compared ({model}/{method} {status})"
    if _row_exists(table, entry):
        return "missing (metric not computed)"
    method = entry["method"]
    known = any(method == name or method.startswith(name + "_") for name in implemented)  # labels: respodiff_race
    return "missing (cell not run)" if known else "missing (method not in t2ibench)"


def _row_exists(table: Any, entry: Mapping[str, str]) -> bool:
    match = _cell_rows(table, entry["model"], entry["method"], entry["benchmark"])
    return match is not None and bool(len(match))


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
    return fmt_number(value, decimals, signed, missing="")


def comparison_table(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The paper's layout: one line per (group, row), for each paper column three: ours, paper, difference."""
    return _comparison_block(records, _ordered([r["column"] for r in records]), stand_in=False)


def _comparison_block(
    records: Sequence[Mapping[str, Any]], columns: Sequence[str], stand_in: bool, names: Sequence[str] | None = None
) -> tuple[list[str], list[list[str]]]:
    keys = _ordered([(r["group"], r["row"]) for r in records if r["column"] in columns])
    by = {(r["group"], r["row"], r["column"]): r for r in records}
    has_group = any(g for g, _ in keys)
    header = (["group"] if has_group else []) + ["row"]
    for name in names or columns:
        header += [f"{name} paper", f"{name} check"] if stand_in else [f"{name} ours", f"{name} paper", f"{name} Δ"]
    body = []
    for group, row in keys:
        line = ([group] if has_group else []) + [row]
        for column in columns:
            record = by.get((group, row, column))
            if record is None:
                line += [""] * (2 if stand_in else 3)
            elif stand_in:
                check = "✓ produced" if record["ours"] is not None else record["status"]
                line += [_fmt(record["paper"], record["decimals"]), check]
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


def column_families(columns: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Paper columns grouped as the paper prints them: "Spatial M", "Spatial U", "Spatial β", "Spatial β gain" ->
    family "Spatial" with (column, sub-name) pairs. A family is the shortest name that is, followed by a space, the
    start of a column and that another column's name minus its last word equals; other columns stand alone."""
    stems = {c.rsplit(" ", 1)[0] for c in columns if " " in c}
    families: dict[str, list[tuple[str, str]]] = {}
    for column in columns:
        owners = sorted((f for f in stems if column.startswith(f + " ")), key=len)
        family = owners[0] if owners else column
        families.setdefault(family, []).append((column, column[len(family) :].strip() or column))
    return families


def comparison_sections(
    records: Sequence[Mapping[str, Any]], stand_in: bool = False
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, body) tables of a comparison: one when it is narrow, else one per column family."""
    columns = _ordered([r["column"] for r in records])
    families = column_families(columns)
    if len(columns) <= WIDE_COLUMNS or len(families) in (1, len(columns)):
        return [("", *_comparison_block(records, columns, stand_in))]
    return [
        (family, *_comparison_block(records, [c for c, _ in members], stand_in, [n for _, n in members]))
        for family, members in families.items()
    ]


def write_comparison(
    results_dir: str | Path, published_path: str | Path, stand_in: bool = False
) -> list[dict[str, Any]] | None:
    """Write ``comparison.{md,csv,tex}`` for the experiment in ``results_dir``; None when nothing is published.
    ``stand_in``: a pipeline check (see the module docstring) instead of a comparison of numbers."""
    import pandas as pd

    from t2ibench.api import METHODS
    from t2ibench.tables import STAND_IN_BANNER, _latex, markdown_table

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
    parts = comparison_sections(records, stand_in)
    first = published[0]
    title = f"{first['table']} — {first['paper']}"
    found = sum(r["ours"] is not None for r in records)
    if stand_in:
        intro = (
            f"{STAND_IN_BANNER}\n\nPipeline check: which of the paper's {len(records)} published numbers this "
            f"experiment produces a cell and metric for ({found} do). Our values are not shown: on stand-in models they "
            "mean nothing. The paper's values are for reference."
        )
    else:
        intro = (
            f"Ours (in the paper's units), the paper's value and ours minus the paper's. {found} of {len(records)} "
            "published numbers have a regenerated value; the rest say why they are missing."
        )
    lines = [f"# {results_dir.name}: {title}", "", intro, ""]
    for name, header, body in parts:
        if name:
            lines += [f"## {name}", ""]
        lines += markdown_table(header, body, 2 if header[0] == "group" else 1) + [""]
    lines += [f"Published numbers: `{published_path.name}`; our cells: `table.csv` (provenance.json).", ""]
    atomic_write_text(results_dir / "comparison.md", "\n".join(lines))
    frame = pd.DataFrame(records)
    if stand_in:
        frame = frame.assign(produced=frame["ours"].notna()).drop(columns=["ours", "diff"])
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    atomic_write_bytes(results_dir / "comparison.csv", buffer.getvalue().encode("utf-8"))
    tex = "".join(
        _latex(
            f"{results_dir.name}: {title}" + (f" ({name})" if name else ""),
            header,
            body,
            2 if header[0] == "group" else 1,
        )
        for name, header, body in parts
    )
    note = "% TINY STAND-IN CELLS: a pipeline check, no values\n" if stand_in else ""
    atomic_write_text(results_dir / "comparison.tex", note + tex)
    return records


RESAMPLES = 2000  # paired bootstrap draws (seed 0) behind every interval of the leaderboard and differences.md
CELL_KEYS = ("model", "method", "benchmark", "config", "selection")


def per_image_values(results_dir: str | Path) -> dict[tuple, dict[tuple[str, int], float]]:
    """(model, method, benchmark, config, selection, metric) -> {(prompt id, seed): value} from a results folder's
    ``scores.csv`` (written with the tables); empty for a folder without one."""
    import pandas as pd

    path = Path(results_dir) / "scores.csv"
    if not path.is_file() or not path.stat().st_size:
        return {}
    frame = pd.read_csv(path, dtype={"prompt_id": str, "config": str, "selection": str}, keep_default_na=False)
    out: dict[tuple, dict[tuple[str, int], float]] = {}
    for row in frame.itertuples(index=False):
        key = (*(str(getattr(row, k)) for k in CELL_KEYS), row.metric)
        out.setdefault(key, {})[(row.prompt_id, int(row.seed))] = float(row.value)
    return out


def _cell_key(row: Any, metric: str) -> tuple:
    return (*(str(row.get(k, "")) for k in CELL_KEYS), metric)


def ranked_with_ties(ranked: Any, metric: str, values: Mapping[tuple, Mapping[tuple[str, int], float]]) -> list[dict]:
    """The rows of ``ranked`` (best first) with a rank each: a row takes the rank of the row above it when their
    paired difference's interval includes zero (a tie), else its position. ``vs_next``: the paired difference to the
    next row (None when they share no prompt and seed)."""
    rows = [row for _, row in ranked.iterrows()]
    out = []
    for index, row in enumerate(rows):
        below = rows[index + 1] if index + 1 < len(rows) else None
        paired = None
        if below is not None:
            mine = values.get((row["experiment"], *_cell_key(row, metric)))
            theirs = values.get((below["experiment"], *_cell_key(below, metric)))
            if mine and theirs:
                paired = paired_bootstrap(mine, theirs, resamples=RESAMPLES)
        out.append({"row": row, "vs_next": paired})
    rank = 1
    for index, entry in enumerate(out):
        if index and not (out[index - 1]["vs_next"] is not None and not out[index - 1]["vs_next"].significant):
            rank = index + 1
        entry["rank"] = rank
    return out


def write_leaderboard(results_root: str | Path) -> Path | None:
    """``results/leaderboard.md``: per (benchmark, metric), the complete rows of every real experiment ranked best
    first, with ties where the paired difference is not real (see :func:`ranked_with_ties`)."""
    import pandas as pd

    from t2ibench.tables import is_complete, metric_columns, metric_spec

    results_root = Path(results_root)
    frames, values = [], {}
    for path in sorted(results_root.glob("*/table.csv")):
        if path.parent.name == "published" or not path.stat().st_size:
            continue
        frame = pd.read_csv(path, dtype={"config": str, "selection": str})
        if "stand_in" in frame.columns:
            frame = frame[~frame["stand_in"].astype(bool)]
        frame = pd.concat(
            [pd.DataFrame({"experiment": [path.parent.name] * len(frame)}), frame.reset_index(drop=True)], axis=1
        )
        frames.append(frame)
        for key, found in per_image_values(path.parent).items():
            values[(path.parent.name, *key)] = found
    if not frames:
        return None
    lines = [
        "# Leaderboard",
        "",
        "Every real experiment's complete rows ranked per benchmark and metric, best first, in the direction the "
        "metric's evaluator declares (stated in each heading). `vs next`: the paired difference to the row below over "
        f"the prompts and seeds both hold, with its 95% interval (paired bootstrap over prompts, {RESAMPLES} resamples, "
        "seed 0); where the interval includes zero the two rows are tied and share a rank (`=`). Partial cells (not "
        "every image of their run) are listed, not ranked; stand-in cells (tiny random models, `results/stand-ins/`) "
        "are never here. Rebuilt after every run from `results/*/table.csv` and `scores.csv`.",
        "",
    ]
    for frame in frames:
        frame["benchmark"] = frame["benchmark"].astype(str)
    every = pd.concat(frames, ignore_index=True)
    metrics = sorted(metric_columns(every.columns))
    for benchmark in sorted(every["benchmark"].unique()):
        part = every[every["benchmark"] == benchmark]
        for metric in metrics:
            spec = metric_spec(metric)
            if spec is None or spec.higher_is_better is None:
                continue
            scored = part[part[metric].notna()] if metric in part else part.iloc[0:0]
            if not len(scored):
                continue
            complete = scored[[is_complete(r) for _, r in scored.iterrows()]]
            partial = scored[[not is_complete(r) for _, r in scored.iterrows()]]
            ranked = complete.sort_values(metric, ascending=not spec.higher_is_better, kind="stable")
            note = f"; {spec.note}" if spec.note else ""
            lines += [f"## {benchmark}: {metric} ({spec.direction}{note})", ""]
            lines += ["| rank | method | model | experiment | value | vs next |", "|---:|---|---|---|---:|---|"]
            entries = ranked_with_ties(ranked, metric, values)
            for index, entry in enumerate(entries):
                row, paired = entry["row"], entry["vs_next"]
                tied = any(e["rank"] == entry["rank"] for j, e in enumerate(entries) if j != index)
                rank = f"={entry['rank']}" if tied else str(entry["rank"])
                versus = "" if index + 1 == len(entries) else "not paired" if paired is None else paired.text()
                value = fmt_number(row[metric], 4)
                lines.append(
                    f"| {rank} | {row['method']} | {row['model']} | {row['experiment']} | {value} | {versus} |"
                )
            for _, row in partial.iterrows():
                lines.append(
                    f"| – | {row['method']} | {row['model']} | {row['experiment']} | not ranked: {row['status']} | |"
                )
            lines.append("")
    path = results_root / "leaderboard.md"
    atomic_write_text(path, "\n".join(lines))
    return path


BASELINE_METHOD = "sd"


def write_differences(results_dir: str | Path, stand_in: bool = False) -> Path | None:
    """``differences.md`` / ``.csv``: every complete cell against the SD baseline cell of its model, benchmark and
    selection, per per-image metric: the paired difference (cell - baseline) with its 95% interval (paired bootstrap
    over prompts, :data:`RESAMPLES` resamples, seed 0), marked ``real`` only when the interval excludes zero. Partial
    cells are listed, not differenced. None (and no file) when the folder has no such pair."""
    import pandas as pd

    from t2ibench.tables import STAND_IN_BANNER, is_complete

    results_dir = Path(results_dir)
    table_path = results_dir / "table.csv"
    md, csv_path = results_dir / "differences.md", results_dir / "differences.csv"
    values = per_image_values(results_dir)
    table = pd.read_csv(table_path, dtype={"config": str, "selection": str}) if table_path.is_file() else None
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    if table is not None and len(table):
        rows = [row for _, row in table.iterrows()]
        for row in rows:
            if row["method"] == BASELINE_METHOD:
                continue
            bases = [
                b
                for b in rows
                if b["method"] == BASELINE_METHOD
                and (b["model"], b["benchmark"], b["selection"]) == (row["model"], row["benchmark"], row["selection"])
            ]
            if not bases:
                continue
            base = bases[0]
            label = f"{row['model']} / {row['method']} - {BASELINE_METHOD} ({row['benchmark']})"
            if not (is_complete(row) and is_complete(base)):
                skipped.append(
                    f"{label}: not differenced ({row['status'] if not is_complete(row) else base['status']})"
                )
                continue
            for metric in sorted({k[-1] for k in values if k[:-1] == _cell_key(row, "")[:-1]}):
                mine, theirs = values.get(_cell_key(row, metric)), values.get(_cell_key(base, metric))
                paired = paired_bootstrap(mine, theirs, resamples=RESAMPLES) if mine and theirs else None
                if paired is None:
                    continue
                records.append(
                    {
                        "model": row["model"],
                        "method": row["method"],
                        "baseline": BASELINE_METHOD,
                        "benchmark": row["benchmark"],
                        "metric": metric,
                        "difference": paired.diff,
                        "ci_low": paired.low,
                        "ci_high": paired.high,
                        "real": paired.significant,
                        "prompts": paired.prompts,
                        "images": paired.images,
                        "resamples": paired.resamples,
                        "seed": paired.seed,
                    }
                )
    if not records and not skipped:
        md.unlink(missing_ok=True)
        csv_path.unlink(missing_ok=True)
        return None
    lines = [f"# {results_dir.name}: differences against the {BASELINE_METHOD} baseline", ""]
    if stand_in:
        lines += [STAND_IN_BANNER, ""]
    lines += [
        f"Each cell minus the `{BASELINE_METHOD}` cell of its model, benchmark and selection, over the prompts and "
        f"seeds both hold; 95% interval from a paired bootstrap over prompts ({RESAMPLES} resamples, seed 0). "
        "`real`: the interval excludes zero; otherwise the difference is within the noise of these prompts.",
        "",
        "| model | method | benchmark | metric | difference [95% interval] | real | prompts |",
        "|---|---|---|---|---|---|---:|",
    ]
    from t2ibench.stats import PairedDifference

    for r in records:
        shown = PairedDifference(
            r["difference"], r["ci_low"], r["ci_high"], r["prompts"], r["images"], r["resamples"], r["seed"], 0.95
        ).text(4)
        real = "yes" if r["real"] else "no (tie)"
        lines.append(
            f"| {r['model']} | {r['method']} | {r['benchmark']} | {r['metric']} | {shown} | {real} | {r['prompts']} |"
        )
    lines += ["", *(f"- {line}" for line in skipped)] if skipped else []
    atomic_write_text(md, "\n".join(lines) + "\n")
    buffer = io.StringIO()
    pd.DataFrame(records).to_csv(buffer, index=False)
    atomic_write_bytes(csv_path, buffer.getvalue().encode("utf-8"))
    return md
