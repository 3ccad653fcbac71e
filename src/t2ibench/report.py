"""A static HTML report per experiment (``results/<experiment>/report/index.html``; no server needed).

It holds the paper comparison (when published numbers exist), the table of our cells, bar charts of the beta
metrics (or of the main metrics) drawn with matplotlib as PNG, an image grid of prompt x (model, method) x seed
with each image's scores on hover, and the provenance. Images flagged by the safety evaluator (``i2p_safety``'s
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

log = logging.getLogger(__name__)

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th:first-child,td:first-child,td.key{text-align:left}
td.missing{color:#999;font-style:italic}
.grid td{vertical-align:top;text-align:center}
.grid img{width:128px;height:128px;object-fit:cover;display:block}
img.flagged{filter:blur(14px);cursor:pointer}
.prompt{max-width:260px;text-align:left;font-size:12px}
.note{background:#fff3cd;padding:.5em 1em;border-left:4px solid #e0a800}
pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:12px}
"""

SCRIPT = """
document.querySelectorAll('img.flagged').forEach(function (img) {
  img.addEventListener('click', function () { img.classList.remove('flagged'); img.dataset.revealed = '1'; });
});
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table_html(header: Sequence[str], body: Sequence[Sequence[str]], css: str = "", keys: int = 1) -> str:
    rows = ["<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for line in body:
        cells = []
        for i, cell in enumerate(line):
            cls = "key" if i < keys else ("missing" if str(cell).startswith("missing") else "")
            cells.append(f'<td class="{cls}">{esc(cell)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{css}">' + "".join(rows) + "</table>"


def _chart(frame: Any, metrics: Sequence[str], path: Path) -> bool:
    """A grouped bar chart of ``metrics`` per table row, saved as PNG; False when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in frame.columns and frame[m].notna().any()]
    if not metrics or not len(frame):
        return False
    labels = [f"{r['model']}/{r['method']}/{r['benchmark']}" for _, r in frame.iterrows()]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(metrics) * len(labels) + 2), 3.5))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        values = [float(frame.iloc[i][m]) if frame.iloc[i][m] == frame.iloc[i][m] else 0.0 for m in metrics]
        ax.bar([j + i * width for j in range(len(metrics))], values, width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))])
    ax.set_xticklabels(metrics, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return True


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


def _grid(results_dir: Path, out_dir: Path, max_prompts: int) -> tuple[str, int, int]:
    """The image grid (HTML), the number of images shown and of images blurred."""
    from PIL import Image

    from t2ibench.run_store import RunStore

    records = [json.loads(p.read_text()) for p in sorted((results_dir / "cells").glob("*.json"))]
    columns: list[tuple[str, Any, list[int], dict, dict]] = []  # label, store, seeds, records, scores
    prompts: dict[str, str] = {}
    for record in records:
        labels = record["labels"]
        label = f"{labels['model']} / {labels['method']} / {labels['benchmark']}"
        store = RunStore(record["store"])
        columns.append((label, store, [int(s) for s in record["seeds"]], store.records(), _scores_by_sample(store)))
        for sample in store.samples([(p, int(s)) for p in record["prompt_ids"] for s in record["seeds"]]):
            prompts.setdefault(sample["prompt"]["id"], sample["prompt"]["text"])
    shown = blurred = 0
    img_dir = out_dir / "img"
    head = "<tr><th>prompt</th>" + "".join(f"<th>{esc(column[0])}</th>" for column in columns) + "</tr>"
    rows = [head]
    for prompt_id in list(prompts)[:max_prompts]:
        cells = [f'<td class="prompt"><b>{esc(prompt_id)}</b><br>{esc(prompts[prompt_id])}</td>']
        for _, store, seeds, records_by_key, scores in columns:
            parts = []
            for seed in seeds:
                record = records_by_key.get((prompt_id, seed))
                if record is None:
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

    from t2ibench.paper import comparison_table

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
    tiny = any((row.get("model") or {}).get("source") == "tiny" for row in provenance.get("rows", []))
    if tiny:
        parts.append('<p class="note">Tiny stand-in models: the numbers only check the pipeline.</p>')
    comparison = results_dir / "comparison.csv"
    if comparison.is_file():
        frame = pd.read_csv(comparison, keep_default_na=False)
        records = []
        for row in frame.to_dict("records"):
            decimals = int(row.get("decimals") or 2)
            records.append(
                {
                    **row,
                    "ours": None if row["ours"] == "" else float(row["ours"]),
                    "diff": None if row["diff"] == "" else float(row["diff"]),
                    "paper": float(row["paper"]),
                    "decimals": decimals,
                }
            )
        header, body = comparison_table(records)
        parts += [
            "<h2>Compared with the paper</h2>",
            _table_html(header, body, "comparison", 2 if header[0] == "group" else 1),
        ]
    table = pd.read_csv(results_dir / "table.csv") if (results_dir / "table.csv").is_file() else pd.DataFrame()
    if len(table):
        skip = ("_ci_low", "_ci_high", "_n")
        shown = [c for c in table.columns if not c.endswith(skip)]
        body = [
            [("" if v != v else (f"{v:.4f}" if isinstance(v, float) else v)) for v in row]
            for row in table[shown].values.tolist()
        ]
        parts += ["<h2>Our cells</h2>", _table_html(shown, body, "cells", 3)]
        metrics = [c for c in shown if c.endswith(".beta")] or [
            c for c in shown if c not in ("model", "method", "benchmark", "images", "config")
        ][:6]
        if _chart(table, metrics, out_dir / "metrics.png"):
            parts += ["<h2>Metrics</h2>", '<img src="metrics.png" alt="bar chart of the metrics" class="chart">']
    grid, n_images, n_blurred = _grid(results_dir, out_dir, max_prompts)
    parts += [f"<h2>Images ({n_images}; {n_blurred} flagged, blurred until clicked)</h2>", grid]
    parts += ["<h2>Provenance</h2>", f"<pre>{esc(json.dumps(provenance, indent=2, sort_keys=True))}</pre>"]
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
    from t2ibench.paper import repository_published_dir, write_comparison, write_leaderboard
    from t2ibench.tables import build_tables

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
            build_tables(folder, folder.name)
            published = Path(args.published) if args.published else repository_published_dir()
            records = write_comparison(folder, published / f"{folder.name}.csv")
            write_leaderboard(folder.parent)
            path = build_report(folder, args.max_prompts)
            missing = sum(r["ours"] is None for r in records or [])
            log.info(
                "%s: report %s%s", folder.name, path, f"; {missing} published numbers have no cell" if records else ""
            )
    except T2IBenchError as err:
        print(f"t2ibench-report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
