"""Geometry and ground-truth matches against hand-computed cases (no renderer involved)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.scenes import (Scene, box_median_depth, invert_pose, patch_depth, patch_matches, project,
                              token_world_points, transform, unproject)

H = W = 64
FX = 50.0
CX = CY = (W - 1) / 2


def _K():
    return torch.tensor([[FX, 0, CX], [0, FX, CY], [0, 0, 1]], dtype=torch.float32)


def _scene(depths, poses):
    F = len(depths)
    return Scene(rgb=torch.zeros(F, H, W, 3, dtype=torch.uint8), depth=torch.stack(depths).float(),
                 K=_K()[None].expand(F, 3, 3).clone(), cam_to_world=torch.stack(poses).float())


def _tx(t):
    T = torch.eye(4)
    T[0, 3] = t
    return T


# ----------------------------------------------------------------------------- basic geometry
def test_unproject_project_known_values():
    uv = torch.tensor([[CX, CY], [CX + FX, CY], [0.0, 0.0]])
    d = torch.tensor([2.0, 2.0, 4.0])
    X = unproject(uv, d, _K())
    assert torch.allclose(X, torch.tensor([[0.0, 0.0, 2.0], [2.0, 0.0, 2.0], [-CX * 4 / FX, -CY * 4 / FX, 4.0]]))
    uv2, z = project(X, _K())
    assert torch.allclose(uv2, uv, atol=1e-5) and torch.allclose(z, d)


def test_transform_and_invert():
    a = math.radians(30)
    T = torch.tensor([[math.cos(a), -math.sin(a), 0, 1.0], [math.sin(a), math.cos(a), 0, 2.0],
                      [0, 0, 1, 3.0], [0, 0, 0, 1]])
    p = torch.tensor([[1.0, 0.0, 0.0]])
    assert torch.allclose(transform(T, p), torch.tensor([[1 + math.cos(a), 2 + math.sin(a), 3.0]]))
    assert torch.allclose(transform(invert_pose(T), transform(T, p)), p, atol=1e-6)


def test_leading_dims_broadcast_per_frame_camera():
    K2 = torch.stack([_K(), _K() * torch.tensor([[2.0], [2.0], [1.0]])])  # second camera: fx, cx doubled
    uv = torch.full((2, 5, 7, 2), 10.0)
    X = unproject(uv, torch.ones(2, 5, 7), K2)
    assert X.shape == (2, 5, 7, 3)
    assert torch.allclose(X[0, 0, 0, 0], torch.tensor((10 - CX) / FX))
    assert torch.allclose(X[1, 0, 0, 0], torch.tensor((10 - 2 * CX) / (2 * FX)))


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="K"):
        unproject(torch.zeros(3, 2), torch.ones(3), torch.eye(4))
    with pytest.raises(ValueError, match="depth"):
        unproject(torch.zeros(3, 2), torch.ones(4), _K())
    with pytest.raises(ValueError, match="xyz_cam"):
        project(torch.zeros(3, 2), _K())
    with pytest.raises(ValueError, match="T"):
        transform(torch.eye(3), torch.zeros(2, 3))


@settings(max_examples=60, deadline=None)
@given(u=st.floats(-50, 500), v=st.floats(-50, 500), d=st.floats(0.05, 80), fx=st.floats(20, 2000),
       fy=st.floats(20, 2000), cx=st.floats(0, 400), cy=st.floats(0, 400), skew=st.floats(-2, 2))
def test_project_unproject_roundtrip(u, v, d, fx, fy, cx, cy, skew):
    K = torch.tensor([[fx, skew, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float64)
    uv = torch.tensor([[u, v]], dtype=torch.float64)
    X = unproject(uv, torch.tensor([d], dtype=torch.float64), K)
    uv2, z = project(X, K)
    assert torch.allclose(uv2, uv, atol=1e-6, rtol=0)
    assert torch.allclose(z, torch.tensor([d], dtype=torch.float64))


# ----------------------------------------------------------------------------- patch matches
def test_identity_pose_maps_each_patch_to_itself():
    g = torch.Generator().manual_seed(1)
    d = 1 + 4 * torch.rand(H, W, generator=g)
    s = _scene([d, d], [torch.eye(4), torch.eye(4)])
    m = patch_matches(s, 0, 1, (8, 8))
    assert m.n_src == 64
    assert torch.equal(m.src, torch.arange(64)) and torch.equal(m.tgt, torch.arange(64))
    assert torch.allclose(m.tgt_xy, m.src_xy, atol=1e-4)
    # box centre (8c + 4, 8r + 4) in edge coords -> pixel-centre coords minus 0.5
    r, c = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    assert torch.allclose(m.src_xy, torch.stack([8 * c + 3.5, 8 * r + 3.5], -1).reshape(-1, 2).float())
    # proj depth = depth at the centre pixel (floor of the edge coordinate = 8c + 4)
    assert torch.allclose(m.proj_depth, d[8 * r + 4, 8 * c + 4].reshape(-1), rtol=1e-5)


@pytest.mark.parametrize("shift_px", [16.0, 10.0, 3.0])
def test_fronto_parallel_plane_shift_is_fx_t_over_d(shift_px):
    dist = 2.0
    t = shift_px * dist / FX  # camera j translated by t along x -> pixels move by -fx t / d
    d = torch.full((H, W), dist)
    s = _scene([d, d], [torch.eye(4), _tx(t)])
    m = patch_matches(s, 0, 1, (8, 8))
    assert torch.allclose(m.tgt_xy, m.src_xy - torch.tensor([shift_px, 0.0]), atol=1e-3)
    # expected target, by hand: centre edge x = 8c + 4 moves to 8c + 4 - shift
    exp = {}
    for r in range(8):
        for c in range(8):
            x = 8 * c + 4 - shift_px
            if x >= 0:
                exp[r * 8 + c] = r * 8 + int(math.floor(x / 8))
    assert m.src.tolist() == sorted(exp)
    assert m.tgt.tolist() == [exp[k] for k in sorted(exp)]
    assert torch.allclose(m.proj_depth, torch.full_like(m.proj_depth, dist))
    assert torch.allclose(m.src_depth, torch.full_like(m.src_depth, dist))


def test_known_rotation_matches_homography():
    th = math.radians(10)
    R = torch.tensor([[math.cos(th), 0, math.sin(th)], [0, 1, 0], [-math.sin(th), 0, math.cos(th)]])
    Tj = torch.eye(4)
    Tj[:3, :3] = R  # camera j = camera i rotated about its y axis, same centre
    dist = 3.0
    di = torch.full((H, W), dist)
    # frame j's depth of the plane z_i = dist, by ray casting from camera j (independent of the code)
    Kn = _K().double().numpy()
    vv, uu = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    rays_j = np.linalg.inv(Kn) @ np.stack([uu.ravel(), vv.ravel(), np.ones(H * W)])
    rays_i = R.double().numpy() @ rays_j
    dj = torch.tensor((dist / rays_i[2]).reshape(H, W), dtype=torch.float32)
    s = _scene([di, dj], [torch.eye(4), Tj])
    m = patch_matches(s, 0, 1, (8, 8))
    # pure rotation: x_j ~ K R^T K^-1 x_i (the homography of the rotation), independent of depth
    Hm = Kn @ R.double().numpy().T @ np.linalg.inv(Kn)
    r, c = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    xi = np.stack([8 * c.ravel() + 3.5, 8 * r.ravel() + 3.5, np.ones(64)])
    xj = Hm @ xi
    xj = (xj[:2] / xj[2]).T + 0.5  # edge coords
    ok = (xj[:, 0] >= 0) & (xj[:, 0] < W) & (xj[:, 1] >= 0) & (xj[:, 1] < H)
    exp_tgt = (np.floor(xj[:, 1] / 8) * 8 + np.floor(xj[:, 0] / 8)).astype(int)
    assert m.src.tolist() == np.nonzero(ok)[0].tolist()
    assert m.tgt.tolist() == exp_tgt[ok].tolist()
    assert np.allclose(m.tgt_xy.numpy(), xj[ok] - 0.5, atol=1e-3)
    assert 20 < len(m) < 64  # the rotation pushes some patches out of view


def test_occluder_in_frame_j_removes_exactly_those_matches():
    shift = 10.0
    dist = 4.0
    d = torch.full((H, W), dist)
    dj = d.clone()
    dj[16:32, 20:40] = 1.0  # an object in front, seen only in frame j (rows 16..31, cols 20..39)
    s = _scene([d, dj], [torch.eye(4), _tx(shift * dist / FX)])
    free = patch_matches(_scene([d, d], [torch.eye(4), _tx(shift * dist / FX)]), 0, 1, (8, 8))
    m = patch_matches(s, 0, 1, (8, 8))
    # by hand: source (r, c) lands at edge (8c + 4 - 10, 8r + 4); occluded if that pixel is covered
    occluded = {r * 8 + c for r in range(8) for c in range(8)
                if 20 <= 8 * c - 6 < 40 and 16 <= 8 * r + 4 < 32}
    assert occluded == {20, 21, 28, 29}  # rows 2-3, cols 4-5
    assert set(free.src.tolist()) - set(m.src.tolist()) == occluded
    assert set(m.src.tolist()) <= set(free.src.tolist())


def test_invalid_depth_and_behind_camera_drop():
    d = torch.full((H, W), 2.0)
    d[:8, :8] = 0  # token 0 has no depth
    back = torch.eye(4)
    back[0, 0] = -1
    back[2, 2] = -1  # camera j turned around (rotation by pi about y): everything is behind it
    s = _scene([d, d], [torch.eye(4), back])
    assert len(patch_matches(s, 0, 1, (8, 8))) == 0
    m = patch_matches(_scene([d, d], [torch.eye(4), torch.eye(4)]), 0, 1, (8, 8))
    assert 0 not in m.src.tolist() and len(m) == 63 and m.n_src == 64


def test_arbitrary_box_lists_and_token_grid():
    dist = 2.0
    t = 10.0 * dist / FX
    d = torch.full((H, W), dist)
    s = _scene([d, d], [torch.eye(4), _tx(t)])
    reg = patch_matches(s, 0, 1, (8, 8))
    from gaspprobe.scenes import regular_boxes

    b = regular_boxes(8, 8, (H, W))
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    m = patch_matches(s, 0, 1, (b, b[perm]))  # target boxes listed in a shuffled order
    inv = torch.argsort(perm)
    assert torch.equal(m.src, reg.src) and torch.equal(m.tgt, inv[reg.tgt])
    grid = TokenGrid.regular(2, 8, 8, (H, W))
    m2 = patch_matches(s, 0, 1, grid)
    assert torch.equal(m2.tgt, reg.tgt)
    # a crop grid: 4x4 boxes over the central 32x32 of both frames
    crop = TokenGrid.regular(1, 4, 4, (H, W), crop=(16, 16, 48, 48))
    mc = patch_matches(s, 0, 1, crop)
    # centre of crop box (r, c) at edge (16 + 8c + 4, ...) -> x - 10 -> crop column floor((8c + 10 - 16 + 16 - 16)/8)
    exp = {r * 4 + c: r * 4 + (8 * c + 4 - 10) // 8 for r in range(4) for c in range(4) if 8 * c + 4 - 10 >= 0}
    assert mc.src.tolist() == sorted(exp) and mc.tgt.tolist() == [exp[k] for k in sorted(exp)]


def test_box_median_matches_naive_reference():
    g = torch.Generator().manual_seed(3)
    d = torch.rand(2, 20, 30, generator=g) * 5
    d[d < 1.0] = 0  # some invalid pixels
    boxes = torch.tensor([[0, 0, 30, 20], [2.3, 1.6, 7.5, 9.4], [10, 10, 10.4, 10.4], [29, 19, 30, 20],
                          [-5, -5, 3, 3], [12.5, 3.5, 13.5, 4.5]], dtype=torch.float32)
    got = box_median_depth(d, boxes)
    for b in range(2):
        for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            vals = [float(d[b, v, u]) for v in range(20) for u in range(30)
                    if x0 <= u + 0.5 < x1 and y0 <= v + 0.5 < y1 and d[b, v, u] > 0]
            exp = sorted(vals)[(len(vals) - 1) // 2] if vals else 0.0
            assert got[b, k].item() == pytest.approx(exp), (b, k)


def test_token_world_points_and_patch_depth():
    dist = 2.5
    d = torch.full((H, W), dist)
    d[:8, :8] = 0
    s = _scene([d, d], [torch.eye(4), _tx(1.0)])
    xyz, valid = token_world_points(s, (8, 8))
    assert xyz.shape == (2, 8, 8, 3) and valid.shape == (2, 8, 8)
    assert not valid[:, 0, 0].any() and valid.sum() == 2 * 63
    r, c = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    ex = (8 * c + 3.5 - CX) * dist / FX
    ey = (8 * r + 3.5 - CY) * dist / FX
    assert torch.allclose(xyz[0, ..., 0][valid[0]], ex[valid[0]].float(), atol=1e-5)
    assert torch.allclose(xyz[0, ..., 1][valid[0]], ey[valid[0]].float(), atol=1e-5)
    assert torch.allclose(xyz[1, ..., 0][valid[1]], ex[valid[1]].float() + 1.0, atol=1e-5)  # camera moved +1 m
    pd = patch_depth(s, (8, 8))
    assert pd.shape == (2, 8, 8) and pd[0, 0, 0] == 0 and torch.all(pd[:, 1:, :] == dist)


def test_box_index_matches_naive_first_containing_box():
    from gaspprobe.scenes import BoxIndex

    g = torch.Generator().manual_seed(7)
    # overlapping boxes of mixed sizes, some fractional, one empty, one huge
    xy0 = torch.rand(200, 2, generator=g) * torch.tensor([100.0, 80.0])
    wh = torch.rand(200, 2, generator=g) * 25 + 0.3
    boxes = torch.cat([xy0, xy0 + wh], 1)
    boxes[5] = torch.tensor([10.0, 10.0, 10.0, 20.0])      # empty
    boxes[150] = torch.tensor([0.0, 0.0, 100.0, 80.0])     # covers everything: wins where nothing earlier does
    pts = torch.rand(3000, 2, generator=g) * torch.tensor([100.0, 80.0])
    pts[:10] = boxes[:10, :2]                               # exactly on left/top edges (inclusive)
    got = BoxIndex(boxes, (80, 100)).find(pts)
    inside = ((pts[:, None, 0] >= boxes[None, :, 0]) & (pts[:, None, 0] < boxes[None, :, 2])
              & (pts[:, None, 1] >= boxes[None, :, 1]) & (pts[:, None, 1] < boxes[None, :, 3]))
    exp = [int(torch.nonzero(r)[0]) if r.any() else -1 for r in inside]
    assert got.tolist() == exp


def test_patch_matches_many_equals_single_calls():
    from gaspprobe.scenes import generate_scene, patch_matches_many

    s = generate_scene(9, frames=4, size=64)
    grid = TokenGrid.regular(4, 5, 7, (64, 64))
    grid.boxes[2] += 1.5  # frame 2's boxes are shifted: per-frame box lists
    pairs = [(0, 1), (1, 0), (0, 3), (2, 1), (1, 2), (3, 3)]
    many = patch_matches_many(s, pairs, grid)
    for (i, j), m in zip(pairs, many):
        one = patch_matches(s, i, j, grid)
        for f in ("src", "tgt", "src_xy", "tgt_xy", "src_depth", "tgt_depth", "proj_depth"):
            assert torch.equal(getattr(m, f), getattr(one, f)), (i, j, f)
        assert m.n_src == one.n_src == 35
    assert len(many[-1]) > 0 and torch.equal(many[-1].src, many[-1].tgt)  # a frame with itself
    with pytest.raises(IndexError):
        patch_matches_many(s, [(0, 4)], (4, 4))


def test_patch_matches_many_without_patch_depths_keeps_the_matches():
    """Skipping the per-box medians (the probe's fast path) changes nothing but the depths."""
    import math

    from gaspprobe.scenes import generate_scene, patch_matches_many

    sc = generate_scene(3, frames=4, size=96)
    pairs = [(0, 1), (1, 3), (2, 0)]
    full = patch_matches_many(sc, pairs, (6, 6))
    fast = patch_matches_many(sc, pairs, (6, 6), patch_depths=False)
    for a, b in zip(full, fast):
        assert torch.equal(a.src, b.src) and torch.equal(a.tgt, b.tgt)
        assert torch.equal(a.proj_depth, b.proj_depth) and torch.equal(a.tgt_xy, b.tgt_xy)
        assert all(math.isnan(x) for x in b.src_depth.tolist() + b.tgt_depth.tolist())


def test_box_median_fast_tiling_path_equals_the_general_path():
    """The regular-tiling fast path must give exactly the general (gather) path's medians,
    with and without invalid pixels."""
    from gaspprobe.scenes import box_median_depth

    g = torch.Generator().manual_seed(0)
    depth = torch.rand(3, 24, 36, generator=g) * 5 + 0.5
    depth[0, :5, :7] = 0.0  # invalid pixels, incl. a fully invalid box
    depth[1, 3:9, 20:30] = 0.0
    grid = TokenGrid.regular(1, 4, 6, (24, 36)).boxes[0].reshape(-1, 4)  # 6x6-pixel tiles
    fast = box_median_depth(depth, grid)
    perm = torch.randperm(grid.shape[0], generator=g)
    slow = torch.empty_like(fast)
    slow[:, perm] = box_median_depth(depth, grid[perm])  # not row-major any more: the general path
    assert torch.equal(fast, slow)
    # naive reference for one box: lower median of its valid pixels
    vals = depth[1, 6:12, 24:30].reshape(-1)
    vals = vals[vals > 0].sort().values
    assert fast[1, 1 * 6 + 4] == vals[(vals.numel() - 1) // 2]
