"""t2ibench: a benchmark and evaluation harness for compositional and responsible text-to-image diffusion.

The flow (see README.md): ``conf/`` (Hydra) -> ``benchmarks`` (Prompt lists) -> ``methods`` (images)
-> run store (PNG + samples.jsonl) -> ``evaluators`` (per-image score rows) -> tables under ``results/``.

The top-level folders ``benchmarks/``, ``methods/``, ``evaluators/`` and ``conf/`` of the repository are
installed as the subpackages ``t2ibench.benchmarks``, ``t2ibench.methods``, ``t2ibench.evaluators`` and
``t2ibench.conf``. Heavy libraries (torch, diffusers, transformers) are imported lazily, so importing
this package and ``t2ibench --help`` stay fast.
"""

from t2ibench.errors import T2IBenchError, UnknownNameError
from t2ibench.prompt import Prompt
from t2ibench.quiet import quiet_known_warnings

quiet_known_warnings()

__version__ = "0.1.0"
__all__ = ["Prompt", "T2IBenchError", "UnknownNameError", "__version__"]
