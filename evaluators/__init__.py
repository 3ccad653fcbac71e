"""Evaluators: read a run store, write per-image score rows, aggregate them into table cells.

Interface (:class:`t2ibench.api.Evaluator`)::

    evaluator = EVALUATORS.get("clip_score")(evaluator_cfg)
    frame = evaluator.evaluate(store)      # per-image rows -> <store>/scores/clip_score.csv (cached)
    cells = evaluator.aggregate(frame)     # list[Cell]: the table columns this evaluator contributes

Each evaluator lives in one module of this package, registered with ``@EVALUATORS.register("<name>")``
(``from t2ibench.api import EVALUATORS``), its options a schema beside it (``config_schema``). A run selects them by
name: ``evaluators=[clip_score]``. Modules whose name starts with ``_`` are helpers shared by several evaluators.
"""

from t2ibench.api.registry import EVALUATORS

__all__ = ["EVALUATORS"]
