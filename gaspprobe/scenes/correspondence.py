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
  point ``x0 <= x' < x1, y0 <= y' < y1``, found by a batched point-in-box test over a spatial
  hash of the boxes (:class:`BoxIndex`), so any list of boxes works (crops, tiles, non-uniform
  grids). Points in no box are dropped.
- Many pairs at once: :func:`patch_matches_many` shares the per-frame work; :func:`patch_matches`
  is the same computation for one pair.
- Patch depth is the *lower* median (``torch.nanmedian`` semantics) of the valid (> 0) depths of the
  pixels whose centres lie inside the box; 0 when the box has none.
"""

from __future__ import annotations

import math
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
    from gaspprobe.scenes.grid import TokenGrid

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
    from gaspprobe.scenes.grid import TokenGrid

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
    tiled = _regular_tiling(lo, ext, bw, bh, H, W)
    if tiled is not None:  # a rows x cols tiling of the frame: a view, no gather (the common case)
        R, C = tiled
        vals = depth.reshape(B, R, bh, C, bw).permute(0, 1, 3, 2, 4).reshape(B, N, bh * bw)
        if bool((vals > 0).all()):  # all valid: the plain (lower) median equals nanmedian, and is faster
            med = vals.median(-1).values
            return med[0] if squeeze else med
        ok = vals > 0
        med = torch.where(ok, vals, torch.full_like(vals, float("nan"))).nanmedian(-1).values
        med = torch.nan_to_num(med, nan=0.0)
        return med[0] if squeeze else med
    # window offsets flattened to one contiguous axis (broadcasting over a short inner axis is slow)
    oy, ox = torch.meshgrid(torch.arange(bh), torch.arange(bw), indexing="ij")
    ox, oy = ox.reshape(-1), oy.reshape(-1)                             # [K]
    lo_l = lo.long()
    base = lo_l[..., 1] * W + lo_l[..., 0]                              # [B,N]
    idx = (base[..., None] + (oy * W + ox)).clamp(max=H * W - 1)        # [B,N,K]
    vals = torch.gather(depth.reshape(B, H * W), 1, idx.reshape(B, -1)).reshape(B, N, -1)
    ok = vals > 0
    ext_l = ext.long()
    if not bool((ext_l[..., 0] == bw).all() and (ext_l[..., 1] == bh).all()):  # uneven boxes: mask the window
        ok &= (ox < ext_l[..., 0, None]) & (oy < ext_l[..., 1, None])
    # nanmedian: the lower median of the non-NaN values (NaN only when a row is all NaN)
    med = torch.where(ok, vals, torch.full_like(vals, float("nan"))).nanmedian(-1).values
    med = torch.nan_to_num(med, nan=0.0)
    return med[0] if squeeze else med


def _regular_tiling(lo: torch.Tensor, ext: torch.Tensor, bw: int, bh: int, H: int, W: int):
    """(rows, cols) when the boxes [B,N] are the row-major tiling of the whole H x W frame by equal
    bh x bw pixel blocks (the same for every B), else None."""
    if H % bh or W % bw:
        return None
    R, C = H // bh, W // bw
    if lo.shape[-2] != R * C:
        return None
    ys, xs = torch.meshgrid(torch.arange(R) * bh, torch.arange(C) * bw, indexing="ij")
    want = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).to(lo.dtype)
    if not (bool((lo == want).all()) and bool((ext[..., 0] == bw).all()) and bool((ext[..., 1] == bh).all())):
        return None
    return R, C


class BoxIndex:
    """Find, for many points, the first box (lowest index) containing each: a spatial hash.

    Boxes are bucketed into square cells about one median box side wide; a point is tested only
    against the boxes overlapping its cell (about 4 for a tiling grid), so the cost is linear in
    points and boxes for any list of boxes (crops, tiles, uneven grids), not their product.

    Args:
        boxes: float [N, 4] (x0, y0, x1, y1) edge coordinates; a box contains (x, y) when
            x0 <= x < x1 and y0 <= y < y1.
        frame_size: (H, W); points outside [0, W) x [0, H) are never looked up.
    """

    def __init__(self, boxes: torch.Tensor, frame_size: tuple[int, int]):
        H, W = frame_size
        b = boxes.float().reshape(-1, 4)
        self.boxes = b
        N = b.shape[0]
        w = (b[:, 2] - b[:, 0]).clamp(min=0)
        h = (b[:, 3] - b[:, 1]).clamp(min=0)
        nonempty = (w > 0) & (h > 0)
        side = torch.minimum(w, h)[nonempty]
        cs = float(side.median()) if side.numel() else float(max(H, W))
        self.cs = cs = max(cs, 1.0)
        self.ncx, self.ncy = ncx, ncy = max(1, math.ceil(W / cs)), max(1, math.ceil(H / cs))
        cx0 = torch.floor(b[:, 0] / cs).clamp(0, ncx - 1).long()
        cy0 = torch.floor(b[:, 1] / cs).clamp(0, ncy - 1).long()
        cx1 = (torch.ceil(b[:, 2] / cs) - 1).clamp(0, ncx - 1).long()
        cy1 = (torch.ceil(b[:, 3] / cs) - 1).clamp(0, ncy - 1).long()
        sx = (cx1 - cx0 + 1).clamp(min=1)
        sy = (cy1 - cy0 + 1).clamp(min=1)
        mx, my = (int(sx.max()), int(sy.max())) if N else (1, 1)
        ox = torch.arange(mx)[None, None, :]
        oy = torch.arange(my)[None, :, None]
        ok = nonempty[:, None, None] & (ox < sx[:, None, None]) & (oy < sy[:, None, None])   # [N,my,mx]
        cell = (cy0[:, None, None] + oy) * ncx + (cx0[:, None, None] + ox)
        box = torch.arange(N)[:, None, None].expand_as(cell)
        cell, box = cell[ok], box[ok]
        order = torch.argsort(cell * max(N, 1) + box)          # by cell, then box index
        cell, box = cell[order], box[order]
        ncell = ncx * ncy
        counts = torch.bincount(cell, minlength=ncell)
        start = torch.cumsum(counts, 0) - counts
        rank = torch.arange(cell.numel()) - start[cell]
        self.cmax = cmax = max(int(counts.max()) if counts.numel() else 0, 1)
        table = torch.full((ncell, cmax), -1, dtype=torch.long)
        table[cell, rank] = box
        self.table = table

    def find(self, xy: torch.Tensor) -> torch.Tensor:
        """long [M]: the first box containing each edge-coordinate point [M, 2]; -1 if none."""
        if xy.shape[0] == 0:
            return torch.zeros(0, dtype=torch.long)
        cx = torch.floor(xy[:, 0] / self.cs).clamp(0, self.ncx - 1).long()
        cy = torch.floor(xy[:, 1] / self.cs).clamp(0, self.ncy - 1).long()
        cand = self.table[cy * self.ncx + cx]                   # [M,cmax], ascending, -1 padded
        bb = self.boxes[cand.clamp(min=0)]                      # [M,cmax,4]
        x = xy[:, 0:1]
        y = xy[:, 1:2]
        inside = (cand >= 0) & (x >= bb[..., 0]) & (x < bb[..., 2]) & (y >= bb[..., 1]) & (y < bb[..., 3])
        first = inside.to(torch.uint8).argmax(1)  # the first True: the lowest box index
        hit = inside.any(1)
        return torch.where(hit, cand.gather(1, first[:, None]).squeeze(1), torch.full_like(first, -1))


# --------------------------------------------------------------------------- public API
def _same_for_all_frames(b: torch.Tensor) -> bool:
    return b.shape[0] == 1 or b.stride(0) == 0 or bool((b == b[:1]).all())


def _match_core(scene: "Scene", pairs: torch.Tensor, src_boxes: torch.Tensor, tgt_boxes: torch.Tensor,
                depth_tol: float, patch_depths: bool = True) -> list[PatchMatches]:
    """Batched GT matches for ``pairs`` long [P, 2] with per-frame boxes [F, Ns, 4] / [F, Nt, 4].

    ``patch_depths=False`` skips the per-box median depths (about half the cost) and fills
    ``src_depth``/``tgt_depth`` with NaN, for callers (the probe) that never read them."""
    F = scene.num_frames
    H, W = scene.size
    P = pairs.shape[0]
    Ns = src_boxes.shape[1]
    ii, jj = pairs[:, 0], pairs[:, 1]
    used_i = torch.unique(ii)
    used_j = torch.unique(jj)
    depth = scene.depth.float()
    # source side, once per source frame: centre depth, world point, patch depth
    c_edge = box_centres(src_boxes[used_i]) + 0.5                       # [Fi,Ns,2]
    u = torch.floor(c_edge[..., 0] + EDGE_EPS)
    v = torch.floor(c_edge[..., 1] + EDGE_EPS)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    pix = v.clamp(0, H - 1).long() * W + u.clamp(0, W - 1).long()
    d_src = torch.gather(depth[used_i].reshape(-1, H * W), 1, pix)
    d_src = torch.where(inside, d_src, torch.zeros_like(d_src))
    x_cam = unproject(c_edge - 0.5, d_src, scene.K[used_i].float())    # [Fi,Ns,3]
    c2w = scene.cam_to_world.double()
    x_w = transform(c2w[used_i], x_cam.double())                        # world, float64
    med_src = (box_median_depth(depth[used_i], src_boxes[used_i].contiguous()) if patch_depths
               else torch.full((used_i.numel(), Ns), float("nan")))  # [Fi,Ns]
    slot_i = torch.full((F,), -1, dtype=torch.long)
    slot_i[used_i] = torch.arange(used_i.numel())
    si = slot_i[ii]
    # project every pair's source points into its target camera
    w2c = torch.linalg.inv(c2w[jj])                                     # [P,4,4]
    x_j = transform(w2c, x_w[si]).float()                                # [P,Ns,3]
    uv_j, z_j = project(x_j, scene.K[jj].float())
    e_j = uv_j + 0.5 + EDGE_EPS
    uj = torch.floor(e_j[..., 0])
    vj = torch.floor(e_j[..., 1])
    in_j = (uj >= 0) & (uj < W) & (vj >= 0) & (vj < H)
    pj = vj.clamp(0, H - 1).long() * W + uj.clamp(0, W - 1).long()
    dj = depth.reshape(-1)[jj[:, None] * (H * W) + pj]                   # [P,Ns], no [P,H*W] copy
    keep = (d_src[si] > 0) & in_j & (z_j > 0) & (dj > 0) & ((z_j - dj).abs() <= depth_tol * dj)
    pk, nk = torch.nonzero(keep, as_tuple=True)                          # pair-major order
    pts = e_j[pk, nk]
    # target token: first box containing the point (one spatial index per distinct box list)
    tgt = torch.full((pk.numel(),), -1, dtype=torch.long)
    if _same_for_all_frames(tgt_boxes):
        tgt = BoxIndex(tgt_boxes[0], (H, W)).find(pts)
    else:
        jk = jj[pk]
        for f in used_j.tolist():
            sel = torch.nonzero(jk == f).squeeze(1)
            tgt[sel] = BoxIndex(tgt_boxes[f], (H, W)).find(pts[sel])
    ok = tgt >= 0
    pk, nk, tgt = pk[ok], nk[ok], tgt[ok]
    slot_j = torch.full((F,), -1, dtype=torch.long)
    if not patch_depths:
        med_tgt = torch.full((F, tgt_boxes.shape[1]), float("nan"))
        slot_j = torch.arange(F)
    elif tgt_boxes is src_boxes:  # same boxes: reuse the source frames' medians where possible
        med_all = torch.zeros(F, Ns)
        med_all[used_i] = med_src
        todo = used_j[slot_i[used_j] < 0]
        if todo.numel():
            med_all[todo] = box_median_depth(depth[todo], src_boxes[todo].contiguous())
        med_tgt, slot_j = med_all, torch.arange(F)
    else:
        med_tgt = box_median_depth(depth[used_j], tgt_boxes[used_j].contiguous())  # [Fj,Nt]
        slot_j[used_j] = torch.arange(used_j.numel())
    src_xy = (c_edge - 0.5)[si[pk], nk]
    tgt_xy = uv_j[pk, nk]
    src_depth = med_src[si[pk], nk]
    tgt_depth = med_tgt[slot_j[jj[pk]], tgt]
    proj = z_j[pk, nk]
    counts = torch.bincount(pk, minlength=P).tolist()
    parts = [t.split(counts) for t in (nk, tgt, src_xy, tgt_xy, src_depth, tgt_depth, proj)]
    return [PatchMatches(src=a, tgt=b, src_xy=c, tgt_xy=d, src_depth=e, tgt_depth=f, proj_depth=g, n_src=Ns)
            for a, b, c, d, e, f, g in zip(*parts)]


def _check_frames(scene: "Scene", pairs: torch.Tensor) -> torch.Tensor:
    F = scene.num_frames
    if pairs.numel() and (int(pairs.min()) < -F or int(pairs.max()) >= F):
        bad = pairs[(pairs < -F) | (pairs >= F)][0]
        raise IndexError(f"frame {int(bad)} out of range for a scene of {F} frames")
    return pairs % F if F else pairs


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
        Identical to the corresponding element of :func:`patch_matches_many`.
    """
    pairs = _check_frames(scene, torch.tensor([[int(i), int(j)]], dtype=torch.long))
    bi, bj = _pair_boxes(grid, scene, int(pairs[0, 0]), int(pairs[0, 1]))
    F = scene.num_frames
    return _match_core(scene, pairs, bi[None].expand(F, -1, 4), bj[None].expand(F, -1, 4), depth_tol)[0]


def patch_matches_many(scene: "Scene", pairs: Any, grid: Any, depth_tol: float = DEPTH_TOL, *,
                       patch_depths: bool = True) -> list[PatchMatches]:
    """:func:`patch_matches` for many frame pairs at once (the fast path for probes and training).

    Per-frame work (centre depths, world points, patch-depth medians, the box index) is done once
    per frame, and the projection of all pairs is one batched computation.

    Args:
        scene: the scene.
        pairs: long [P, 2] or a list of (i, j).
        grid: a TokenGrid, ``(rows, cols)``, or boxes [N,4] / [rows,cols,4] / [F,rows,cols,4]
            (the same box list for source and target; use :func:`patch_matches` for a pair of lists).
        depth_tol: as in :func:`patch_matches`.
        patch_depths: False skips the per-box medians (``src_depth``/``tgt_depth`` become NaN);
            matches, pixel positions and ``proj_depth`` are unchanged.
    Returns:
        One :class:`PatchMatches` per pair, in order.
    """
    pt = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
    pt = _check_frames(scene, pt)
    if isinstance(grid, torch.Tensor) and grid.ndim == 2:
        grid = grid[None]  # [N,4] -> one row of N boxes
    boxes, _ = _frames_boxes(grid, scene)
    return _match_core(scene, pt, boxes, boxes, depth_tol, patch_depths)


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
