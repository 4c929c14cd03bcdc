"""The adapter contract: how any VLM hands gaspprobe its image tokens, layer by layer.

Layer names are one scheme everywhere (captures, tables, plots, heads): ``"vision"`` for the
projector output as it enters the LLM, then ``"llm.0"`` ... ``"llm.{N-1}"`` for the outputs of
the N decoder layers (the raw residual stream, *before* the final norm; note that
``output_hidden_states[-1]`` is after the final norm and is not used).

A :class:`TokenGrid` says, for every spatial image token of one forward pass, which frame, row
and column it is and which pixel box of the *original* frame it covers; separator/newline and
thumbnail tokens are kept out of the grid (listed in ``extra``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Literal, Protocol, Sequence

from gaspprobe.scenes.grid import TokenGrid

__all__ = ["CAPTURE_MODES", "FeatureMode", "LayerCapture", "TokenGrid", "VLMAdapter", "layer_names"]

if TYPE_CHECKING:
    import torch

FeatureMode = Literal["hidden", "attention", "q", "k", "v", "q_rope", "k_rope"]

#: Every capture mode, in the order ``gaspprobe model inspect`` lists them.
CAPTURE_MODES: tuple[str, ...] = ("hidden", "attention", "q", "k", "v", "q_rope", "k_rope")


def layer_names(num_layers: int) -> list[str]:
    """``["vision", "llm.0", ..., "llm.{num_layers-1}"]``."""
    return ["vision"] + [f"llm.{i}" for i in range(num_layers)]


@dataclass
class LayerCapture:
    """One layer's image-token features, handed out and then dropped by the consumer.

    mode "hidden": ``feats`` float [F, rows, cols, D] (the layer's output hidden states).
    modes "q", "k", "v": ``feats`` float [F, rows, cols, heads*head_dim], the layer's projections of
    its normed input, heads concatenated, after any q/k norm and BEFORE the rotary embedding ("k" and
    "v" have the model's key/value heads, fewer than its query heads under grouped-query attention).
    modes "q_rope", "k_rope": ``feats``, the same after the rotary embedding (as the model's own
    attention function receives them; Qwen's 3-D mrope included), unscaled, key heads not repeated.
    mode "attention": ``query``/``key`` float [F, rows, cols, H*dh], rotary embeddings applied,
    key heads repeated for grouped-query attention, so that the model's own attention logits
    averaged over heads are ``query[p] . key[q] / (H * sqrt(dh))``.
    """

    name: str
    feats: "torch.Tensor | None" = None
    query: "torch.Tensor | None" = None
    key: "torch.Tensor | None" = None


class VLMAdapter(Protocol):
    """What every model family provides (one module per family in ``gaspprobe.models``)."""

    model: Any
    processor: Any
    model_id: str

    @property
    def num_layers(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    def layer_names(self) -> list[str]: ...

    def token_grid(self, frame_size: tuple[int, int], n_frames: int) -> TokenGrid:
        """The grid a forward pass of ``n_frames`` frames of ``frame_size`` would give."""
        ...

    def capture(self, frames: "torch.Tensor", *, mode: FeatureMode = "hidden",
                layers: Sequence[str] | None = None, per_frame: bool = False,
                ) -> Iterator[LayerCapture]:
        """Run ``frames`` (uint8 [F,H,W,3]) in one forward pass (or one pass per frame when
        ``per_frame``) and yield one :class:`LayerCapture` per requested layer, in order,
        never holding more than one layer's image-token features. ``self.last_grid`` is set."""
        ...

    def generate(self, batch: Sequence[tuple[Sequence[Any], str]], *, max_new_tokens: int = 16,
                 do_sample: bool = False) -> list[str]:
        """Greedy chat-template generation for a batch of (frames, prompt) samples."""
        ...

    # Also provided by every model family (gaspprobe.models.base.BaseAdapter); oracles may omit them.
    # last_grid: TokenGrid | None  -- the grid of the latest capture / image_features call
    # def image_features(self, frames_batch, layers=None, *, model=None) -> dict[str, Tensor[B,F,r,c,D]]
    #     all requested layers WITH gradients (GASP training; ``model`` = e.g. the peft-wrapped model)
    # def decoder_layers(self, model=None) -> torch.nn.ModuleList   (layer.self_attn.q_proj, ...)
    # def run_layers(self, frames, callback, *, mode, layers, per_frame) -> TokenGrid
    #     the callback form of capture (no worker thread)
