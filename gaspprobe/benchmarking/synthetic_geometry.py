"""Geometry the synthetic benchmark writers share: distances between yawed 3D boxes (what VSI-Bench
derives its distances from), angles seen from above, and which objects each frame shows.

Camera transforms and projection come from :mod:`gaspprobe.scenes.geometry` (one implementation);
only the box geometry, which the scene contract does not need, lives here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

ANGLE_MARGIN = 12.0
DIST_MARGIN = 0.15
MIN_DIST = 0.3
MIN_PIXELS = 20


def box_corners_xy(objects: Sequence[Any]):
    """Footprint corners of yawed boxes. Returns float64 tensor [O, 4, 2] (counter-clockwise)."""
    import torch

    c = torch.tensor([o.center[:2] for o in objects], dtype=torch.float64).reshape(-1, 2)
    h = torch.tensor([o.size[:2] for o in objects], dtype=torch.float64).reshape(-1, 2) / 2
    yaw = torch.tensor([o.yaw for o in objects], dtype=torch.float64)
    sgn = torch.tensor([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=torch.float64)  # [4, 2]
    local = sgn[None] * h[:, None]  # [O, 4, 2]
    cs, sn = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    x = cs * local[..., 0] - sn * local[..., 1]
    y = sn * local[..., 0] + cs * local[..., 1]
    return torch.stack([x, y], -1) + c[:, None]


def _point_segment_dist(p, a, b):
    """Distances from points p [..., 2] to segments a->b [..., 2] (broadcast)."""
    import torch

    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-18)
    q = a + t.clamp(0, 1)[..., None] * ab
    return torch.linalg.norm(p - q, dim=-1)


def pairwise_box_distances(objects: Sequence[Any]):
    """Closest-point distances between every pair of yawed 3D boxes. Returns float64 [O, O] (0 on
    the diagonal and for touching/overlapping boxes)."""
    import torch

    P = box_corners_xy(objects)  # [O, 4, 2]
    A, B = P, P.roll(-1, dims=1)  # edges [O, 4, 2]
    # vertex (of i) to edge (of j) distances: [O_i, O_j, 4 vertices, 4 edges]
    d_ij = _point_segment_dist(P[:, None, :, None, :], A[None, :, None, :, :], B[None, :, None, :, :])
    d_v2e = d_ij.flatten(2).amin(-1)  # [O, O]
    dxy = torch.minimum(d_v2e, d_v2e.T)
    # separating-axis test: the footprints overlap when no edge normal separates them
    nrm = torch.stack([B[:, 0] - A[:, 0], B[:, 1] - A[:, 1]], 1)  # [O, 2 axes, 2]
    axes = torch.cat([nrm[:, None].expand(-1, len(P), -1, -1), nrm[None].expand(len(P), -1, -1, -1)], 2)  # [O,O,4,2]
    pi = torch.einsum("ikd,ijad->ijak", P, axes)  # projections of i's corners [O,O,4 axes,4]
    pj = torch.einsum("jkd,ijad->ijak", P, axes)
    sep = (pi.amax(-1) < pj.amin(-1)) | (pj.amax(-1) < pi.amin(-1))  # [O,O,4]
    dxy = torch.where(sep.any(-1), dxy, torch.zeros_like(dxy))
    z = torch.tensor([o.center[2] for o in objects], dtype=torch.float64)
    hz = torch.tensor([o.size[2] for o in objects], dtype=torch.float64) / 2
    lo, hi = z - hz, z + hz
    dz = (torch.maximum(lo[:, None], lo[None]) - torch.minimum(hi[:, None], hi[None])).clamp_min(0)
    d = torch.sqrt(dxy ** 2 + dz ** 2)
    d.fill_diagonal_(0.0)
    return d


def point_box_distances(points, objects: Sequence[Any]):
    """Distances from points [N, 3] (world) to yawed boxes. Returns float64 [N, O]."""
    import torch

    p = torch.as_tensor(points, dtype=torch.float64).reshape(-1, 3)
    c = torch.tensor([o.center for o in objects], dtype=torch.float64).reshape(-1, 3)
    h = torch.tensor([o.size for o in objects], dtype=torch.float64).reshape(-1, 3) / 2
    yaw = torch.tensor([o.yaw for o in objects], dtype=torch.float64)
    d = p[:, None] - c[None]  # [N, O, 3]
    cs, sn = torch.cos(yaw), torch.sin(yaw)
    lx = cs * d[..., 0] + sn * d[..., 1]  # rotate into the box frame (by -yaw)
    ly = -sn * d[..., 0] + cs * d[..., 1]
    local = torch.stack([lx, ly, d[..., 2]], -1).abs()
    return torch.linalg.norm((local - h[None]).clamp_min(0), dim=-1)


def signed_angle_deg(f, v):
    """Signed angle from 2D direction f to v in degrees, counter-clockwise seen from above (+z up):
    positive = to the left. f, v [..., 2]."""
    import torch

    f = torch.as_tensor(f, dtype=torch.float64)
    v = torch.as_tensor(v, dtype=torch.float64)
    cross = f[..., 0] * v[..., 1] - f[..., 1] * v[..., 0]
    dot = (f * v).sum(-1)
    return torch.rad2deg(torch.atan2(cross, dot))


def object_pixels(scene) -> "np.ndarray":
    """Pixels of each object per frame from the instance map: int64 [F, O] (columns = object order).
    Scenes without an instance map fall back to "centre projects inside the image" (1 px)."""
    import torch

    ids = [o.id for o in scene.objects]
    F = scene.num_frames
    if scene.instance is not None:
        inst = torch.as_tensor(scene.instance).long().reshape(F, -1)
        idt = torch.tensor(ids, dtype=torch.long)
        return (inst[:, None, :] == idt[None, :, None]).sum(-1).numpy()
    c = torch.tensor([o.center for o in scene.objects], dtype=torch.float64).reshape(-1, 3)
    pc = cam_points(scene.cam_to_world, c)  # [F, O, 3]
    uv = pixel_coords(pc, scene.K)
    z = pc[..., 2]
    H, W = scene.size
    ok = (z > 0) & (uv[..., 0] >= -0.5) & (uv[..., 0] < W - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] < H - 0.5)
    return ok.long().numpy() * MIN_PIXELS


def cam_points(cam_to_world, points):
    """World points [O, 3] in each camera's frame (OpenCV axes): float64 [F, O, 3]
    (:func:`gaspprobe.scenes.geometry.transform` with the inverted pose)."""
    import torch

    from gaspprobe.scenes.geometry import invert_pose, transform

    T = torch.as_tensor(cam_to_world, dtype=torch.float64)
    p = torch.as_tensor(points, dtype=torch.float64)
    return transform(invert_pose(T), p[None].expand(T.shape[0], -1, -1))


def pixel_coords(pc, K):
    """Pixel coordinates (u, v) (integer pixel centres) of camera points pc [F, O, 3] with K [F, 3, 3]:
    float64 [F, O, 2] (:func:`gaspprobe.scenes.geometry.project`; meaningless where z <= 0)."""
    import torch

    from gaspprobe.scenes.geometry import project

    return project(pc, torch.as_tensor(K, dtype=torch.float64))[0]
