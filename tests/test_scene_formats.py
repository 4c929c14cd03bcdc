"""Scene formats: every registered format round-trips a synthetic scene through its test writer
(laid out as the dataset lays it out), one hand-computed case per format (a known rotation, axis
flip or pixel-centre shift, written by hand here, not by the writers), and the bad inputs of
issue 17 (one-line DataError naming the file and field, or one warning and a skipped frame)."""

from __future__ import annotations

import gzip
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gaspprobe.errors import DataError
from gaspprobe.scenes import SceneWarning, generate_scene, load_scenes, patch_matches
from gaspprobe.scenes.formats import FORMATS
from gaspprobe.scenes.index import detect, find_scenes

H, W = 48, 64
# per-format settings a round trip needs (fixed-intrinsics datasets, names detection relies on);
# a newly registered format gets the defaults and its round trip runs with no edit here
SPEC = {
    "tartanair": {"fov": 90.0},  # fx = 320 W / 640: 90 degrees horizontal
    "hypersim": {"fov": 60.0, "name": "ai_001_001"},
    "dl3dv": {"name": "0" * 8 + "a1b2c3d4" * 7},  # DL3DV scene folders are 64-hex-digit hashes
    "co3dv2": {"name": "apple/110_13051_23361"},
    "arkitscenes": {"name": "41069025"},
}
DEPTH_ATOL = {"co3dv2": lambda d: d * 2.0 ** -10 + 1e-6,  # float16 bits
              "hypersim": lambda d: d * 1e-5 + 1e-6, "tartanair": lambda d: 1e-7, "dl3dv": lambda d: 1e-7}
PAIRS = [(0, 1), (0, 3), (2, 1), (3, 0)]
GRIDS = [(6, 8), (3, 4)]


def _one_line(e: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def _png16(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(a, dtype=np.uint16)).save(path)


def _rgb(path: Path, h: int = H, w: int = W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def synth():
    cache: dict[float, object] = {}

    def get(fov: float):
        if fov not in cache:
            cache[fov] = generate_scene(7, frames=4, size=(H, W), fov=fov)
        return cache[fov]

    return get


@pytest.fixture(scope="module")
def written(synth, tmp_path_factory):
    """{format: (source scene, root, scene path)}: each format written once per test module."""
    import importlib.util

    out = {}
    for name in FORMATS.names():
        spec = SPEC.get(name, {})
        if name == "hypersim" and importlib.util.find_spec("h5py") is None:
            continue  # optional dependency: only this format's round trip is skipped
        s = synth(spec.get("fov", 65.0))
        root = tmp_path_factory.mktemp(f"fmt_{name}")
        ref = FORMATS.get(name).write(s, root / spec.get("name", "scene0000_00"))
        out[name] = (s, root, Path(ref))
    return out


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", FORMATS.names())
def test_round_trip(name, written):
    """Write with the dataset's layout, read back through the dispatcher: the same geometry, the
    same ground-truth matches, depth within the format's precision."""
    if name not in written:
        pytest.skip(f"{name}: optional reader dependency not installed")
    s, root, ref = written[name]
    fmt = FORMATS.get(name)
    assert detect(ref) is fmt  # no more specific format claims it, no generic one steals it
    found = find_scenes(root)
    assert [(f.name, p) for f, p in found] == [(name, ref)]
    (r,) = load_scenes(root)
    assert r.metric is fmt.metric
    assert load_scenes(root, lazy=True)[0].name == r.name  # the format names scenes without reading
    assert r.num_frames == s.num_frames and r.size == s.size
    assert torch.allclose(r.K, s.K, rtol=0, atol=1e-5), (r.K[0], s.K[0])
    assert torch.allclose(r.cam_to_world, s.cam_to_world, rtol=0, atol=2e-6)
    R = r.cam_to_world[:, :3, :3].double()
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3, dtype=torch.float64).expand(4, 3, 3), atol=1e-6)
    tol = DEPTH_ATOL.get(name, lambda d: 0.0005 + 1e-6)(s.depth)
    assert bool(((r.depth - s.depth).abs() <= tol).all()), float((r.depth - s.depth).abs().max())
    diff = (r.rgb.float() - s.rgb.float()).abs()
    assert float(diff.mean()) < 4.0  # JPEG datasets (CO3D, ScanNet++, Hypersim previews) are lossy
    for grid in GRIDS:
        for i, j in PAIRS:
            a, b = patch_matches(s, i, j, grid), patch_matches(r, i, j, grid)
            assert len(a) > 0
            assert torch.equal(a.src, b.src) and torch.equal(a.tgt, b.tgt), (name, grid, i, j)


def test_colmap_binary_round_trip(synth, tmp_path):
    s = synth(65.0)
    ref = FORMATS.get("colmap").write(s, tmp_path / "bin", binary=True)
    assert (ref / "sparse" / "0" / "images.bin").is_file() and not (ref / "sparse" / "0" / "images.txt").exists()
    (r,) = load_scenes(ref)
    assert torch.allclose(r.cam_to_world, s.cam_to_world, atol=2e-6) and torch.allclose(r.K, s.K, atol=1e-5)
    a, b = patch_matches(s, 0, 2, (6, 8)), patch_matches(r, 0, 2, (6, 8))
    assert torch.equal(a.src, b.src) and torch.equal(a.tgt, b.tgt)


def test_colmap_dense_workspace_round_trip(synth, tmp_path):
    s = synth(65.0)
    ref = FORMATS.get("colmap").write(s, tmp_path / "dense", dense=True)
    assert (ref / "stereo" / "depth_maps" / "frame_00001.png.geometric.bin").is_file() and not (ref / "depth").exists()
    (r,) = load_scenes(ref)
    assert torch.equal(r.depth, s.depth)  # float32, exact
    a, b = patch_matches(s, 1, 3, (6, 8)), patch_matches(r, 1, 3, (6, 8))
    assert torch.equal(a.src, b.src) and torch.equal(a.tgt, b.tgt)


def test_colmap_dense_depth_map_by_hand(tmp_path):
    from gaspprobe.scenes.formats.colmap import read_dense_bin

    # W=3, H=2; COLMAP reshapes to [W, H] column-major, so x runs fastest: the image row by row
    p = tmp_path / "d.bin"
    p.write_bytes(b"3&2&1&" + np.array([1, 2, 3, 4, 5, 6], "<f4").tobytes())
    assert read_dense_bin(p, (2, 3)).tolist() == [[1, 2, 3], [4, 5, 6]]
    p.write_bytes(b"3&2&1&" + np.array([1, 4, 2], "<f4").tobytes())
    with pytest.raises(DataError) as e:
        read_dense_bin(p, (2, 3))
    _one_line(e, "d.bin", "3x2x1")


@pytest.mark.parametrize("name", ["nerfstudio", "colmap", "co3dv2", "arkitscenes"])
def test_per_frame_intrinsics_round_trip(name, synth, tmp_path):
    """Formats that store a camera per frame (or per camera id) keep each frame's K; the ScanNet
    layout, which stores one K, refuses such a scene in convert."""
    from dataclasses import replace

    from gaspprobe.scenes import convert

    s = synth(65.0)
    K = s.K.clone()
    K[2, 0, 0] *= 1.25  # a zoomed frame
    K[2, 1, 1] *= 1.25
    s2 = replace(s, K=K)
    ref = FORMATS.get(name).write(s2, tmp_path / "src" / SPEC.get(name, {}).get("name", "x"))
    (r,) = load_scenes(ref)
    assert torch.allclose(r.K, K, atol=1e-5)
    a, b = patch_matches(s2, 2, 0, (6, 8)), patch_matches(r, 2, 0, (6, 8))
    assert torch.equal(a.src, b.src) and torch.equal(a.tgt, b.tgt)
    with pytest.raises(DataError) as e:
        convert(tmp_path / "src", tmp_path / "out")
    _one_line(e, "different intrinsics")
    assert not (tmp_path / "out").exists()  # staged: nothing published


def test_mixed_dataset_root_and_metric_override(written, tmp_path):
    import shutil

    for name in ("nerfstudio", "colmap", "scannet"):
        shutil.copytree(written[name][2], tmp_path / "mix" / f"{name}_scene")
    got = [(f.name, p.name) for f, p in find_scenes(tmp_path / "mix")]
    assert got == [("colmap", "colmap_scene"), ("nerfstudio", "nerfstudio_scene"), ("scannet", "scannet_scene")]
    assert [s.metric for s in load_scenes(tmp_path / "mix")] == [False, True, True]
    assert all(s.metric for s in load_scenes(tmp_path / "mix", metric=True))
    assert [s.name for s in load_scenes(tmp_path / "mix", format="nerfstudio")] == ["nerfstudio_scene"]


# ----------------------------------------------------------------------------- hand-computed cases
def _nerfstudio_by_hand(root: Path, meta: dict, depth_mm: int = 2000, img=(H, W), folder: str = "images") -> Path:
    _rgb(root / folder / "frame_00001.png", *img)
    _png16(root / "depth" / "frame_00001.png", np.full(img, depth_mm))
    meta = {"frames": [{"file_path": "images/frame_00001.png", "transform_matrix": np.eye(4).tolist(),
                        "depth_file_path": "depth/frame_00001.png"}], **meta}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def test_nerfstudio_by_hand_axis_flip_and_half_pixel(tmp_path):
    # identity OpenGL c2w: the camera looks along world -z with its y axis up
    p = _nerfstudio_by_hand(tmp_path / "ns", {"fl_x": 50.0, "fl_y": 40.0, "cx": 32.0, "cy": 24.0, "w": W, "h": H})
    (s,) = load_scenes(p)
    assert s.K[0].tolist() == [[50.0, 0.0, 31.5], [0.0, 40.0, 23.5], [0.0, 0.0, 1.0]]
    assert s.cam_to_world[0].tolist() == np.diag([1.0, -1.0, -1.0, 1.0]).tolist()
    assert float(s.depth[0, 0, 0]) == pytest.approx(2.0)
    # the world point 2 m in front (world -z) lands at the image centre, (31.5, 23.5) in centre coordinates
    from gaspprobe.scenes.geometry import project, transform

    Xc = transform(torch.linalg.inv(s.cam_to_world[0]), torch.tensor([[0.0, 0.0, -2.0]]))
    uv, z = project(Xc, s.K[0])
    assert uv[0].tolist() == [31.5, 23.5] and float(z[0]) == 2.0


def test_nerfstudio_downscaled_folder_scales_before_the_half_pixel_shift(tmp_path):
    # intrinsics for 256x192 images, only images_4/ (64x48) present: cx = 130 / 4 - 0.5 = 32.0
    p = _nerfstudio_by_hand(tmp_path / "ns", {"fl_x": 200.0, "fl_y": 200.0, "cx": 130.0, "cy": 96.0, "w": 256, "h": 192},
                            folder="images_4")
    (s,) = load_scenes(p)
    assert s.K[0].tolist() == [[50.0, 0.0, 32.0], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]]


def test_colmap_by_hand_world_to_camera_quaternion(tmp_path):
    p = tmp_path / "cm"
    _rgb(p / "images" / "a.png")
    _png16(p / "depth" / "a.png", np.full((H, W), 1500))
    m = p / "sparse" / "0"
    m.mkdir(parents=True)
    (m / "cameras.txt").write_text("# c\n1 SIMPLE_PINHOLE 64 48 40 32 24\n")
    c, sn = math.cos(math.pi / 4), math.sin(math.pi / 4)  # 90 degrees about z, world -> camera
    (m / "images.txt").write_text(f"# i\n1 {c} 0 0 {sn} 1 2 3 1 a.png\n\n")
    (s,) = load_scenes(p)
    assert s.metric is False
    assert s.K[0].tolist() == [[40.0, 0.0, 31.5], [0.0, 40.0, 23.5], [0.0, 0.0, 1.0]]
    # c2w = [R^T | -R^T t], R = Rz(90): R^T = [[0,1,0],[-1,0,0],[0,0,1]], -R^T t = (-2, 1, -3)
    exp = [[0, 1, 0, -2], [-1, 0, 0, 1], [0, 0, 1, -3], [0, 0, 0, 1]]
    assert np.allclose(s.cam_to_world[0].numpy(), exp, atol=1e-6)
    assert float(s.depth[0, 5, 5]) == pytest.approx(1.5)


def test_scannetpp_by_hand_test_frames_and_bad_frames(written, tmp_path):
    import shutil

    s0, _, ref = written["scannetpp"]
    p = tmp_path / "spp"
    shutil.copytree(ref, p)
    tp = p / "dslr" / "nerfstudio" / "transforms.json"
    meta = json.loads(tp.read_text())
    assert len(meta["frames"]) == 3 and len(meta["test_frames"]) == 1  # the writer split them as the release does
    meta["frames"][1]["is_bad"] = True
    tp.write_text(json.dumps(meta))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (s,) = load_scenes(p)
    ours = [w for w in caught if issubclass(w.category, SceneWarning)]
    assert len(ours) == 1 and "is_bad" in str(ours[0].message) and "DSC00002.JPG" in str(ours[0].message)
    assert s.frame_ids == [0, 2, 3] and torch.allclose(s.cam_to_world, s0.cam_to_world[[0, 2, 3]], atol=2e-6)


def _arkit_by_hand(root: Path, vid: str, traj: str, stamps=("6845.817",)) -> Path:
    d = root / vid / f"{vid}_frames"
    for ts in stamps:
        _rgb(d / "lowres_wide" / f"{vid}_{ts}.png")
        _png16(d / "lowres_depth" / f"{vid}_{ts}.png", np.full((H, W), 1234))
        (d / "lowres_wide_intrinsics").mkdir(parents=True, exist_ok=True)
        (d / "lowres_wide_intrinsics" / f"{vid}_{ts}.pincam").write_text(f"{W} {H} 50 51 31.5 23.5\n")
    (d / "lowres_wide.traj").write_text(traj)
    return root / vid


def test_arkitscenes_by_hand_inverts_world_to_device(tmp_path):
    # the nearest line (3 ms away) holds Rz(90), t = (1, 0, 0); the line 7 ms away is a decoy
    traj = ("6845.81000000 0 0 0 9 9 9\n"
            f"6845.82000000 0 0 {math.pi / 2} 1 0 0\n")
    p = _arkit_by_hand(tmp_path, "4102", traj)
    (s,) = load_scenes(p)
    assert s.K[0].tolist() == [[50.0, 0.0, 31.5], [0.0, 51.0, 23.5], [0.0, 0.0, 1.0]]  # pincam as it is
    # c2w = inverse: R = Rz(-90) = [[0,1,0],[-1,0,0],[0,0,1]], centre = -R^T t = (0, 1, 0)
    exp = [[0, 1, 0, 0], [-1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert np.allclose(s.cam_to_world[0].numpy(), exp, atol=1e-6)
    assert float(s.depth[0, 0, 0]) == pytest.approx(1.234)


def test_co3d_by_hand_ndc_camera_and_float16_depth(tmp_path):
    cat = tmp_path / "apple"
    seq = cat / "1_2_3"
    _rgb(seq / "images" / "frame000001.jpg")
    bits = np.full((H, W), np.float16(1.5)).view(np.uint16)
    assert int(bits[0, 0]) == 0x3E00  # float16 1.5, as CO3D stores it in a uint16 PNG
    _png16(seq / "depths" / "frame000001.jpg.geometric.png", bits)
    ann = [{"sequence_name": "1_2_3", "frame_number": 1,
            "image": {"path": "apple/1_2_3/images/frame000001.jpg", "size": [H, W]},
            "depth": {"path": "apple/1_2_3/depths/frame000001.jpg.geometric.png", "scale_adjustment": 1.0},
            "viewpoint": {"R": np.eye(3).tolist(), "T": [0.0, 0.0, 2.0], "focal_length": [2.0, 2.0],
                          "principal_point": [0.1, 0.0], "intrinsics_format": "ndc_isotropic"}}]
    with gzip.open(cat / "frame_annotations.jgz", "wt") as fh:
        json.dump(ann, fh)
    (s,) = load_scenes(tmp_path)
    assert s.metric is False and s.name == "apple_1_2_3"
    # s = min(H, W)/2 = 24: fx = 48; cx = W/2 - 0.1*24 - 0.5 = 29.1; cy = H/2 - 0.5 = 23.5
    assert np.allclose(s.K[0].numpy(), [[48, 0, 29.1], [0, 48, 23.5], [0, 0, 1]], atol=1e-5)
    # PyTorch3D view +x left, +y up: with R = I the OpenCV camera's x and y are world -x, -y;
    # X_view = X_world + (0, 0, 2), so the camera centre is (0, 0, -2)
    assert np.allclose(s.cam_to_world[0].numpy(), [[-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, -2], [0, 0, 0, 1]])
    assert float(s.depth[0, 3, 3]) == 1.5


def test_hypersim_by_hand_ray_distance_and_asset_units(tmp_path):
    h5py = pytest.importorskip("h5py")
    root = tmp_path / "ai_001_002"
    cam = root / "_detail" / "cam_00"
    cam.mkdir(parents=True)
    (root / "_detail" / "metadata_scene.csv").write_text("parameter_name,parameter_value\nmeters_per_asset_unit,0.0254\n")
    with h5py.File(cam / "camera_keyframe_orientations.hdf5", "w") as fh:
        fh.create_dataset("dataset", data=np.eye(3)[None])
    with h5py.File(cam / "camera_keyframe_positions.hdf5", "w") as fh:
        fh.create_dataset("dataset", data=np.array([[10.0, 0.0, 0.0]]))
    _rgb(root / "images" / "scene_cam_00_final_preview" / "frame.0000.tonemap.jpg")
    g = root / "images" / "scene_cam_00_geometry_hdf5"
    g.mkdir(parents=True)
    dist = np.full((H, W), 2.0, np.float32)
    dist[0, 1] = np.nan  # no geometry
    with h5py.File(g / "frame.0000.depth_meters.hdf5", "w") as fh:
        fh.create_dataset("dataset", data=dist)
    (s,) = load_scenes(tmp_path)
    f = 32 / math.tan(math.pi / 6)  # 60 degrees horizontal
    assert np.allclose(s.K[0].numpy(), [[f, 0, 31.5], [0, f, 23.5], [0, 0, 1]], atol=1e-4)
    assert np.allclose(s.cam_to_world[0].numpy(), [[1, 0, 0, 0.254], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]], atol=1e-6)
    # pixel (0, 0): planar z = d * f / sqrt(31.5^2 + 23.5^2 + f^2)
    assert float(s.depth[0, 0, 0]) == pytest.approx(2.0 * f / math.sqrt(31.5 ** 2 + 23.5 ** 2 + f * f), rel=1e-5)
    assert float(s.depth[0, 0, 1]) == 0.0


def test_tartanair_by_hand_ned(tmp_path):
    p = tmp_path / "abandonedfactory" / "Easy" / "P001"
    _rgb(p / "image_left" / "000000_left.png")
    (p / "depth_left").mkdir(parents=True)
    d = np.full((H, W), 3.0, np.float32)
    d[0, 0] = 10000.0  # sky
    np.save(p / "depth_left" / "000000_left_depth.npy", d)
    (p / "pose_left.txt").write_text("1 2 3 0 0 0 1\n")  # identity rotation, w last
    (s,) = load_scenes(tmp_path)
    assert s.name == "abandonedfactory_Easy_P001"
    # looking north (+x), right = east (-y in the z-up frame), down = -z; position (1, 2, 3) NED -> (1, -2, -3)
    assert np.allclose(s.cam_to_world[0].numpy(), [[0, 0, 1, 1], [-1, 0, 0, -2], [0, -1, 0, -3], [0, 0, 0, 1]])
    assert s.K[0].tolist() == [[32.0, 0.0, 31.5], [0.0, 32.0, 23.5], [0.0, 0.0, 1.0]]
    assert float(s.depth[0, 0, 0]) == 0.0 and float(s.depth[0, 1, 1]) == 3.0


def test_dl3dv_is_the_hash_named_folder_and_not_metric(written, tmp_path):
    import shutil

    _, _, ref = written["dl3dv"]
    (s,) = load_scenes(ref)
    assert s.metric is False
    # the same layout under another name is a generic nerfstudio folder (metric by default)
    shutil.copytree(ref, tmp_path / "my_capture")
    assert detect(tmp_path / "my_capture").name == "nerfstudio"
    # without transforms.json the COLMAP model (full-size camera) is read from colmap/sparse/0
    h = tmp_path / ref.name
    shutil.copytree(ref, h)
    (h / "transforms.json").unlink()
    (h / "images_4").rename(h / "images")
    with pytest.raises(DataError) as e:  # images are 64x48 but the model's camera is 256x192
        load_scenes(h)
    _one_line(e, "256x192", "frame_00001.png")


def test_scannet_metric_flag_persists(synth, tmp_path):
    from gaspprobe.scenes import save_scene

    s = synth(65.0)
    s.metric = False
    try:
        save_scene(s, tmp_path / "s")
    finally:
        s.metric = True
    assert json.loads((tmp_path / "s" / "objects.json").read_text())["metric"] is False
    assert load_scenes(tmp_path / "s")[0].metric is False


# ----------------------------------------------------------------------------- bad input
def test_pose_not_a_rotation(tmp_path):
    p = _nerfstudio_by_hand(tmp_path / "ns", {"fl_x": 50.0, "cx": 32.0, "cy": 24.0})
    meta = json.loads((p / "transforms.json").read_text())
    meta["frames"][0]["transform_matrix"] = (np.diag([2.0, 2.0, 2.0, 1.0])).tolist()
    (p / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "transforms.json", "transform_matrix", "not a rotation")
    meta["frames"][0]["transform_matrix"] = (np.diag([1.0, 1.0, -1.0, 1.0])).tolist()  # a mirror: never silently flipped
    (p / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "transforms.json", "reflection")


def test_colmap_quaternion_not_unit(tmp_path):
    p = tmp_path / "cm"
    _rgb(p / "images" / "a.png")
    _png16(p / "depth" / "a.png", np.full((H, W), 1500))
    (p / "sparse").mkdir()
    (p / "sparse" / "cameras.txt").write_text("1 PINHOLE 64 48 40 40 32 24\n")
    (p / "sparse" / "images.txt").write_text("1 2 0 0 0 0 0 0 1 a.png\n\n")
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "images.txt", "QW QX QY QZ", "not a rotation")


def test_colmap_unsupported_camera_and_size_mismatch(tmp_path):
    p = tmp_path / "cm"
    _rgb(p / "images" / "a.png")
    _png16(p / "depth" / "a.png", np.full((H, W), 1500))
    (p / "sparse").mkdir()
    (p / "sparse" / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    (p / "sparse" / "cameras.txt").write_text("1 FOV 64 48 40 40 32 24 0.1\n")
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "cameras.txt", "FOV")
    (p / "sparse" / "cameras.txt").write_text("1 PINHOLE 640 480 40 40 32 24\n")
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "a.png", "640x480")


def test_trajectory_without_a_pose_for_a_frame(tmp_path):
    traj = "6845.81800000 0 0 0 0 0 0\n6846.01800000 0 0 0 0 0 0\n"
    p = _arkit_by_hand(tmp_path, "77", traj, stamps=("6845.817", "6845.917", "6846.017"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (s,) = load_scenes(p)
    ours = [w for w in caught if issubclass(w.category, SceneWarning)]
    assert len(ours) == 1 and "77_6845.917.png" in str(ours[0].message) and "lowres_wide.traj" in str(ours[0].message)
    assert s.frame_ids == [0, 2]
    (p / "77_frames" / "lowres_wide.traj").write_text("7000.0 0 0 0 0 0 0\n")
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "lowres_wide.traj", "no frame has a trajectory line")


def test_depth_of_wrong_dtype_or_size(tmp_path):
    p = _nerfstudio_by_hand(tmp_path / "ns", {"fl_x": 50.0, "cx": 32.0, "cy": 24.0})
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(p / "depth" / "frame_00001.png")
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "frame_00001.png", "16-bit")
    _png16(p / "depth" / "frame_00001.png", np.full((H // 2, W // 2), 7))
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "frame_00001.png", "size (24, 32)")
    t = tmp_path / "ta"
    _rgb(t / "image_left" / "000000_left.png")
    (t / "depth_left").mkdir(parents=True)
    np.save(t / "depth_left" / "000000_left_depth.npy", np.ones((H, W), np.int32))
    (t / "pose_left.txt").write_text("0 0 0 0 0 0 1\n")
    with pytest.raises(DataError) as e:
        load_scenes(t)
    _one_line(e, "000000_left_depth.npy", "dtype int32")


def test_transforms_without_intrinsics(tmp_path):
    p = _nerfstudio_by_hand(tmp_path / "ns", {"w": W, "h": H})
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "transforms.json", "'fl_x'")


def test_fisheye_refused_without_opencv(written, tmp_path, monkeypatch):
    import shutil

    p = tmp_path / "spp"
    shutil.copytree(written["scannetpp"][2], p)
    tp = p / "dslr" / "nerfstudio" / "transforms.json"
    meta = json.loads(tp.read_text())
    meta.update(camera_model="OPENCV_FISHEYE", k1=0.1, k2=0.0, k3=0.0, k4=0.0)
    tp.write_text(json.dumps(meta))
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    with pytest.raises(DataError) as e:
        load_scenes(p)
    _one_line(e, "transforms.json", "camera_model 'OPENCV_FISHEYE'", "opencv")


def test_fisheye_undistorted_with_opencv(tmp_path):
    """A bright blob drawn where the OPENCV_FISHEYE model puts a ray lands where the pinhole puts it."""
    pytest.importorskip("cv2")
    fx, cx, cy, k1 = 40.0, 31.5, 23.5, 0.05
    # ray with tan(theta) = r_u / fx for the pinhole point (u, v) = (50, 35)
    u, v = 50.0, 35.0
    r_u = math.hypot(u - cx, v - cy)
    th = math.atan(r_u / fx)
    th_d = th * (1 + k1 * th ** 2)  # equidistant fisheye with one coefficient
    ud, vd = cx + fx * th_d * (u - cx) / r_u, cy + fx * th_d * (v - cy) / r_u
    img = np.zeros((H, W, 3), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    img[(np.abs(xx - ud) <= 1.5) & (np.abs(yy - vd) <= 1.5)] = 255
    p = tmp_path / "spp" / "dslr"
    (p / "resized_images").mkdir(parents=True)
    Image.fromarray(img).save(p / "resized_images" / "DSC00001.png")
    _png16(p / "render_depth" / "DSC00001.png", np.full((H, W), 2000))
    meta = {"camera_model": "OPENCV_FISHEYE", "fl_x": fx, "fl_y": fx, "cx": cx + 0.5, "cy": cy + 0.5, "w": W, "h": H,
            "k1": k1, "k2": 0.0, "k3": 0.0, "k4": 0.0,
            "frames": [{"file_path": "DSC00001.png", "transform_matrix": np.eye(4).tolist()}]}
    (p / "nerfstudio").mkdir()
    (p / "nerfstudio" / "transforms.json").write_text(json.dumps(meta))
    (s,) = load_scenes(tmp_path / "spp")
    g = s.rgb[0, :, :, 0].double()
    ys, xs = torch.nonzero(g > 128, as_tuple=True)
    assert abs(float(xs.double().mean()) - u) < 1.0 and abs(float(ys.double().mean()) - v) < 1.0
    assert float(s.depth[0, 24, 32]) == 2.0  # a plane facing the camera keeps its z


def test_hypersim_refused_without_h5py(tmp_path, monkeypatch):
    cam = tmp_path / "ai_001_003" / "_detail" / "cam_00"
    cam.mkdir(parents=True)
    (cam / "camera_keyframe_orientations.hdf5").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(DataError) as e:
        load_scenes(tmp_path)
    _one_line(e, "camera_keyframe_orientations.hdf5", "h5py")


def test_hypersim_tilt_shift_cameras_are_refused_not_guessed(written, tmp_path):
    import shutil

    if "hypersim" not in written:
        pytest.skip("h5py is not installed")
    _, root, _ = written["hypersim"]
    copy = tmp_path / "hs"
    shutil.copytree(root, copy)
    scene_root = next(p for p in copy.rglob("metadata_scene.csv")).parent.parent
    (scene_root / "_detail" / "metadata_camera_parameters.csv").write_text("scene_name,M_cam_from_uv_00\n")
    with pytest.raises(DataError) as e:
        load_scenes(copy)
    _one_line(e, "metadata_camera_parameters.csv", "tilt-shift", "refuses")


def test_non_metric_depth_where_metric_is_required(written):
    from gaspprobe.scenes import require_metric

    _, root, ref = written["co3dv2"]
    require_metric(load_scenes(written["nerfstudio"][1]), "the metric depth loss")  # metric: passes
    with pytest.raises(DataError) as e:
        require_metric(load_scenes(root, lazy=True), "the metric depth loss")
    _one_line(e, str(ref), "metric = false", "the metric depth loss")


def test_no_scenes_and_unknown_format(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        load_scenes(tmp_path)
    _one_line(e, str(tmp_path), "no scenes found")
    from gaspprobe.errors import GaspError

    with pytest.raises(GaspError) as e:
        load_scenes(tmp_path, format="nerfstudo")
    _one_line(e, "did you mean 'nerfstudio'")
