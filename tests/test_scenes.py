"""Scenes on disk and procedural scenes: round trips, determinism, the reader's edge cases and
bad inputs, atomic writes, and the photometric consistency of the renderer's ground truth."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gaspprobe.errors import DataError
from gaspprobe.scenes import (Scene, SceneWarning, check_scene, generate_scene, load_scene, load_scenes,
                              make_scenes, patch_matches, save_scene)
from gaspprobe.scenes.scannet import scene_to_files


@pytest.fixture(scope="module")
def tiny() -> Scene:
    return generate_scene(5, frames=3, size=64)


@pytest.fixture()
def tiny_dir(tiny, tmp_path) -> Path:
    return save_scene(tiny, tmp_path / "s0")


def _one_line(e: pytest.ExceptionInfo, must: str) -> None:
    msg = str(e.value)
    assert "\n" not in msg and must in msg, msg


# ----------------------------------------------------------------------------- generator
def test_generated_scene_contract(tiny):
    s = tiny
    assert s.rgb.shape == (3, 64, 64, 3) and s.rgb.dtype == torch.uint8
    assert s.depth.dtype == torch.float32 and bool((s.depth > 0).all())
    assert s.instance is not None and s.instance.dtype == torch.int16
    assert 4 >= 1 and 1 <= len(s.objects) <= 12
    Lx, Ly, Lz = s.room["size"]
    assert 3 <= Lx <= 10 and 3 <= Ly <= 10 and 2.5 <= Lz <= 3.2
    for o in s.objects:  # every object inside the room, on the floor unless a TV
        assert 0 < o.center[0] < Lx and 0 < o.center[1] < Ly
        if o.cls != "tv":
            assert o.center[2] == pytest.approx(o.size[2] / 2)
    # cameras inside the room, rotations orthonormal (OpenCV axes: image y points down = -z world)
    R = s.cam_to_world[:, :3, :3]
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(3, 3, 3), atol=1e-5)
    assert bool((R[:, 2, 1] < 0).all())  # camera y (down) has a negative world-z component
    t = s.cam_to_world[:, :3, 3]
    assert bool(((t > 0) & (t < torch.tensor([Lx, Ly, Lz]))).all())


def test_depth_is_exact_z_depth_of_the_room():
    # a room with no objects: every pixel's depth is the distance to a wall/floor/ceiling plane along z_cam
    s = generate_scene(11, frames=2, size=48, n_objects=(0, 0))
    from gaspprobe.scenes import pixel_grid, transform, unproject

    uv = pixel_grid(48, 48)[None].expand(2, 48, 48, 2)
    X = transform(s.cam_to_world, unproject(uv, s.depth, s.K))  # world points
    L = torch.tensor(s.room["size"])
    dist_to_plane = torch.minimum(X.abs(), (X - L).abs()).amin(-1)
    assert float(dist_to_plane.max()) < 1e-4


def test_same_seed_same_bytes_different_seed_differs():
    a = scene_to_files(generate_scene(7, frames=2, size=48))
    b = scene_to_files(generate_scene(7, frames=2, size=48))
    c = scene_to_files(generate_scene(8, frames=2, size=48))
    assert a == b
    assert a["color/0.png"] != c["color/0.png"]


def test_renderer_gt_is_photometrically_consistent():
    s = generate_scene(3, frames=4, size=96)
    for j in (1, 3):
        m = patch_matches(s, 0, j, (24, 24))
        assert len(m) > 100
        px = lambda xy: torch.floor(xy + 0.5 + 1e-3).long().clamp(0, 95)  # noqa: E731
        a = s.rgb[0].float()[px(m.src_xy[:, 1]), px(m.src_xy[:, 0])]
        b = s.rgb[j].float()[px(m.tgt_xy[:, 1]), px(m.tgt_xy[:, 0])]
        g = torch.Generator().manual_seed(j)
        rnd = s.rgb[j].float()[torch.randint(0, 96, (len(m),), generator=g), torch.randint(0, 96, (len(m),), generator=g)]
        matched = (a - b).abs().mean(1).median()
        random = (a - rnd).abs().mean(1).median()
        assert matched < 6 and matched < 0.25 * random, (matched, random)
        # the instance id agrees across the match (same surface)
        ia = s.instance[0][px(m.src_xy[:, 1]), px(m.src_xy[:, 0])]
        ib = s.instance[j][px(m.tgt_xy[:, 1]), px(m.tgt_xy[:, 0])]
        assert (ia == ib).float().mean() > 0.95


# ----------------------------------------------------------------------------- round trip
def test_save_load_roundtrip(tiny, tiny_dir):
    s2 = load_scene(tiny_dir)
    assert torch.equal(s2.rgb, tiny.rgb)
    assert float((s2.depth - tiny.depth).abs().max()) <= 0.0005 + 1e-6
    assert torch.equal(s2.cam_to_world, tiny.cam_to_world)
    assert torch.equal(s2.K, tiny.K)
    assert s2.objects == tiny.objects and s2.room == tiny.room
    assert torch.equal(s2.instance, tiny.instance)
    assert s2.frame_ids == [0, 1, 2] and s2.name == "s0"
    assert check_scene(tiny_dir) == []


def test_reader_sorts_unpadded_names_numerically(tmp_path):
    s = generate_scene(2, frames=12, size=24)
    p = save_scene(s, tmp_path / "s")
    s2 = load_scene(p)
    assert s2.frame_ids == list(range(12))  # not 0, 1, 10, 11, 2, ...
    assert torch.equal(s2.cam_to_world, s.cam_to_world)


def test_reader_resizes_depth_nearest_and_keeps_colour_K(tmp_path, tiny):
    p = save_scene(tiny, tmp_path / "s")
    for i in range(3):  # replace depth by a half-resolution map with known values
        small = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) + 1000)
        Image.fromarray(small).save(p / "depth" / f"{i}.png")
    s2 = load_scene(p)
    assert s2.depth.shape == (3, 64, 64)
    exp = (np.arange(32 * 32).reshape(32, 32) + 1000).repeat(2, 0).repeat(2, 1) / 1000.0
    assert np.allclose(s2.depth[0].numpy(), exp, atol=1e-6)
    assert torch.equal(s2.K, tiny.K)


def test_reader_skips_invalid_poses_with_one_warning(tmp_path, tiny):
    p = save_scene(tiny, tmp_path / "s")
    (p / "pose" / "1.txt").write_text("-inf -inf -inf -inf\n" * 4)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s2 = load_scene(p)
    assert s2.frame_ids == [0, 2] and s2.num_frames == 2
    assert torch.equal(s2.cam_to_world[1], tiny.cam_to_world[2])
    assert len([x for x in w if issubclass(x.category, SceneWarning)]) == 1
    assert any("invalid" in m for m in check_scene(p))


def test_reader_without_objects_json(tmp_path, tiny):
    p = save_scene(tiny, tmp_path / "s")
    (p / "objects.json").unlink()
    assert load_scene(p).objects == []


def test_load_scenes_folder_of_scenes_ignores_temp_folders(tmp_path, tiny):
    save_scene(tiny, tmp_path / "b")
    save_scene(tiny, tmp_path / "a")
    (tmp_path / ".c.tmp-123" / "color").mkdir(parents=True)  # a half-written scene
    assert [s.name for s in load_scenes(tmp_path)] == ["a", "b"]
    assert [s.name for s in load_scenes(tmp_path / "a")] == ["a"]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["no_intrinsics", "pose_not_4x4", "pose_not_numeric", "depth_8bit", "truncated_color",
                                  "garbage_depth", "missing_pose", "extra_depth", "empty", "bad_objects"])
def test_bad_inputs_give_one_line_error_naming_the_file(tmp_path, tiny, case):
    p = save_scene(tiny, tmp_path / "s")
    must = None
    if case == "no_intrinsics":
        (p / "intrinsic" / "intrinsic_color.txt").unlink()
        must = "intrinsic_color.txt"
    elif case == "pose_not_4x4":
        (p / "pose" / "2.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
        must = str(Path("pose") / "2.txt")
    elif case == "pose_not_numeric":
        (p / "pose" / "0.txt").write_text("a b c d\n" * 4)
        must = str(Path("pose") / "0.txt")
    elif case == "depth_8bit":
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(p / "depth" / "1.png")
        must = str(Path("depth") / "1.png")
    elif case == "truncated_color":
        b = (p / "color" / "1.png").read_bytes()
        (p / "color" / "1.png").write_bytes(b[: len(b) // 2])
        must = str(Path("color") / "1.png")
    elif case == "garbage_depth":
        (p / "depth" / "0.png").write_bytes(b"not a png")
        must = str(Path("depth") / "0.png")
    elif case == "missing_pose":
        (p / "pose" / "1.txt").unlink()
        must = "pose"
    elif case == "extra_depth":
        Image.fromarray(np.zeros((64, 64), np.uint16)).save(p / "depth" / "7.png")
        must = "depth"
    elif case == "empty":
        p = tmp_path / "empty"
        p.mkdir()
        must = "empty"
    elif case == "bad_objects":
        (p / "objects.json").write_text("{not json")
        must = "objects.json"
    with pytest.raises(DataError) as e:
        load_scene(p)
    _one_line(e, must)
    probs = check_scene(p)
    assert len(probs) == 1 and must in probs[0]


def test_missing_folder_and_not_a_scene(tmp_path):
    with pytest.raises(DataError) as e:
        load_scene(tmp_path / "nope")
    _one_line(e, "nope")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("hi")
    with pytest.raises(DataError) as e:
        load_scenes(tmp_path / "x")
    _one_line(e, "x")


# ----------------------------------------------------------------------------- atomic writes
def test_interrupted_save_leaves_nothing_readable(tmp_path, tiny, monkeypatch):
    import gaspprobe.scenes.scannet as sc

    real = sc.os.replace

    def boom(a, b):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(sc.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_scene(tiny, tmp_path / "s")
    monkeypatch.setattr(sc.os, "replace", real)
    assert os.listdir(tmp_path) == []  # no target, no temp folder
    with pytest.raises(DataError):
        load_scenes(tmp_path)


def test_save_refuses_to_clobber_unless_overwrite(tmp_path, tiny):
    p = save_scene(tiny, tmp_path / "s")
    with pytest.raises(DataError) as e:
        save_scene(tiny, p)
    _one_line(e, "exists")
    save_scene(tiny.subset([0]), p, overwrite=True)
    assert load_scene(p).num_frames == 1
    assert sorted(os.listdir(tmp_path)) == ["s"]


def test_make_scenes_manifest_and_rerun_is_noop(tmp_path):
    out = tmp_path / "scenes"
    paths = make_scenes(out, n_scenes=2, frames=2, size=24, seed=4)
    assert [p.name for p in paths] == ["scene0000_00", "scene0001_00"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "scenes" and m["status"] == "complete" and m["config"]["size"] == 24
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert make_scenes(out, n_scenes=2, frames=2, size=24, seed=4) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes
    ss = load_scenes(out)
    assert len(ss) == 2 and ss[0].size == (24, 24) and not torch.equal(ss[0].rgb, ss[1].rgb)
    # another config in the same folder regenerates every scene
    make_scenes(out, n_scenes=2, frames=3, size=24, seed=4)
    assert all(s.num_frames == 3 for s in load_scenes(out))


def test_jpg_colour_and_3x3_intrinsics_are_read(tmp_path, tiny):
    p = save_scene(tiny, tmp_path / "s", color_format="jpg")
    assert sorted(x.name for x in (p / "color").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    K = tiny.K[0].double().numpy()
    (p / "intrinsic" / "intrinsic_color.txt").write_text("\n".join(" ".join(f"{v:.9g}" for v in r) for r in K) + "\n")
    s2 = load_scene(p)
    assert torch.equal(s2.K, tiny.K)
    assert (s2.rgb.float() - tiny.rgb.float()).abs().mean() < 8  # lossy, but the same image


def test_check_reports_frames_without_depth(tmp_path, tiny):
    p = save_scene(tiny, tmp_path / "s")
    Image.fromarray(np.zeros((64, 64), np.uint16)).save(p / "depth" / "2.png")
    probs = check_scene(p)
    assert len(probs) == 1 and "no valid depth" in probs[0] and "depth" in probs[0]


def test_path_motion_hand_computed():
    from gaspprobe.scenes.synthetic import path_motion

    c2w = torch.eye(4).repeat(3, 1, 1)
    c2w[1, :3, 3] = torch.tensor([0.03, 0.04, 0.0])  # 5 cm
    a = math.radians(10)
    c2w[2, :3, :3] = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    c2w[2, :3, 3] = c2w[1, :3, 3]
    t, r = path_motion(c2w)
    assert t.tolist() == pytest.approx([0.05, 0.0]) and r.tolist() == pytest.approx([0.0, 10.0], abs=1e-5)


def test_video_camera_moves_like_handheld_video():
    """Median per-frame motion at 30 fps: ~8 mm and ~0.3 deg (0.25 m/s, ~10 deg/s; docs/probe.md),
    and 25 frames hold Δt = 24 in one clip."""
    from gaspprobe.scenes.synthetic import generate_scene, path_motion, scene_seed

    T, R = [], []
    for k in range(6):
        sc = generate_scene(scene_seed(0, k), frames=25, size=16, camera="video")
        t, r = path_motion(sc.cam_to_world)
        T.append(t)
        R.append(r)
    T, R = torch.cat(T), torch.cat(R)
    assert 0.006 < float(T.median()) < 0.012, float(T.median())
    assert 0.15 < float(R.median()) < 0.6, float(R.median())
    # speed is set in m/s: twice the fps halves the per-frame step
    sc = generate_scene(scene_seed(0, 0), frames=25, size=16, camera="video", fps=60.0)
    assert float(path_motion(sc.cam_to_world)[0].median()) < 0.7 * float(T.median())
    with pytest.raises(ValueError, match="camera: expected 'arc' or 'video'"):
        generate_scene(0, frames=2, size=16, camera="drone")


def test_video_camera_keeps_the_room_size():
    from gaspprobe.scenes.synthetic import generate_scene

    a = generate_scene(3, frames=4, size=16)
    v = generate_scene(3, frames=4, size=16, camera="video")
    assert a.room["size"] == v.room["size"]  # objects differ: they keep clear of another path
    assert not torch.equal(a.cam_to_world, v.cam_to_world)


def test_make_scenes_through_the_run_kernel(tmp_path):
    out = tmp_path / "s"
    make_scenes(out, n_scenes=2, frames=2, size=16, seed=1)
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "scenes" and m["status"] == "complete" and m["scenes"] == ["scene0000_00", "scene0001_00"]
    # an interrupted run of the same config keeps its finished scenes
    m["status"] = "running"
    (out / "manifest.json").write_text(json.dumps(m))
    first = (out / "scene0000_00" / "color" / "0.png").stat().st_mtime_ns
    make_scenes(out, n_scenes=2, frames=2, size=16, seed=1)
    assert (out / "scene0000_00" / "color" / "0.png").stat().st_mtime_ns == first
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    # a different config replaces the stale scenes (3 -> 1 scene: the others are gone)
    make_scenes(out, n_scenes=1, frames=2, size=16, seed=1, camera="video")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["scene0000_00"]
    assert json.loads((out / "manifest.json").read_text())["config"]["camera"] == "video"
    # a folder that is not a scenes run is refused in one line naming it
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"other: exists, is not empty and is not a gaspprobe|other: exists and is not a gaspprobe"):
        make_scenes(other, n_scenes=1, frames=2, size=16)
