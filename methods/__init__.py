"""Methods: adapters over a loaded diffusers pipeline that turn prompts and seeds into images.

Interface (see :class:`t2ibench.methods.base.Method`)::

    method = METHODS.get("sd")(method_cfg, generation_cfg)
    method.check_pipeline(pipe)                      # refuses unsupported architectures clearly
    method.prepare(pipe, prompts, cache)             # optional: methods that train (cached weights)
    images = method.generate(pipe, prompts, seeds)   # one PIL image per (prompt, seed) pair

Each method lives in one module of this package, registered with ``@METHODS.register("<name>")``, and is
described by ``conf/method/<name>.yaml``.
"""

from t2ibench.registry import Registry

METHODS: Registry = Registry("method", __name__)

__all__ = ["METHODS"]
