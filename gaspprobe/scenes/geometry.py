"""Pure, batched torch camera geometry: unproject, transform, project.

Conventions (see :mod:`gaspprobe.scenes.types`): OpenCV camera axes (x right, y down, z forward),
``K`` with integer pixel centres, depth is z-depth in metres. Transforms are named by the frames
they map between: ``cam_to_world`` maps camera coordinates to world coordinates.

Broadcasting: the camera tensors (``K`` [*C, 3, 3], ``T`` [*C, 4, 4]) carry leading dims ``*C``
that are aligned with the *leading* dims of the point tensor, so ``K`` [F,3,3] works with points
[F,N,2] or [F,H,W,2], and a single ``K`` [3,3] works with anything. This is the usual "one camera
per frame, many points per frame" layout; numpy's trailing alignment would need the caller to
insert singleton dims by hand.
"""

from __future__ import annotations

import torch


def _check(x: torch.Tensor, name: str, last: tuple[int, ...]) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    n = len(last)
    if x.ndim < n or tuple(x.shape[x.ndim - n:]) != last:
        want = ",".join(["*"] + [str(s) for s in last])
        raise ValueError(f"{name}: expected shape [{want}], got {list(x.shape)}")


def _apply(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``M @ x`` for matrices M [*C, a, b] and points x [*C, ..., b] -> [*C, ..., a].

    The points between *C and the coordinate axis are flattened into one axis so that this is a
    single batched matmul over *C (not one tiny 3x3 product per point)."""
    lead = M.ndim - 2
    if lead > x.ndim - 1:
        raise ValueError(f"camera tensor has {lead} leading dims but the points only {x.ndim - 1}")
    xs = x.reshape(x.shape[:lead] + (-1, x.shape[-1]))
    y = xs @ M.transpose(-1, -2)
    return y.reshape(x.shape[:-1] + (M.shape[-2],))


def unproject(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Lift pixels to camera-frame 3D points: ``X = depth * K^-1 [u, v, 1]^T``.

    Args:
        uv: float [*, 2] pixel coordinates with integer pixel centres (pixel (u, v) centre at (u, v)).
        depth: float [*] z-depth in metres (same leading dims as ``uv``).
        K: float [*C, 3, 3] intrinsics; *C aligned with the leading dims of ``uv``.
    Returns:
        float [*, 3] points in the camera frame (OpenCV axes); their z equals ``depth``.
    """
    _check(uv, "uv", (2,))
    _check(K, "K", (3, 3))
    if tuple(depth.shape) != tuple(uv.shape[:-1]):
        raise ValueError(f"depth: expected shape {list(uv.shape[:-1])} (uv without its last dim), "
                         f"got {list(depth.shape)}")
    Kinv = torch.linalg.inv(K.to(torch.float64)).to(uv.dtype)
    ones = torch.ones_like(uv[..., :1])
    rays = _apply(Kinv, torch.cat([uv, ones], -1))  # [*, 3], z == 1
    return rays * depth.unsqueeze(-1)


def transform(T: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """Apply a rigid/affine 4x4 transform: ``y = R x + t``.

    Args:
        T: float [*C, 4, 4] (e.g. ``cam_to_world``); *C aligned with the leading dims of ``xyz``.
        xyz: float [*, 3].
    Returns:
        float [*, 3].
    """
    _check(T, "T", (4, 4))
    _check(xyz, "xyz", (3,))
    T = T.to(xyz.dtype)
    y = _apply(T[..., :3, :3], xyz)
    t = T[..., :3, 3]
    return y + t.reshape(t.shape[:-1] + (1,) * (xyz.ndim - 1 - (T.ndim - 2)) + (3,))


def project(xyz_cam: torch.Tensor, K: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Project camera-frame points to pixels.

    Args:
        xyz_cam: float [*, 3] points in the camera frame (OpenCV axes).
        K: float [*C, 3, 3]; *C aligned with the leading dims of ``xyz_cam``.
        eps: |z| below this is treated as eps (keeping its sign) to avoid division by zero.
    Returns:
        (uv float [*, 2] with integer pixel centres, z float [*] the point's z-depth). Points with
        z <= 0 are behind the camera and get meaningless ``uv``: callers mask with ``z > 0``.
    """
    _check(xyz_cam, "xyz_cam", (3,))
    _check(K, "K", (3, 3))
    p = _apply(K.to(xyz_cam.dtype), xyz_cam)
    z = xyz_cam[..., 2]
    w = p[..., 2]
    w = torch.where(w.abs() < eps, torch.full_like(w, eps) * torch.where(w < 0, -1.0, 1.0), w)
    return p[..., :2] / w.unsqueeze(-1), z


def invert_pose(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms [*, 4, 4] (R^T, -R^T t), exact for orthonormal R."""
    _check(T, "T", (4, 4))
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ t
    out[..., 3, 3] = 1
    return out


def relative_pose(cam_to_world_i: torch.Tensor, cam_to_world_j: torch.Tensor) -> torch.Tensor:
    """``cam_j_from_cam_i = inv(cam_to_world_j) @ cam_to_world_i``, computed in float64.

    Shapes [*, 4, 4] -> [*, 4, 4] (dtype of the inputs)."""
    _check(cam_to_world_i, "cam_to_world_i", (4, 4))
    _check(cam_to_world_j, "cam_to_world_j", (4, 4))
    a = cam_to_world_i.to(torch.float64)
    b = cam_to_world_j.to(torch.float64)
    return (torch.linalg.inv(b) @ a).to(cam_to_world_i.dtype)


def pixel_grid(H: int, W: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[H, W, 2] pixel-centre coordinates (u, v) = (column, row)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=dtype), torch.arange(W, dtype=dtype), indexing="ij")
    return torch.stack([u, v], -1)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """OpenCV cam_to_world [*, 4, 4] for cameras at ``eye`` [*, 3] looking at ``target`` [*, 3]
    (world z-up by default; image y points down, i.e. towards -up)."""
    _check(eye, "eye", (3,))
    _check(target, "target", (3,))
    if up is None:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.cross(z, up.expand_as(z), dim=-1)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.cross(z, x, dim=-1)
    T = torch.zeros(eye.shape[:-1] + (4, 4), dtype=eye.dtype)
    T[..., :3, 0] = x
    T[..., :3, 1] = y
    T[..., :3, 2] = z
    T[..., :3, 3] = eye
    T[..., 3, 3] = 1
    return T
