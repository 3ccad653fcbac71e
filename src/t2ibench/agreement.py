"""Agreement of a per-image metric with human ratings, and GenAI-Bench's per-skill means.

The statistics the VQAScore papers report for GenAI-Bench (linzhiqiu/t2v_metrics@d8ad36aa31705726f30db09958a1857a651553b0,
``dataset.py`` ``GenAIBench_Image.correlation``: every rated image in one list, "no grouping"):

- Pearson's r between the metric and the mean human rating (the official code prints ``100 * r``);
- Kendall's tau-b (pairs tied in the metric, in the ratings, or both, as in ``scipy.stats.kendalltau``);
- pairwise accuracy with tie calibration (Deutsch, Foster & Freitag, "Ties Matter: Meta-Evaluating Modern Metrics
  with Pairwise Accuracy and Tie Calibration", EMNLP 2023; google-research/mt-metrics-eval ``tau_optimization``
  with ``acc_23``): over all pairs of images, the fraction where the metric orders the pair as people do, a pair
  of equal human ratings counting as right when the metric calls it a tie; the metric calls a tie when its two
  scores differ by at most epsilon, and epsilon is the value (0 or one of the pairs' metric differences) that
  maximises the accuracy, reported beside it.

:func:`skill_means` aggregates per-prompt scores as ``genai_bench/evaluate.py`` does: the mean over the prompts of
each skill tag (the tag file has the groups ``basic`` and ``advanced`` as tags of their own), and ``overall`` over
the prompts that have any tag (the official ``all``); untagged prompts (no tag file read) count in ``overall`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# GenAI-Bench's skill tags, in the order ``genai_bench/evaluate.py`` prints them (``tag_groups``): the basic and the
# advanced skills, each group followed by its own tag (the tag file tags every prompt with its group too)
BASIC = ("attribute", "scene", "spatial relation", "action relation", "part relation")
ADVANCED = ("counting", "comparison", "differentiation", "negation", "universal")
SKILLS = (*BASIC, "basic", *ADVANCED, "advanced")


@dataclass(frozen=True)
class PairCounts:
    """Kendall's sufficient statistics over all pairs: concordant, discordant, tied only in the human ratings,
    tied only in the metric, tied in both."""

    con: int
    dis: int
    ties_human: int
    ties_metric: int
    ties_both: int

    @property
    def pairs(self) -> int:
        return self.con + self.dis + self.ties_human + self.ties_metric + self.ties_both


def _pairs(human: Any, metric: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every pair i < j (row by row, to bound memory): |metric difference|, concordant, human tie, metric tie."""
    h = np.asarray(human, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if h.shape != m.shape or h.ndim != 1:
        raise ValueError(f"human and metric scores must be two vectors of one length (got {h.shape} and {m.shape})")
    if np.isnan(h).any() or np.isnan(m).any():
        raise ValueError("human or metric scores hold NaN")
    diffs, concordant, human_tie, metric_tie = [], [], [], []
    for i in range(len(h) - 1):
        dh = h[i] - h[i + 1 :]
        dm = m[i] - m[i + 1 :]
        diffs.append(np.abs(dm))
        concordant.append(((dh > 0) & (dm > 0)) | ((dh < 0) & (dm < 0)))
        human_tie.append(dh == 0)
        metric_tie.append(dm == 0)
    if not diffs:
        empty = np.zeros(0)
        return empty, empty.astype(bool), empty.astype(bool), empty.astype(bool)
    return np.concatenate(diffs), np.concatenate(concordant), np.concatenate(human_tie), np.concatenate(metric_tie)


def pair_counts(human: Sequence[float], metric: Sequence[float]) -> PairCounts:
    """:class:`PairCounts` of two score vectors."""
    _, con, h_tie, m_tie = _pairs(human, metric)
    ties_both = int((h_tie & m_tie).sum())
    ties_human = int((h_tie & ~m_tie).sum())
    ties_metric = int((~h_tie & m_tie).sum())
    n_con = int(con.sum())
    return PairCounts(
        n_con, len(con) - n_con - ties_both - ties_human - ties_metric, ties_human, ties_metric, ties_both
    )


def kendall_tau_b(human: Sequence[float], metric: Sequence[float]) -> float:
    """Kendall's tau-b; NaN when every pair is tied in one of the two."""
    c = pair_counts(human, metric)
    untied_metric = c.pairs - c.ties_metric - c.ties_both
    untied_human = c.pairs - c.ties_human - c.ties_both
    if untied_metric == 0 or untied_human == 0:
        return float("nan")
    return float((c.con - c.dis) / np.sqrt(untied_metric) / np.sqrt(untied_human))


def pearson(human: Sequence[float], metric: Sequence[float]) -> float:
    """Pearson's r (a fraction; the official GenAI-Bench code prints 100 r)."""
    return float(np.corrcoef(np.asarray(human, dtype=np.float64), np.asarray(metric, dtype=np.float64))[0, 1])


def pairwise_accuracy(human: Sequence[float], metric: Sequence[float]) -> tuple[float, float]:
    """(accuracy, epsilon): pairwise accuracy with tie calibration (see the module docstring). Among equal best
    accuracies, the smallest epsilon."""
    diff, con, h_tie, m_tie = _pairs(human, metric)
    total = len(diff)
    if total == 0:
        return float("nan"), 0.0
    base = int(con.sum()) + int((h_tie & m_tie).sum())
    order = np.argsort(diff, kind="stable")
    diff, con, gained = diff[order], con[order], (h_tie & ~m_tie)[order]
    # a pair whose metric difference is <= epsilon becomes a metric tie: it stops being concordant, and a pair of
    # equal ratings becomes right
    correct = base - np.cumsum(con) + np.cumsum(gained)
    last = np.r_[np.flatnonzero(diff[1:] != diff[:-1]), total - 1]  # the last pair of each distinct difference
    thresholds = np.r_[0.0, diff[last]]
    accuracies = np.r_[base, correct[last]] / total
    # (pairs of equal metric scores are ties already: a leading difference 0 repeats epsilon 0 with the same accuracy)
    best = int(np.argmax(accuracies))
    return float(accuracies[best]), float(thresholds[best])


def agreement(human: Sequence[float], metric: Sequence[float]) -> dict[str, float]:
    """Pearson, Kendall's tau-b, pairwise accuracy (with its epsilon) and the number of images."""
    accuracy, epsilon = pairwise_accuracy(human, metric)
    return {
        "pearson": pearson(human, metric),
        "kendall_tau_b": kendall_tau_b(human, metric),
        "pairwise_accuracy": accuracy,
        "tie_epsilon": epsilon,
        "n": len(human),
    }


def skill_groups(skills_by_prompt: Mapping[str, Sequence[str] | None]) -> dict[str, list[str]]:
    """skill -> its prompt ids (in :data:`SKILLS` order), plus
    ``overall``: every tagged prompt, or every prompt when none is tagged."""
    groups: dict[str, list[str]] = {}
    for skill in SKILLS:
        members = [p for p, tags in skills_by_prompt.items() if tags and skill in tags]
        if members:
            groups[skill] = members
    tagged = [p for p, tags in skills_by_prompt.items() if tags]
    untagged = [p for p, tags in skills_by_prompt.items() if tags is None]
    groups["overall"] = tagged + untagged
    return groups


def skill_means(
    scores: Mapping[str, float], skills_by_prompt: Mapping[str, Sequence[str] | None]
) -> dict[str, dict[str, float]]:
    """skill -> {mean, std (ddof 1, as torch's), n} of the per-prompt ``scores`` (a prompt's images averaged
    first), for the prompts that have a score."""
    out = {}
    for skill, members in skill_groups(skills_by_prompt).items():
        values = np.array([scores[p] for p in members if p in scores], dtype=np.float64)
        if len(values):
            std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            out[skill] = {"mean": float(values.mean()), "std": std, "n": len(values)}
    return out


def agreement_by_skill(
    images: Iterable[tuple[str, float, float]], skills_by_prompt: Mapping[str, Sequence[str] | None]
) -> dict[str, dict[str, float]]:
    """skill -> :func:`agreement` over the images (prompt id, mean human rating, metric) of that skill's prompts."""
    rows = list(images)
    out = {}
    for skill, members in skill_groups(skills_by_prompt).items():
        chosen = set(members)
        picked = [(h, m) for p, h, m in rows if p in chosen]
        if len(picked) >= 2:
            human, metric = zip(*picked, strict=True)
            out[skill] = agreement(human, metric)
    return out


# -- per-skill table cells ---------------------------------------------------------------------------------------
SKILL_COLUMNS = (*(s.replace(" ", "_") for s in SKILLS), "overall")  # column suffixes: vqascore.spatial_relation


def skill_column(metric: str, skill: str) -> str:
    """The table column of ``metric`` over the prompts of ``skill`` (``vqascore.spatial_relation``)."""
    return f"{metric}.{skill.replace(' ', '_')}"


def base_metric(column: str) -> str | None:
    """``vqascore`` for a per-skill column ``vqascore.counting``; None for any other column."""
    base, _, suffix = column.rpartition(".")
    return base if base and suffix in SKILL_COLUMNS else None


def skill_cells(metrics: Sequence[str], frame: Any, samples: Sequence[Mapping[str, Any]]) -> list[Any]:
    """GenAI-Bench's per-skill means as table cells, for prompts that carry ``skills`` in their metadata (none
    otherwise): for each per-image ``metric`` column of ``frame``, the mean over each skill's prompts of the prompt's
    mean over its images, with a t-interval over prompts (``n`` counts prompts)."""
    from t2ibench.stats import mean_cell

    tagged = [r for r in samples if "skills" in (r["prompt"].get("metadata") or {})]
    if not tagged or not len(frame):
        return []
    skills = {r["prompt"]["id"]: r["prompt"]["metadata"]["skills"] for r in tagged}
    groups = skill_groups(skills)
    cells = []
    for metric in metrics:
        if metric not in frame.columns:
            continue
        values = frame[["prompt_id", metric]].dropna()
        per_prompt = values.groupby(values["prompt_id"].astype(str))[metric].mean().to_dict()
        for skill, members in groups.items():
            scores = [float(per_prompt[p]) for p in members if p in per_prompt]
            if scores:
                cells.append(mean_cell(skill_column(metric, skill), scores))
    return cells
