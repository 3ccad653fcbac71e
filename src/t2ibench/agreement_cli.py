"""``t2ibench-agreement RESULTS_DIR``: how well an evaluator agrees with GenAI-Bench's human ratings, and the
GenAI-Bench per-skill table of each cell.

It reads the GenAI-Bench cells of one results folder (``benchmark=genai_bench``; a cell's model label names the
released model whose ratings apply, e.g. ``model.name=DALLE_3`` for ``method=external`` over that model's images),
takes each image's score of ``--metric`` (a per-image column of ``--evaluator``, default ``vqascore``) and the mean of
the image's human ratings (``human_alignment`` in the prompt's metadata), and writes to the folder:

- ``agreement_<evaluator>_<metric>.md`` / ``.csv``: Pearson, Kendall's tau-b and pairwise accuracy with tie
  calibration over every rated image of every such cell, per skill and overall (:mod:`t2ibench.agreement`);
- ``genai_bench_<evaluator>_<metric>.md`` / ``.csv``: per cell, the mean score per skill, basic, advanced and overall,
  as ``genai_bench/evaluate.py`` prints it (an image's score; a prompt with several seeds, their mean).

Cells of models without ratings count in the skill table only. Stand-in cells are labelled as such in both files.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from t2ibench.agreement import agreement_by_skill, skill_means
from t2ibench.atomic import atomic_write_text
from t2ibench.errors import T2IBenchError
from t2ibench.stats import fmt_number

log = logging.getLogger(__name__)


def _cells(results_dir: Path, evaluator_name: str, metric: str) -> list[dict[str, Any]]:
    """Per GenAI-Bench cell (its shards together, as in the tables): its labels, whether it is a stand-in, and
    (prompt id, metadata, score) per image."""
    from t2ibench.api import EVALUATORS
    from t2ibench.run_store import RunStore
    from t2ibench.tables import cell_groups, is_stand_in, store_of

    cells = []
    for records in cell_groups(results_dir).values():
        first = records[0]
        if first["labels"]["benchmark"] != "genai_bench" or evaluator_name not in first.get("evaluators", {}):
            continue
        evaluator = EVALUATORS.get(evaluator_name)(first["evaluators"][evaluator_name])
        images = []
        for record in records:
            where = store_of(record, results_dir)
            if where is None:
                log.warning("%s: the run store %s is not found; its images are left out", results_dir, record["store"])
                continue
            store = RunStore(where)
            samples = store.samples([(p, int(s)) for p in record["prompt_ids"] for s in record["seeds"]])
            rows = evaluator.current_rows(store.read_scores(evaluator_name), samples)
            if len(rows) and metric not in rows.columns:
                raise T2IBenchError(
                    f"evaluator {evaluator_name} writes no per-image {metric!r}; its columns: "
                    + ", ".join(c for c in rows.columns if c not in ("prompt_id", "seed", "image_sha256", "eval_key"))
                )
            meta = {r["prompt"]["id"]: r["prompt"].get("metadata", {}) for r in samples}
            if len(rows):
                images += [
                    (str(p), meta.get(str(p), {}), float(v))
                    for p, v in zip(rows["prompt_id"], rows[metric], strict=True)
                ]
        cells.append({"labels": first["labels"], "stand_in": is_stand_in(first), "images": images})
    return cells


def tables(results_dir: str | Path, evaluator: str = "vqascore", metric: str | None = None) -> dict[str, Any]:
    """Build both tables (see the module docstring); returns {"agreement": frame, "skills": frame}."""
    import pandas as pd

    results_dir = Path(results_dir)
    metric = metric or evaluator
    if not (results_dir / "cells").is_dir():
        raise T2IBenchError(f"{results_dir} has no cells/: run the experiment first")
    cells = _cells(results_dir, evaluator, metric)
    if not cells:
        raise T2IBenchError(f"{results_dir}: no genai_bench cell scored by {evaluator}")
    stand_in = any(c["stand_in"] for c in cells)
    skill_rows, rated, skills_by_prompt = [], [], {}
    for cell in cells:
        by_prompt: dict[str, list[float]] = {}
        model = cell["labels"]["model"]
        for prompt_id, meta, score in cell["images"]:
            by_prompt.setdefault(prompt_id, []).append(score)
            skills_by_prompt[prompt_id] = meta.get("skills")
            ratings = (meta.get("human_alignment") or {}).get(model)
            if ratings:
                rated.append((prompt_id, sum(ratings) / len(ratings), score))
        prompt_scores = {p: sum(v) / len(v) for p, v in by_prompt.items()}
        means = skill_means(prompt_scores, {p: skills_by_prompt[p] for p in prompt_scores})
        shown = f"{model} (tiny stand-in)" if cell["stand_in"] else model  # as in every table
        row = {"model": shown, "method": cell["labels"]["method"], "stand_in": cell["stand_in"]}
        for skill, values in means.items():
            row[skill] = values["mean"]
            row[f"{skill}_n"] = values["n"]
        skill_rows.append(row)
    agreement_rows = [
        {"skill": skill, **values} for skill, values in agreement_by_skill(rated, skills_by_prompt).items()
    ]
    frames = {"agreement": pd.DataFrame(agreement_rows), "skills": pd.DataFrame(skill_rows)}
    label = " (tiny stand-in models: these numbers mean nothing)" if stand_in else ""
    title = f"{evaluator}.{metric}"
    _write(
        results_dir / f"agreement_{evaluator}_{metric}",
        frames["agreement"],
        f"Agreement of {title} with GenAI-Bench human ratings{label}",
        len(rated),
    )
    _write(
        results_dir / f"genai_bench_{evaluator}_{metric}",
        frames["skills"],
        f"GenAI-Bench per skill, {title}{label}",
        None,
    )
    return frames


def _write(stem: Path, frame: Any, title: str, n_rated: int | None) -> None:
    atomic_write_text(stem.with_suffix(".csv"), frame.to_csv(index=False))
    lines = [f"# {title}", ""]
    if n_rated is not None:
        lines += [f"{n_rated} rated images (mean of each image's human ratings, 1-5).", ""]
    if len(frame):
        columns = [c for c in frame.columns if not c.endswith("_n") and c != "stand_in"]
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for row in frame.to_dict("records"):
            cells = [str(row[c]) if isinstance(row[c], str) or c == "n" else fmt_number(row[c]) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("No rated image: the cells' model labels name none of the released models with ratings.")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2ibench-agreement", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a results/<experiment> folder with genai_bench cells")
    parser.add_argument("--evaluator", default="vqascore")
    parser.add_argument("--metric", default=None, help="a per-image column of the evaluator (default: its name)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        frames = tables(args.results, args.evaluator, args.metric)
    except T2IBenchError as err:
        print(f"t2ibench-agreement: error: {err}", file=sys.stderr)
        return 2
    overall = frames["agreement"]
    overall = overall[overall["skill"] == "overall"] if len(overall) else overall
    summary = (
        ", ".join(f"{k} {fmt_number(overall.iloc[0][k])}" for k in ("pearson", "kendall_tau_b", "pairwise_accuracy"))
        if len(overall)
        else "no rated image"
    )
    log.info("%s: %d cell(s); overall agreement: %s", args.results, len(frames["skills"]), summary)
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
