"""TokenGrid: which pixels of which frame every image token of a forward pass covers.

It lives with the scene contract (the scenes package computes ground-truth correspondences on it;
models produce it), so scenes never import models. ``gaspprobe.models.adapter`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


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
