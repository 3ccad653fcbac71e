"""Which parameters of a model take gradients, for the duration of a block, and restored afterwards.

:func:`frozen` turns ``requires_grad`` off on every parameter of a module (then on for ``trainable`` ones) and puts
each parameter back as it was when the block ends, also on an error. The training methods use it (SepEn trains
``to_k``, ReBind a LoRA added inside the block); the attention-guided methods freeze the UNet while they take
gradients with respect to the latents only: autograd then records no parameter edges (one guided step 1 to 2%
faster on the parity UNet, the same bits: ``tests/test_attention_guidance.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any


@contextlib.contextmanager
def frozen(module: Any, trainable: Iterable[Any] = ()) -> Iterator[None]:
    """``requires_grad`` off for every parameter of ``module`` but ``trainable``; each restored on exit."""
    before = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in before:
            p.requires_grad_(False)
        for p in trainable:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in before:
            p.requires_grad_(flag)
