"""Ground-truth patch-to-patch correspondences between two frames, and per-token 3D facts.

Start with :func:`patch_matches`. Everything is batched torch over tokens (no Python loops over
patches or pixels). Token boxes are in *edge* pixel coordinates (pixel u covers [u, u + 1)); a
box centre (x, y) is the pixel-centre point (x - 0.5, y - 0.5) used with ``K``.

Choices (documented because the numbers depend on them):
- A token is represented by its box centre. Its depth is read at the *centre pixel*: the pixel
  containing the centre point (``floor`` of the edge coordinate, nearest neighbour, no
  interpolation across depth edges). The 3D point is the exact centre coordinate lifted with that
  depth. Box centres of even-sized boxes lie exactly on pixel edges, so every edge-coordinate
  lookup adds :data:`EDGE_EPS` (1e-3 px) first: a point within round-off of an edge goes to the
  right/lower pixel (and box) consistently in both frames, instead of flipping with float noise.
- Visibility in frame j: projected depth z' > 0, projected point inside the image
  (0 <= x' < W and 0 <= y' < H in edge coordinates), frame j's depth at the pixel containing the
  projected point is valid, and ``|z' - depth_j| / depth_j <= depth_tol``. The default
  ``DEPTH_TOL = 0.05`` is generous for exact synthetic depth (it only matters at depth edges and
  grazing surfaces) yet drops occluded points; LoFTR uses 0.2 for noisy ScanNet sensor depth.
- The target token is the first box of frame j (row-major order) that contains the projected
  point ``x0 <= x' < x1, y0 <= y' < y1``, found by a batched point-in-box test, so any list of
  boxes works (crops, tiles, non-uniform grids). Points in no box are dropped.
- Patch depth is the *lower* median (``torch.median`` semantics) of the valid (> 0) depths of the
  pixels whose centres lie inside the box; 0 when the box has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from gaspprobe.scenes.geometry import project, relative_pose, transform, unproject

if TYPE_CHECKING:
    from gaspprobe.scenes.types import Scene

DEPTH_TOL = 0.05
EDGE_EPS = 1e-3


@dataclass
class PatchMatches:
    """Ground-truth matches from the tokens of frame i to the tokens of frame j.

    ``src``/``tgt`` long [M]: token indices in row-major order of each frame's boxes.
    ``src_xy`` [M, 2]: the source box centre (pixel-centre coordinates, frame i).
    ``tgt_xy`` [M, 2]: where that 3D point projects in frame j (pixel-centre coordinates; inside
    the target box, not its centre).
    ``src_depth``/``tgt_depth`` [M]: patch depth (median of the box's valid pixels) of the source
    and target boxes. ``proj_depth`` [M]: z of the source point seen from camera j (a GT depth for
    a cross-view depth-consistency loss). ``n_src``: source tokens considered (all boxes of
    frame i, whether or not their centre depth is valid).
    """

    src: torch.Tensor
    tgt: torch.Tensor
    src_xy: torch.Tensor
    tgt_xy: torch.Tensor
    src_depth: torch.Tensor
    tgt_depth: torch.Tensor
    proj_depth: torch.Tensor
    n_src: int

    def __len__(self) -> int:
        return int(self.src.numel())

    def as_dense(self, n_tgt_fill: int = -1) -> torch.Tensor:
        """long [n_src]: target index per source token, ``n_tgt_fill`` where unmatched."""
        out = torch.full((self.n_src,), n_tgt_fill, dtype=torch.long)
        out[self.src] = self.tgt
        return out


# --------------------------------------------------------------------------- boxes
def regular_boxes(rows: int, cols: int, frame_size: tuple[int, int]) -> torch.Tensor:
    """[rows*cols, 4] equal boxes tiling the whole (H, W) frame, edge coordinates, row-major."""
    H, W = frame_size
    xs = torch.linspace(0, W, cols + 1, dtype=torch.float32)
    ys = torch.linspace(0, H, rows + 1, dtype=torch.float32)
    b = torch.stack(torch.broadcast_tensors(xs[None, :-1], ys[:-1, None], xs[None, 1:], ys[1:, None]), -1)
    return b.reshape(-1, 4)


def _as_boxes(b: Any, name: str) -> torch.Tensor:
    b = torch.as_tensor(b, dtype=torch.float32)
    if b.ndim < 2 or b.shape[-1] != 4:
        raise ValueError(f"{name}: expected boxes [N,4] or [rows,cols,4], got {list(b.shape)}")
    return b.reshape(-1, 4)


def _pair_boxes(grid: Any, scene: "Scene", i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resolve the ``grid`` argument of :func:`patch_matches` to (boxes_i [Ni,4], boxes_j [Nj,4])."""
    from gaspprobe.models.adapter import TokenGrid

    if isinstance(grid, TokenGrid):
        if tuple(grid.frame_size) != tuple(scene.size):
            raise ValueError(f"grid: frame_size {tuple(grid.frame_size)} != scene size {scene.size}")
        F = grid.boxes.shape[0]
        if F == 1:
            return grid.frame_boxes(0).float(), grid.frame_boxes(0).float()
        if F != scene.num_frames:
            raise ValueError(f"grid: has {F} frames; expected 1 or the scene's {scene.num_frames}")
        return grid.frame_boxes(i).float(), grid.frame_boxes(j).float()
    if isinstance(grid, tuple) and len(grid) == 2 and all(isinstance(g, int) for g in grid):
        b = regular_boxes(grid[0], grid[1], scene.size)
        return b, b
    if isinstance(grid, (tuple, list)) and len(grid) == 2:
        return _as_boxes(grid[0], "grid[0]"), _as_boxes(grid[1], "grid[1]")
    if isinstance(grid, torch.Tensor):
        b = _as_boxes(grid, "grid")
        return b, b
    raise TypeError("grid: expected a TokenGrid, (rows, cols), boxes [N,4] or (boxes_i, boxes_j); "
                    f"got {type(grid).__name__}")


def _frames_boxes(grid: Any, scene: "Scene") -> tuple[torch.Tensor, tuple[int, int]]:
    """Resolve a grid to per-frame boxes [F, rows*cols, 4] and its (rows, cols)."""
    from gaspprobe.models.adapter import TokenGrid

    F = scene.num_frames
    if isinstance(grid, TokenGrid):
        if tuple(grid.frame_size) != tuple(scene.size):
            raise ValueError(f"grid: frame_size {tuple(grid.frame_size)} != scene size {scene.size}")
        Fg, R, C = grid.shape
        if Fg not in (1, F):
            raise ValueError(f"grid: has {Fg} frames; expected 1 or the scene's {F}")
        return grid.boxes.float().reshape(Fg, R * C, 4).expand(F, R * C, 4), (R, C)
    if isinstance(grid, tuple) and len(grid) == 2 and all(isinstance(g, int) for g in grid):
        R, C = grid
        return regular_boxes(R, C, scene.size)[None].expand(F, R * C, 4), (R, C)
    if isinstance(grid, torch.Tensor) and grid.ndim in (3, 4) and grid.shape[-1] == 4:
        b = grid.float()
        if b.ndim == 3:
            b = b[None]
        if b.shape[0] not in (1, F):
            raise ValueError(f"grid: has {b.shape[0]} frames; expected 1 or the scene's {F}")
        R, C = b.shape[1:3]
        return b.reshape(b.shape[0], R * C, 4).expand(F, R * C, 4), (int(R), int(C))
    raise TypeError("grid: expected a TokenGrid, (rows, cols) or boxes [rows,cols,4] / [F,rows,cols,4]; "
                    f"got {type(grid).__name__}")


def box_centres(boxes: torch.Tensor) -> torch.Tensor:
    """[*, 4] edge-coordinate boxes -> [*, 2] centres in pixel-centre coordinates (minus 0.5)."""
    return torch.stack([(boxes[..., 0] + boxes[..., 2]) * 0.5, (boxes[..., 1] + boxes[..., 3]) * 0.5], -1) - 0.5


def _sample_nearest(depth: torch.Tensor, xy_edge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth [H,W] at the pixels containing edge-coordinate points [*, 2]; (values [*], inside [*])."""
    H, W = depth.shape
    u = torch.floor(xy_edge[..., 0] + EDGE_EPS)
    v = torch.floor(xy_edge[..., 1] + EDGE_EPS)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    ui = u.clamp(0, W - 1).long()
    vi = v.clamp(0, H - 1).long()
    d = depth.reshape(-1)[vi * W + ui]
    return torch.where(inside, d, torch.zeros_like(d)), inside


def box_median_depth(depth: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Lower median of the valid (> 0) depths of the pixels whose centres lie in each box.

    Args:
        depth: float [H, W] or [B, H, W] metres (0 = invalid).
        boxes: float [N, 4] edge coordinates (same for every depth map) or [B, N, 4].
    Returns:
        float [N] or [B, N]; 0 where a box holds no valid pixel.
    """
    squeeze = depth.ndim == 2
    if squeeze:
        depth = depth[None]
    B, H, W = depth.shape
    if boxes.ndim == 2:
        boxes = boxes[None].expand(B, -1, 4)
    N = boxes.shape[1]
    # pixel u is in [x0, x1) when its centre u + 0.5 is: u in [ceil(x0 - 0.5), ceil(x1 - 0.5))
    lo = torch.ceil(boxes[..., :2] - 0.5).clamp(min=0)
    hi = torch.ceil(boxes[..., 2:] - 0.5)
    hi = torch.stack([hi[..., 0].clamp(max=W), hi[..., 1].clamp(max=H)], -1)
    ext = (hi - lo).clamp(min=0)
    bw = int(ext[..., 0].max().item()) if N else 0
    bh = int(ext[..., 1].max().item()) if N else 0
    if N == 0 or bw == 0 or bh == 0:
        return torch.zeros((B, N) if not squeeze else (N,), dtype=depth.dtype)
    ox = torch.arange(bw)
    oy = torch.arange(bh)
    u = lo[..., 0].long()[..., None, None] + ox[None, None, None, :]  # [B,N,1,bw]
    v = lo[..., 1].long()[..., None, None] + oy[None, None, :, None]  # [B,N,bh,1]
    inb = (u < hi[..., 0].long()[..., None, None]) & (v < hi[..., 1].long()[..., None, None])
    idx = (v.clamp(max=H - 1) * W + u.clamp(max=W - 1))  # [B,N,bh,bw]
    vals = torch.gather(depth.reshape(B, 1, H * W).expand(B, N, H * W), 2, idx.reshape(B, N, -1))
    ok = inb.reshape(B, N, -1) & (vals > 0)
    n = ok.sum(-1)
    vals = torch.where(ok, vals, torch.full_like(vals, float("inf")))
    srt = vals.sort(-1).values
    k = ((n - 1).clamp(min=0)) // 2
    med = torch.gather(srt, 2, k[..., None]).squeeze(-1)
    med = torch.where(n > 0, med, torch.zeros_like(med))
    return med[0] if squeeze else med


def _in_boxes_first(xy_edge: torch.Tensor, boxes: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Index of the first box (row-major) containing each point; -1 if none. [M,2],[N,4] -> [M]."""
    out = []
    for s in range(0, max(xy_edge.shape[0], 1), chunk):  # chunks bound memory at M*N booleans
        p = xy_edge[s:s + chunk]
        x = p[:, 0:1]
        y = p[:, 1:2]
        inside = (x >= boxes[None, :, 0]) & (x < boxes[None, :, 2]) & (y >= boxes[None, :, 1]) & (y < boxes[None, :, 3])
        hit = inside.any(1)
        first = inside.to(torch.uint8).argmax(1)  # argmax returns the first maximal index
        out.append(torch.where(hit, first, torch.full_like(first, -1)))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


# --------------------------------------------------------------------------- public API
def patch_matches(scene: "Scene", i: int, j: int, grid: Any, depth_tol: float = DEPTH_TOL) -> PatchMatches:
    """Ground-truth matches from the tokens of frame ``i`` to the tokens of frame ``j``.

    Args:
        scene: the :class:`~gaspprobe.scenes.types.Scene`.
        i, j: frame indices into the scene.
        grid: the token boxes: a :class:`~gaspprobe.models.adapter.TokenGrid` (its frame axis
            indexes scene frames; a one-frame grid applies to every frame), a ``(rows, cols)``
            tuple of ints (equal boxes over the whole frame), a float tensor of boxes [N,4] or
            [rows,cols,4] used for both frames, or a pair ``(boxes_i, boxes_j)``.
        depth_tol: relative depth agreement ``|z' - depth_j| / depth_j`` for visibility
            (default :data:`DEPTH_TOL` = 0.05).
    Returns:
        :class:`PatchMatches` (M matches, M <= number of source boxes), ordered by source index.
    """
    bi, bj = _pair_boxes(grid, scene, i, j)
    F = scene.num_frames
    for name, f in (("i", i), ("j", j)):
        if not -F <= f < F:
            raise IndexError(f"{name}={f} out of range for a scene of {F} frames")
    H, W = scene.size
    depth_i = scene.depth[i].float()
    depth_j = scene.depth[j].float()
    c_edge = box_centres(bi) + 0.5                           # [Ns,2] edge coords
    d_src, _ = _sample_nearest(depth_i, c_edge)              # depth at the centre pixel
    valid = d_src > 0
    src = torch.nonzero(valid).squeeze(1)
    uv = c_edge[src] - 0.5
    x_i = unproject(uv, d_src[src], scene.K[i].float())
    T = relative_pose(scene.cam_to_world[i].double(), scene.cam_to_world[j].double())
    x_j = transform(T, x_i.double()).float()
    uv_j, z_j = project(x_j, scene.K[j].float())
    e_j = uv_j + 0.5
    dj, inside = _sample_nearest(depth_j, e_j)
    keep = inside & (z_j > 0) & (dj > 0) & ((z_j - dj).abs() <= depth_tol * dj)
    tgt = _in_boxes_first(e_j[keep] + EDGE_EPS, bj)
    k2 = tgt >= 0
    idx = torch.nonzero(keep).squeeze(1)[k2]
    src_m, tgt_m = src[idx], tgt[k2]
    return PatchMatches(
        src=src_m, tgt=tgt_m, src_xy=uv[idx], tgt_xy=uv_j[idx],
        src_depth=box_median_depth(depth_i, bi[src_m]), tgt_depth=box_median_depth(depth_j, bj[tgt_m]),
        proj_depth=z_j[idx], n_src=int(bi.shape[0]))


def token_world_points(scene: "Scene", grid: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's box-centre 3D world point (depth read at the centre pixel).

    Args:
        scene: the scene (F frames).
        grid: a TokenGrid, ``(rows, cols)``, or boxes [rows,cols,4] / [F,rows,cols,4].
    Returns:
        (xyz float32 [F, rows, cols, 3] world metres, valid bool [F, rows, cols]); invalid
        tokens (no depth at the centre pixel) have xyz = 0.
    """
    boxes, (R, C) = _frames_boxes(grid, scene)
    F, N = boxes.shape[:2]
    H, W = scene.size
    c_edge = box_centres(boxes) + 0.5                         # [F,N,2]
    u = torch.floor(c_edge[..., 0] + EDGE_EPS)
    v = torch.floor(c_edge[..., 1] + EDGE_EPS)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    idx = v.clamp(0, H - 1).long() * W + u.clamp(0, W - 1).long()
    d = torch.gather(scene.depth.float().reshape(F, H * W), 1, idx)
    valid = inside & (d > 0)
    d = torch.where(valid, d, torch.zeros_like(d))
    xyz = transform(scene.cam_to_world.double(), unproject(c_edge.double() - 0.5, d.double(), scene.K.double()))
    xyz = torch.where(valid[..., None], xyz, torch.zeros_like(xyz)).float()
    return xyz.reshape(F, R, C, 3), valid.reshape(F, R, C)


def patch_depth(scene: "Scene", grid: Any) -> torch.Tensor:
    """Median valid depth per token box (0 if none): float32 [F, rows, cols]."""
    boxes, (R, C) = _frames_boxes(grid, scene)
    F = boxes.shape[0]
    return box_median_depth(scene.depth.float(), boxes.contiguous()).reshape(F, R, C)
