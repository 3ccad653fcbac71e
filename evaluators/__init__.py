"""Evaluators: read a run store, write per-image score rows, aggregate them into table cells.

Interface (see :class:`t2ibench.evaluators.base.Evaluator`)::

    evaluator = EVALUATORS.get("clip_score")(evaluator_cfg)
    frame = evaluator.evaluate(store)      # per-image rows -> <store>/scores/clip_score.csv (cached)
    cells = evaluator.aggregate(frame)     # list[Cell]: the table columns this evaluator contributes

Each evaluator lives in one module of this package, registered with ``@EVALUATORS.register("<name>")``, and
is described by ``conf/evaluator/<name>.yaml``. A run selects them by name: ``evaluators=[clip_score]``.
"""

from t2ibench.registry import Registry

EVALUATORS: Registry = Registry("evaluator", __name__)

__all__ = ["EVALUATORS"]
