"""Safety and feedback around generating one batch: truncated-prompt warning, non-finite latents, out-of-memory
retries, and a progress bar that advances per denoising step."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from t2ibench.errors import T2IBenchError

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from t2ibench.api import Method
    from t2ibench.prompt import Prompt

log = logging.getLogger("t2ibench")


def warn_truncated_prompts(pipe: DiffusionPipeline | None, prompts: Sequence[Prompt]) -> int:
    """Log one warning naming the prompts the text encoder cuts (beyond the tokenizer's 77 positions for CLIP),
    with the words that are lost; returns how many prompts are cut."""
    tokenizer = getattr(pipe, "tokenizer", None)
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if tokenizer is None or not 0 < limit < 100_000:
        return 0
    cut = []
    for prompt in prompts:
        ids = tokenizer(prompt.text, truncation=False, verbose=False).input_ids  # the warning below says it once
        if len(ids) > limit:
            lost = tokenizer.decode(ids[limit - 1 : -1], skip_special_tokens=True)
            cut.append((prompt.id, lost))
    if cut:
        log.warning(
            "%d prompt(s) are longer than the text encoder's %d tokens and are truncated, as the pipeline does; "
            "e.g. %s loses %r",
            len(cut),
            limit,
            cut[0][0],
            cut[0][1][:120],
        )
    return len(cut)


class _NaNGuard:
    """A forward pre-hook on the VAE decoder that refuses non-finite latents (before they become black images)."""

    def __init__(self, pipe: DiffusionPipeline):
        vae = getattr(pipe, "vae", None)
        self.handle = None
        if vae is not None and hasattr(vae, "decoder"):
            self.handle = vae.decoder.register_forward_pre_hook(self._check)

    @staticmethod
    def _check(module: Any, args: tuple) -> None:
        import torch

        latents = args[0] if args else None
        if isinstance(latents, torch.Tensor) and not torch.isfinite(latents).all():
            bad = int((~torch.isfinite(latents)).flatten(1).any(1).sum())
            raise T2IBenchError(
                f"non-finite (NaN/inf) latents in {bad} of {latents.shape[0]} image(s) of this batch; nothing of it was "
                "written. Usually an fp16 overflow: try model.dtype=float32 (or bfloat16), or a smaller guidance scale"
            )

    def __enter__(self) -> _NaNGuard:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.remove()


def nan_guard(pipe: DiffusionPipeline) -> _NaNGuard:
    """``with nan_guard(pipe):`` generation stops with a clear error on NaN/inf latents."""
    return _NaNGuard(pipe)


def _is_oom(err: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(err, oom)) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def generate_with_oom_retry(
    method: Method,
    pipe: DiffusionPipeline | None,
    batch: list[Any],
    write: Callable[[list[Any], list[Any]], None],
    device: str = "",
) -> None:
    """Generate ``batch`` and ``write(batch, images)``; on out-of-memory, retry as two halves (recursively), then
    a clear error at batch size 1. Each image records the batch size it was made in (halved batches give images
    equal to the configured batch's to a few uint8 levels)."""
    import gc

    import torch

    try:
        images = method.generate(pipe, [p for p, _, _ in batch], [noise for _, _, noise in batch])
    except Exception as err:  # noqa: BLE001 - only out-of-memory errors are handled, the rest re-raised
        if not _is_oom(err):
            raise
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(batch) == 1:
            raise T2IBenchError(
                f"out of memory at batch size 1 on {device or 'the device'}; use a smaller image size, "
                "model.dtype=float16, or a device with more memory"
            ) from None
        half = len(batch) // 2
        log.warning("out of memory at batch size %d; retrying as %d + %d", len(batch), half, len(batch) - half)
        generate_with_oom_retry(method, pipe, batch[:half], write, device)
        generate_with_oom_retry(method, pipe, batch[half:], write, device)
        return
    write(batch, images)


class StepProgress:
    """Advances the progress bar per denoising step of the batch being generated (not in jumps of a batch): a
    forward hook on the denoiser counts its gradient-free calls (the sampling loop's; guidance forwards run with
    gradients) and moves the bar by ``batch / steps`` images per call, never past the batch, which is then
    settled exactly when its images are written."""

    def __init__(self, bar: Any, pipe: DiffusionPipeline, steps: int):
        self.bar, self.steps, self.batch, self.shown = bar, max(1, int(steps)), 0, 0.0
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        self.handle = denoiser.register_forward_hook(self._on_forward) if denoiser is not None else None

    def start(self, batch: int) -> None:
        self.batch, self.shown = batch, 0.0

    def _on_forward(self, *_: Any) -> None:
        import torch

        if torch.is_grad_enabled() or not self.batch:
            return
        step = min(self.batch / self.steps, self.batch * (1 - 0.5 / self.steps) - self.shown)
        if step > 0:
            self.shown += step
            self.bar.update(step)

    def written(self, images: int) -> None:
        """``images`` of the current batch were written: settle the bar to whole images (exactly: the per-step
        fractions do not add up to whole numbers in floating point, and a bar past its total warns)."""
        settled = round(self.bar.n - self.shown) + images
        self.bar.update(settled - self.bar.n)
        self.bar.n = settled
        self.shown = 0.0
        self.batch = max(0, self.batch - images)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()
        self.bar.n = round(self.bar.n)
        self.bar.close()
