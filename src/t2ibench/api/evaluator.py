"""The evaluator interface: cached per-image scoring and aggregation into table cells.

Rows are keyed by (prompt_id, seed, image_sha256, eval_key). ``eval_key`` is a hash of the evaluator's
config without its runtime keys (batch size, device), plus the evaluator's ``version``: a re-run scores
only images that have no row under the current key, and a changed backbone or convention scores afresh
instead of reusing stale numbers. The configs behind each key are kept in ``scores/<name>.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from t2ibench.api.config import as_dict, follows, keys_with, option, typed
from t2ibench.api.requirements import Requirements
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import stable_hash
from t2ibench.run_store import SCORE_KEY_COLUMNS, RunStore
from t2ibench.stats import Cell, MetricSpec, mean_cell

log = logging.getLogger(__name__)


@dataclass
class EvaluatorConfig:
    """Keys every evaluator config has (none changes a number); each evaluator's schema extends it."""

    chunk_size: int = option(256, runtime=True)  # rows are written after every chunk (resumable scoring)
    device: str = option("auto", runtime=True)
    progress: bool = follows("run.progress", True, runtime=True)  # progress bar while scoring


class Evaluator:
    """Base class of evaluators.

    Subclasses set ``name``, ``metrics`` (the per-image columns that :meth:`aggregate` averages by default),
    ``metric_specs`` (units and direction of every table metric they write), ``backbone_keys`` (which keys of
    :meth:`eval_config` name the models behind the numbers: role -> (model key, revision key), dotted for nested
    keys) and ``version`` (bump it when the scoring code changes numbers), and implement :meth:`score`.
    """

    name: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()
    metric_specs: ClassVar[tuple[MetricSpec, ...]] = ()
    backbone_keys: ClassVar[dict[str, tuple[str, str | None]]] = {}
    version: ClassVar[str] = "1"
    config_schema: ClassVar[type] = EvaluatorConfig  # the evaluator's options and their defaults

    def __init__(self, cfg: Mapping[str, Any] | Any):
        # the schema's instance: every option at its type, a partial config completed with the defaults
        self.cfg = typed(self.config_schema, cfg, f"evaluator.{self.name}")

    def options(self) -> dict[str, Any]:
        """Every option as plain values (what the cell record holds)."""
        return as_dict(self.cfg)

    @property
    def runtime_keys(self) -> tuple[str, ...]:
        """The keys that never change a number (the schema's ``runtime`` fields): left out of the score key."""
        return keys_with(self.config_schema, "runtime")

    # -- keys and provenance --------------------------------------------------------------------
    def eval_config(self) -> dict[str, Any]:
        """Everything that changes the numbers (recorded with every row under :attr:`eval_key`)."""
        config = {k: v for k, v in self.options().items() if k not in self.runtime_keys}
        return {**config, "evaluator": self.name, "evaluator_version": self.version}

    @property
    def eval_key(self) -> str:
        return stable_hash(self.eval_config())

    def backbones(self) -> dict[str, str]:
        """The models behind this evaluator's numbers, ``role -> "model@revision"`` (``tiny`` = a random stand-in)."""
        config = self.eval_config()
        out = {}
        for role, (model_key, revision_key) in self.backbone_keys.items():
            model = _dotted(config, model_key)
            if model is None:
                continue
            revision = _dotted(config, revision_key) if revision_key else None
            out[role] = str(model) if model == "tiny" or not revision else f"{model}@{revision}"
        return out

    def required_weights(self) -> Requirements:
        """Hub weights this evaluator loads (``t2ibench-fetch``): by default the hub ids among :meth:`backbones`."""
        needs = Requirements()
        config = self.eval_config()
        for model_key, revision_key in self.backbone_keys.values():
            needs.add_weight(_dotted(config, model_key), _dotted(config, revision_key) if revision_key else None)
        return needs

    def stand_ins(self) -> list[str]:
        """The roles whose backbone is a tiny random stand-in (its numbers mean nothing)."""
        return [role for role, model in self.backbones().items() if model == "tiny"]

    @classmethod
    def spec(cls, metric: str) -> MetricSpec | None:
        """The declared :class:`MetricSpec` of one of this evaluator's table metrics (None if undeclared)."""
        return next((spec for spec in cls.metric_specs if spec.matches(metric)), None)

    # -- scoring --------------------------------------------------------------------------------
    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One dict of metric values per record (same order). Implemented by subclasses."""
        raise NotImplementedError

    def evaluate(self, store: RunStore, keys: Sequence[tuple[str, int]] | None = None) -> Any:
        """Score the samples of ``store`` (only ``keys`` = (prompt_id, seed) pairs, if given) that have no
        row under the current key; return their current rows.

        Rows are written after every ``chunk_size`` images (atomic rewrite), so an interrupted scoring
        resumes where it stopped.
        """
        from tqdm.auto import tqdm

        key = self.eval_key
        existing = store.read_scores(self.name)
        done = set()
        if len(existing):
            mine = existing[existing["eval_key"] == key]
            done = set(zip(mine["prompt_id"], mine["seed"].astype(int), mine["image_sha256"], strict=True))
        samples = store.samples(keys)
        todo = [r for r in samples if (r["prompt"]["id"], int(r["seed"]), r["image_sha256"]) not in done]
        # a chunk is a whole number of the evaluator's batches, so that chunk_size (when rows are written) never
        # changes which images share a forward pass, and so never a number (batched forwards differ at 1e-7)
        batch = max(1, getattr(self.cfg, "batch_size", None) or 1)  # evaluators that batch declare batch_size
        chunk = -(-max(1, self.cfg.chunk_size) // batch) * batch
        progress = tqdm(
            total=len(todo),
            desc=f"score {self.name}",
            unit="img",
            disable=not todo or not self.cfg.progress,
        )
        failed = 0
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            size = len(part)
            part, values = self._score_or_isolate(store, part, key)
            failed += size - len(part)
            rows = [
                {
                    "prompt_id": r["prompt"]["id"],
                    "seed": int(r["seed"]),
                    "image_sha256": r["image_sha256"],
                    "eval_key": key,
                    **v,
                }
                for r, v in zip(part, values, strict=True)
            ]
            if rows:
                existing = store.merge_scores(self.name, rows, key, self.eval_config())
            progress.update(size)
        progress.close()
        if todo:
            log.info("%s: scored %d new images in %s", self.name, len(todo) - failed, store.path)
        if failed:
            log.warning(
                "%s: %d image(s) could not be scored (the reasons: %s); the cell is partial until they are",
                self.name,
                failed,
                store.failures_path(self.name),
            )
        return self.current_rows(existing, samples)

    def _score_or_isolate(
        self, store: RunStore, part: list[dict[str, Any]], key: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(records, values) of one chunk. When the chunk's scoring raises, each image is scored alone: those that
        still raise are recorded with their error (``scores/<name>.failures.jsonl``) and left without a row, so the
        cell is partial and says why (a failure of every image is the evaluator's, not an image's: it is raised). Alone,
        an image's forward has no batch neighbours, so its value may differ from a batched one at 1e-7."""
        try:
            return part, self.score(store, part)
        except T2IBenchError:
            raise
        except Exception as first:
            kept, values, failures = [], [], []
            for record in part:
                try:
                    values += self.score(store, [record])
                    kept.append(record)
                except Exception as err:  # noqa: BLE001 - recorded with the image, which stays unscored
                    failures.append(
                        {
                            "prompt_id": record["prompt"]["id"],
                            "seed": int(record["seed"]),
                            "image_sha256": record["image_sha256"],
                            "eval_key": key,
                            "error": f"{type(err).__name__}: {err}",
                        }
                    )
            if not kept:
                raise first
            store.record_failures(self.name, failures)
            return kept, values

    def current_rows(self, frame: Any, samples: Sequence[Mapping[str, Any]]) -> Any:
        """Rows under the current key whose image hash is that of the current sample."""
        import pandas as pd

        if not len(frame):
            return frame
        current = {(r["prompt"]["id"], int(r["seed"])): r["image_sha256"] for r in samples}
        matches = [
            key == self.eval_key and current.get((p, int(s))) == h
            for key, p, s, h in zip(
                frame["eval_key"], frame["prompt_id"], frame["seed"], frame["image_sha256"], strict=True
            )
        ]
        mask = pd.Series(matches, index=frame.index, dtype=bool)
        return frame[mask].sort_values(SCORE_KEY_COLUMNS[:2]).reset_index(drop=True)

    # -- aggregation ----------------------------------------------------------------------------
    def aggregate(self, frame: Any) -> list[Cell]:
        """Table cells from per-image rows (default: mean and 95% CI of each of :attr:`metrics`)."""
        return [mean_cell(metric, frame[metric].tolist() if len(frame) else []) for metric in self.metrics]


def _dotted(config: Mapping[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
