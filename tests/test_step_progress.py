"""The per-step progress bar of a generation: it moves by fractions of a batch per sampling-loop call and lands on
whole images, exactly, when a batch is written (a bar past its total makes tqdm warn on a user's first run)."""

from __future__ import annotations

import io
import warnings
from types import SimpleNamespace

import pytest
import torch
from tqdm import tqdm

from t2ibench.generation_guards import StepProgress


@pytest.mark.parametrize(
    ("steps", "batches"), [(10, [4, 4]), (3, [2, 2, 2, 1]), (7, [3, 3, 3, 3, 3, 3, 1]), (50, [1] * 9)]
)
def test_bar_lands_on_whole_images_and_never_passes_its_total(steps, batches):
    denoiser = torch.nn.Identity()
    bar = tqdm(total=sum(batches), file=io.StringIO(), mininterval=0)
    progress = StepProgress(bar, SimpleNamespace(unet=denoiser), steps)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's "clamping frac to range [0, 1]" would fail the test
        for done, batch in enumerate(batches):
            progress.start(batch)
            with torch.no_grad():
                for _ in range(steps + 1):  # PNDM's loop runs steps + 1 times
                    denoiser(torch.zeros(1))
                    seen.append(bar.n)
            with torch.enable_grad():
                denoiser(torch.zeros(1))  # a guidance forward does not move the bar
            assert bar.n < sum(batches[: done + 1])
            progress.written(batch)
            assert bar.n == sum(batches[: done + 1])  # exactly: an int, no float residue
        progress.close()
    assert max(seen) < sum(batches) and bar.n == sum(batches)
