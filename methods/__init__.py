"""Methods: adapters over a loaded diffusers pipeline that turn prompts and seeds into images.

Interface (:class:`t2ibench.api.Method`)::

    method = METHODS.get("sd")(method_cfg, generation_cfg)
    method.check_pipeline(pipe)                      # refuses unsupported architectures clearly
    method.prepare(pipe, prompts, cache)             # optional: methods that train (cached weights)
    images = method.generate(pipe, prompts, seeds)   # one PIL image per (prompt, seed) pair

Each method lives in one module of this package, registered with ``@METHODS.register("<name>")``
(``from t2ibench.api import METHODS``), its options a schema beside it (``config_schema``: the group option ``method=<name>``; ``conf/method/`` holds variants only). Modules whose name starts
with ``_`` are helpers shared by several methods (never registered).
"""

from t2ibench.api.registry import METHODS

__all__ = ["METHODS"]
