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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Literal, Protocol, Sequence

if TYPE_CHECKING:
    import torch

FeatureMode = Literal["hidden", "attention", "q", "k", "v", "q_rope", "k_rope"]

#: Every capture mode, in the order ``gaspprobe model inspect`` lists them.
CAPTURE_MODES: tuple[str, ...] = ("hidden", "attention", "q", "k", "v", "q_rope", "k_rope")


def layer_names(num_layers: int) -> list[str]:
    """``["vision", "llm.0", ..., "llm.{num_layers-1}"]``."""
    return ["vision"] + [f"llm.{i}" for i in range(num_layers)]


@dataclass
class TokenGrid:
    """Where every spatial image token of a forward pass sits in the original frames.

    ``boxes`` float32 [F, rows, cols, 4] as (x0, y0, x1, y1) in *edge* pixel coordinates of the
    original frame (see :mod:`gaspprobe.scenes.types`); ``seq_index`` long [F, rows, cols] is the
    token's position in the input sequence (batch row 0), or -1 when unknown.
    ``frame_size`` is the original (H, W). ``extra`` records non-spatial tokens (e.g.
    ``{"newline": LongTensor[...]}``) so nothing is silently dropped.
    """

    boxes: "torch.Tensor"
    seq_index: "torch.Tensor"
    frame_size: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        F, R, C = self.boxes.shape[:3]
        return int(F), int(R), int(C)

    @property
    def rows(self) -> int:
        return self.shape[1]

    @property
    def cols(self) -> int:
        return self.shape[2]

    @property
    def tokens_per_frame(self) -> int:
        return self.rows * self.cols

    def frame_boxes(self, f: int) -> "torch.Tensor":
        """[rows*cols, 4] boxes of frame ``f`` in row-major token order."""
        return self.boxes[f].reshape(-1, 4)

    @classmethod
    def regular(cls, n_frames: int, rows: int, cols: int, frame_size: tuple[int, int],
                crop: tuple[float, float, float, float] | None = None) -> "TokenGrid":
        """rows x cols equal boxes tiling ``crop`` = (x0, y0, x1, y1) of each frame (default: all)."""
        import torch

        H, W = frame_size
        x0, y0, x1, y1 = crop if crop is not None else (0.0, 0.0, float(W), float(H))
        xs = torch.linspace(x0, x1, cols + 1)
        ys = torch.linspace(y0, y1, rows + 1)
        b = torch.stack(torch.broadcast_tensors(xs[None, :-1], ys[:-1, None], xs[None, 1:], ys[1:, None]), -1)
        boxes = b[None].expand(n_frames, rows, cols, 4).clone()
        seq = torch.full((n_frames, rows, cols), -1, dtype=torch.long)
        return cls(boxes=boxes.float(), seq_index=seq, frame_size=(H, W))


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
