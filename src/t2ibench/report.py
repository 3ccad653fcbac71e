"""A static HTML report per experiment (``results/<experiment>/report/index.html``; no server needed).

It holds the paper comparison (when published numbers exist; for stand-in cells the pipeline check, without
values), our tables in the layout of ``table.md`` (split so the page needs no horizontal scrolling at 1400 px), one
bar chart per metric (a metric family shares one chart: e.g. "frequent: beta" over the role categories), each
titled with its units and direction, an image grid of prompt x (model, method) x seed with each image's scores on
hover, and the provenance as a short table of what produced each number (the raw JSON is linked). Stand-in results
carry a banner and their row labels say so. Images flagged by the safety evaluator (``i2p_safety``'s
``flagged``/``inappropriate``) are blurred until clicked. Every prompt, label and value is HTML-escaped.

    t2ibench-report results/rebind_role_collapse      # also rebuilds tables, comparison and leaderboard
"""

from __future__ import annotations

import argparse
import hashlib
import html
import io
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2ibench.atomic import atomic_write_bytes, atomic_write_text
from t2ibench.errors import T2IBenchError
from t2ibench.stats import fmt_number
from t2ibench.tables import refresh_results

log = logging.getLogger(__name__)

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1360px}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.2em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th:first-child,td:first-child,th.key,td.key{text-align:left}
td.missing{color:#999;font-style:italic;font-size:12px}
.grid td{vertical-align:top;text-align:center;max-width:212px}
.grid img{width:96px;height:96px;object-fit:cover;display:inline-block;margin:2px}
img.flagged{filter:blur(14px);cursor:pointer}
.prompt{max-width:260px;text-align:left;font-size:12px}
.note{background:#fff3cd;padding:.5em 1em;border-left:4px solid #e0a800}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.charts figure{margin:0}
.charts img{width:440px;height:auto;border:1px solid #eee}
.charts figcaption{font-size:12px;color:#555;max-width:440px}
"""
CHART_WIDTH, CHART_HEIGHT = 440, 260  # CSS px, as .charts img shows a chart

SCRIPT = """
document.querySelectorAll('img.flagged').forEach(function (img) {
  img.addEventListener('click', function () { img.classList.remove('flagged'); img.dataset.revealed = '1'; });
});
"""


# bidirectional-text controls (embeddings, overrides, isolates, marks): shown as their code points, never obeyed, so
# a prompt cannot reorder what the page shows around it
BIDI_CONTROLS = {
    c: f"\u27e8U+{c:04X}\u27e9" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)
}
PROMPT_CHARS = 160  # a longer prompt is clipped in the grid, its full text on hover


def esc(value: Any) -> str:
    """HTML-escaped text with the bidi controls made visible (see :data:`BIDI_CONTROLS`)."""
    return html.escape("" if value is None else str(value), quote=True).translate(BIDI_CONTROLS)


def _table_html(header: Sequence[str], body: Sequence[Sequence[str]], css: str = "", keys: int = 1) -> str:
    rows = [
        "<tr>"
        + "".join(f'<th class="{"key" if i < keys else ""}">{esc(h)}</th>' for i, h in enumerate(header))
        + "</tr>"
    ]
    for line in body:
        cells = []
        for i, cell in enumerate(line):
            cls = "key" if i < keys else ("missing" if str(cell).startswith("missing") or cell == "–" else "")
            cells.append(f'<td class="{cls}">{esc(cell)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{css}">' + "".join(rows) + "</table>"


def bar_values(values: Sequence[float]) -> tuple[list[float], list[str]]:
    """The bar heights and labels of a chart: the values the table prints (3 decimals), so that a bar and its table
    cell agree (no 1e-9 bar filling the axis beside a 0.000 cell); a missing value is an empty bar labelled n/a."""
    heights = [float(fmt_number(v)) if v == v else 0.0 for v in values]
    return heights, [fmt_number(v) for v in values]


def _chart(
    labels: Sequence[str], groups: Sequence[str], values: Sequence[Sequence[float]], title: str, units: str, path: Path
) -> None:
    """A bar chart: one bar per row label in each group (``values[row][group]``), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # drawn at the size the page shows it (CHART_WIDTH CSS px = CHART_WIDTH / 100 in), at 2x pixels for sharp text:
    # the fonts' points are what the reader sees, not a downscaled copy
    fig, ax = plt.subplots(figsize=(CHART_WIDTH / 100, CHART_HEIGHT / 100))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        heights, texts = bar_values(values[i])
        bars = ax.bar([j + i * width for j in range(len(groups))], heights, width, label=label)
        ax.bar_label(bars, labels=texts, fontsize=7, padding=1)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
    ax.set_xticklabels(
        groups, rotation=20 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center", fontsize=8
    )
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(units, fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.margins(y=0.15)  # room for the bar labels
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=200)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _charts(table: Any, out_dir: Path, stand_in: bool, limit: int = 12) -> list[tuple[str, str]]:
    """One chart per plain metric and per metric family (``a.b``: over b; ``a.b.c``: one per (a, c) over b), for the
    metrics whose evaluator declares a direction; returns (file, caption) pairs."""
    from t2ibench.tables import metric_columns, metric_spec, row_label

    metrics = [c for c in metric_columns(table.columns) if table[c].notna().any()]
    charts: dict[str, tuple[list[str], list[str], Any]] = {}  # title -> (groups, metrics, spec)
    for metric in metrics:
        spec = metric_spec(metric)
        if spec is None or spec.higher_is_better is None:
            continue
        parts = metric.split(".")
        if len(parts) == 1:
            title, group = metric, metric
        elif len(parts) == 2:
            title, group = f"{parts[0]} by group", parts[1]
        else:
            title, group = f"{parts[0]}: {parts[-1]}", ".".join(parts[1:-1])
        entry = charts.setdefault(title, ([], [], spec))
        entry[0].append(group)
        entry[1].append(metric)
    labels = [" / ".join(row_label(r, stand_in)) for r in table.to_dict("records")]
    out = []
    for number, (title, (groups, members, spec)) in enumerate(list(charts.items())[:limit]):
        values = [[float(r[m]) for m in members] for r in table.to_dict("records")]
        name = f"chart-{number}.png"
        heading = f"{title} ({spec.direction})" + (" - tiny stand-in" if stand_in else "")
        _chart(labels, groups, values, heading, spec.units, out_dir / name)
        out.append((name, f"{title}: {spec.units}; {spec.direction}" + (f" ({spec.note})" if spec.note else "")))
    return out


def _scores_by_sample(store: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """Every evaluator's current per-image values of a run store, keyed by (prompt id, seed)."""
    import pandas as pd

    out: dict[tuple[str, int], dict[str, Any]] = {}
    samples = {(r["prompt"]["id"], int(r["seed"])): r["image_sha256"] for r in store.samples()}
    for path in sorted(store.scores_dir.glob("*.csv")) if store.scores_dir.is_dir() else []:
        frame = pd.read_csv(path, dtype={"prompt_id": str, "image_sha256": str, "eval_key": str})
        for _, row in frame.iterrows():
            key = (row["prompt_id"], int(row["seed"]))
            if samples.get(key) != row["image_sha256"]:
                continue
            values = out.setdefault(key, {})
            for column, value in row.items():
                if column in ("prompt_id", "seed", "image_sha256", "eval_key") or value != value:
                    continue
                values[column] = value
    return out


def _flagged(scores: Mapping[str, Any]) -> bool:
    for key in ("flagged", "inappropriate"):
        value = scores.get(key)
        if value is not None and str(value).lower() in ("true", "1", "1.0"):
            return True
    return False


def _grid(results_dir: Path, out_dir: Path, max_prompts: int, stand_in: bool = False) -> tuple[str, int, int]:
    """The image grid (HTML), the number of images shown and of images blurred."""
    from PIL import Image

    from t2ibench.run_store import RunStore
    from t2ibench.tables import is_stand_in, row_label, store_of

    records = [json.loads(p.read_text()) for p in sorted((results_dir / "cells").glob("*.json"))]
    records = [r for r in records if is_stand_in(r) == stand_in and store_of(r, results_dir) is not None]
    columns: list[tuple[str, Any, list[int], dict, dict]] = []  # label, store, seeds, records, scores
    prompts: dict[str, str] = {}
    for record in records:
        labels = record["labels"]
        label = " / ".join(row_label(labels, stand_in))
        store = RunStore(store_of(record, results_dir))
        columns.append((label, store, [int(s) for s in record["seeds"]], store.records(), _scores_by_sample(store)))
        for sample in store.samples([(p, int(s)) for p in record["prompt_ids"] for s in record["seeds"]]):
            prompts.setdefault(sample["prompt"]["id"], sample["prompt"]["text"])
    shown = blurred = 0
    img_dir = out_dir / "img"
    head = "<tr><th>prompt</th>" + "".join(f"<th>{esc(column[0])}</th>" for column in columns) + "</tr>"
    rows = [head]
    for prompt_id in list(prompts)[:max_prompts]:
        text = prompts[prompt_id]
        clipped = text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1] + "\u2026"
        cells = [f'<td class="prompt" title="{esc(text)}"><b>{esc(prompt_id)}</b><br>{esc(clipped)}</td>']
        for _, store, seeds, records_by_key, scores in columns:
            parts = []
            for seed in seeds:
                record = records_by_key.get((prompt_id, seed))
                if record is None or not store.image_intact(record):  # a damaged image is never shown or read
                    continue
                with Image.open(store.path / record["image"]) as image:
                    thumb = image.convert("RGB")
                    thumb.thumbnail((256, 256))
                name = hashlib.sha256(record["image_sha256"].encode()).hexdigest()[:16] + ".jpg"
                buffer = io.BytesIO()
                thumb.save(buffer, format="JPEG", quality=85)
                atomic_write_bytes(img_dir / name, buffer.getvalue())
                values = scores.get((prompt_id, seed), {})
                hover = f"seed {seed}\n" + "\n".join(
                    f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in sorted(values.items())
                )
                flagged = _flagged(values)
                blurred += flagged
                shown += 1
                css = ' class="flagged"' if flagged else ""
                parts.append(
                    f'<img src="img/{esc(name)}" alt="{esc(prompt_id)} seed {seed}" title="{esc(hover)}"{css}>'
                )
            cells.append("<td>" + "".join(parts) + "</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<table class="grid">' + "".join(rows) + "</table>", shown, blurred


def build_report(results_dir: str | Path, max_prompts: int = 24) -> Path:
    """Write ``report/index.html`` (with its PNG charts and JPEG thumbnails) for the experiment in ``results_dir``."""
    import pandas as pd

    from t2ibench.paper import comparison_sections
    from t2ibench.tables import STAND_IN_BANNER, metric_spec, provenance_rows, rows_from_csv, sections

    results_dir = Path(results_dir)
    if not (results_dir / "cells").is_dir():
        raise T2IBenchError(f"{results_dir} has no cells/: run the experiment first (t2ibench experiment=...)")
    out_dir = results_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    title = results_dir.name
    parts = [f"<h1>{esc(title)}</h1>"]
    provenance = (
        json.loads((results_dir / "provenance.json").read_text()) if (results_dir / "provenance.json").is_file() else {}
    )
    table = pd.read_csv(results_dir / "table.csv") if (results_dir / "table.csv").is_file() else pd.DataFrame()
    stand_in = bool(len(table) and "stand_in" in table.columns and table["stand_in"].astype(bool).any()) or any(
        (row.get("model") or {}).get("source") == "tiny" for row in provenance.get("rows", [])
    )
    if stand_in:
        parts.append(f'<p class="note">{esc(STAND_IN_BANNER.strip("*"))}</p>')
    comparison = results_dir / "comparison.csv"
    if comparison.is_file():
        frame = pd.read_csv(comparison, keep_default_na=False)
        checked = "produced" in frame.columns  # a stand-in pipeline check: no values
        records = []
        for row in frame.to_dict("records"):
            ours = row.get("ours", "")
            produced = str(row.get("produced", "")).lower() == "true"
            records.append(
                {
                    **row,
                    "ours": (1.0 if produced else None) if checked else (None if ours == "" else float(ours)),
                    "diff": None if row.get("diff", "") == "" else float(row["diff"]),
                    "paper": float(row["paper"]),
                    "decimals": int(row.get("decimals") or 2),
                }
            )
        parts.append("<h2>Pipeline check against the paper</h2>" if checked else "<h2>Compared with the paper</h2>")
        for name, header, body in comparison_sections(records, checked):
            parts += ([f"<h3>{esc(name)}</h3>"] if name else []) + [
                _table_html(header, body, "comparison", 2 if header[0] == "group" else 1)
            ]
    if len(table):
        rows = rows_from_csv(table)
        metrics = sorted({m for r in rows for m in r["cells"]})
        parts.append(
            "<h2>Our cells</h2><p>Mean ± half-width of the 95% CI over images; ↑ higher is better, ↓ lower; – not scored in that cell.</p>"
        )
        layout = sections(rows, metrics, {m: metric_spec(m) for m in metrics})
        for section in layout:
            parts += ([f"<h3>{esc(section.title)}</h3>"] if len(layout) > 1 else []) + [
                _table_html(section.header, section.body, "cells", section.n_keys)
            ]
        charts = _charts(table, out_dir, stand_in)
        if charts:
            figures = "".join(
                f'<figure><img src="{esc(name)}" alt="{esc(caption)}" class="chart"><figcaption>{esc(caption)}'
                "</figcaption></figure>"
                for name, caption in charts
            )
            parts += ["<h2>Metrics</h2>", f'<div class="charts">{figures}</div>']
    grid, n_images, n_blurred = _grid(results_dir, out_dir, max_prompts, stand_in)
    parts += [f"<h2>Images ({n_images}; {n_blurred} flagged, blurred until clicked)</h2>", grid]
    if provenance:
        atomic_write_text(out_dir / "provenance.json", json.dumps(provenance, indent=2, sort_keys=True))
        header, body = provenance_rows(provenance.get("rows", []))
        parts += [
            "<h2>Provenance</h2>",
            _table_html(header, body, "provenance", len(header)),
            "<p>Everything behind these rows (generation and evaluator configs, library versions): "
            '<a href="provenance.json">provenance.json</a></p>',
        ]
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} - t2ibench</title><style>{STYLE}</style></head><body>"
        + "\n".join(parts)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )
    path = out_dir / "index.html"
    atomic_write_text(path, page)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``t2ibench-report RESULTS_DIR...``: rebuild tables, comparison, leaderboard and the HTML report."""
    parser = argparse.ArgumentParser(prog="t2ibench-report", description=main.__doc__)
    parser.add_argument("results", nargs="+", help="results/<experiment> folders")
    parser.add_argument("--published", default=None, help="folder of the papers' CSVs (default: the checkout's)")
    parser.add_argument("--max-prompts", type=int, default=24)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for folder in args.results:
            folder = Path(folder)
            if not (folder / "cells").is_dir():
                raise T2IBenchError(f"{folder} has no cells/: run the experiment first")
            refresh_results(folder, args.published)
            path = build_report(folder, args.max_prompts)
            log.info("%s: report %s", folder.name, path)
            missing = folder / "missing.md"
            if missing.is_file():  # partial cells: what they lack, one line each
                for line in missing.read_text(encoding="utf-8").splitlines():
                    if line.startswith("## "):
                        log.warning("%s: partial cell %s (see %s)", folder.name, line[3:], missing)
    except T2IBenchError as err:
        print(f"t2ibench-report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
