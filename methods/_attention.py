"""Capturing cross-attention probabilities from a diffusers UNet, for attention-guided methods.

:class:`CrossAttentionCapture` installs, on every cross-attention module (``attn2``) of a UNet, a processor
that — while capture is active and the layer's query map has ``res x res`` pixels — computes the attention
probabilities explicitly, as the official SD-1.x code does (``softmax(Q K^T * scale)`` via diffusers'
``Attention.get_attention_scores``), keeps them per layer and head, and uses them for the layer's output, so
gradients flow through them. Everywhere else, and whenever capture is off (e.g. the classifier-free-guidance
forward), the module's original processor runs unchanged.

:func:`smoothing_kernel` is the official Attend-and-Excite "Gaussian" smoothing of a map (SepEn smooths its maps with
it too).

Maps are kept raw: (batch x heads, pixels, tokens) per layer for the last forward. Methods aggregate them as
their official code does; :meth:`CrossAttentionCapture.mean_map` is the uniform mean over every captured
(layer, head) map per sample, the A&E/SynGen ``aggregate_attention`` (layers in the order up, down, mid).

:meth:`CrossAttentionCapture.maps_of` runs a forward for its maps only, as the guidance forwards of A&E and SynGen
use it (their official code discards that forward's noise prediction): once the last ``res x res`` layer has produced
its map, the rest of the UNet (in SD-1.x the up blocks at the two highest resolutions, about a third of a forward) is
not run. The maps, and so the losses and gradients, are the same bits as after a full forward (tested against the
official parity fixtures); which layer is last is learnt from the first full forward at each latent size.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

PLACES = ("up", "down", "mid")

# The last res x res cross-attention layer of a UNet forward, per (res, latent height, latent width), learnt from a
# full forward: after it the maps are complete (see CrossAttentionCapture.maps_of).
_LAST_LAYER: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], str]] = weakref.WeakKeyDictionary()


class _MapsComplete(Exception):
    """Raised by the processor of the last captured layer to end a maps-only forward early."""


def place_of(name: str) -> str:
    """``down``/``mid``/``up`` for a UNet module name."""
    if name.startswith("down_blocks"):
        return "down"
    if name.startswith("mid_block"):
        return "mid"
    if name.startswith("up_blocks"):
        return "up"
    return "other"


class _CapturingProcessor:
    """The processor installed on one cross-attention module (see the module docstring)."""

    def __init__(self, capture: CrossAttentionCapture, name: str, original: Any):
        self.capture, self.name, self.original = capture, name, original

    def __call__(
        self,
        attn: Any,
        hidden_states: Any,
        encoder_hidden_states: Any = None,
        attention_mask: Any = None,
        temb: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        capture = self.capture
        pixels = hidden_states.shape[1] if hidden_states.ndim == 3 else hidden_states.shape[2] * hidden_states.shape[3]
        if not capture.active or encoder_hidden_states is None or pixels != capture.pixels:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if (
            hidden_states.ndim != 3
            or attn.spatial_norm is not None
            or attn.group_norm is not None
            or attn.residual_connection
        ):
            raise NotImplementedError(
                f"attention capture supports the SD-1.x/2.x transformer cross-attention only ({self.name})"
            )
        batch, length, _ = hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, encoder_hidden_states.shape[1], batch)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, attention_mask)  # (batch*heads, pixels, tokens)
        capture.maps[self.name] = probs
        if self.name == capture.stop_after:
            raise _MapsComplete
        out = attn.batch_to_head_dim(probs @ value)
        out = attn.to_out[1](attn.to_out[0](out))
        return out / attn.rescale_output_factor


def _wrap(capture: CrossAttentionCapture, name: str, proc: Any) -> Any:
    return _CapturingProcessor(capture, name.rsplit(".processor", 1)[0], proc) if ".attn2." in name else proc


class CrossAttentionCapture:
    """Keeps the cross-attention probabilities of the ``res x res`` layers of the last active forward."""

    def __init__(self, unet: Any, res: int = 16):
        self.unet = unet
        self.res = int(res)
        self.pixels = self.res * self.res
        self.active = False
        self.stop_after: str | None = None  # set by maps_of: the layer whose map completes a maps-only forward
        self.maps: dict[str, Any] = {}
        self._originals: dict[str, Any] | None = None

    def install(self) -> CrossAttentionCapture:
        """Wrap every ``attn2`` processor (idempotent)."""
        if self._originals is None:
            self._originals = dict(self.unet.attn_processors)
            self.unet.set_attn_processor({name: _wrap(self, name, proc) for name, proc in self._originals.items()})
        return self

    def remove(self) -> None:
        """Restore the original processors."""
        if self._originals is not None:
            self.unet.set_attn_processor(self._originals)
            self._originals = None
        self.maps = {}

    @contextlib.contextmanager
    def recording(self) -> Iterator[CrossAttentionCapture]:
        """Capture during the block (the maps of the previous forward are dropped first)."""
        self.maps = {}
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def maps_of(self, latents: Any, timestep: Any, encoder_hidden_states: Any) -> CrossAttentionCapture:
        """Run the UNet on ``latents`` for its ``res x res`` cross-attention maps only (see the module docstring).

        The noise prediction is not computed: the forward ends at the last captured layer (learnt from the first
        forward at this latent size, which runs in full). Gradients flow from the maps as after a full forward.
        """
        key = (self.res, *tuple(latents.shape[-2:]))
        known = _LAST_LAYER.setdefault(self.unet, {})
        with self.recording():
            self.stop_after = known.get(key)
            try:
                self.unet(latents, timestep, encoder_hidden_states=encoder_hidden_states)
            except _MapsComplete:
                pass
            finally:
                self.stop_after = None
        if key not in known and self.maps:
            known[key] = next(reversed(self.maps))  # maps are kept in the order the layers ran
        return self

    def layer_maps(self, batch_size: int) -> list[tuple[str, Any]]:
        """(layer name, maps of shape (batch, heads, res, res, tokens)) in the order up, down, mid."""
        if not self.maps:
            raise RuntimeError(
                f"no cross-attention map of {self.res}x{self.res} pixels was captured; does the UNet have such a layer at this image size?"
            )
        ordered = sorted(
            self.maps.items(),
            key=lambda item: PLACES.index(place_of(item[0])) if place_of(item[0]) in PLACES else len(PLACES),
        )
        return [(name, m.reshape(batch_size, -1, self.res, self.res, m.shape[-1])) for name, m in ordered]

    def mean_map(self, batch_size: int = 1) -> Any:
        """(batch, res, res, tokens): the mean over every captured layer and head, per sample."""
        import torch

        stacked = torch.cat(
            [m for _, m in self.layer_maps(batch_size)], dim=1
        )  # (batch, layers*heads, res, res, tokens)
        return stacked.sum(1) / stacked.shape[1]


@lru_cache(maxsize=8)
def smoothing_kernel(kernel_size: int = 3, sigma: float = 0.5) -> Any:
    """The official ``GaussianSmoothing`` kernel (2-D, normalised), shape (1, 1, k, k)."""
    import torch

    grids = torch.meshgrid(*[torch.arange(kernel_size, dtype=torch.float32)] * 2, indexing="ij")
    kernel = torch.ones(())
    mean = (kernel_size - 1) / 2
    for grid in grids:
        kernel = kernel * (1 / (sigma * math.sqrt(2 * math.pi)) * torch.exp(-(((grid - mean) / (2 * sigma)) ** 2)))
    kernel = kernel / kernel.sum()
    return kernel.view(1, 1, kernel_size, kernel_size)
