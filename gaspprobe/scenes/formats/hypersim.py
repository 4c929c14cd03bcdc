"""Hypersim (apple/ml-hypersim) camera trajectories: ray-distance depth, OpenGL cameras, asset units.

Layout (ml-hypersim README)::

    <ai_VVV_NNN>/_detail/metadata_scene.csv                    parameter_name,parameter_value
                                                               (meters_per_asset_unit)
    <ai_VVV_NNN>/_detail/cam_XX/camera_keyframe_orientations.hdf5   "dataset" [N,3,3] camera-to-world R
    <ai_VVV_NNN>/_detail/cam_XX/camera_keyframe_positions.hdf5      "dataset" [N,3] asset units
    <ai_VVV_NNN>/images/scene_cam_XX_final_preview/frame.IIII.tonemap.jpg
    <ai_VVV_NNN>/images/scene_cam_XX_geometry_hdf5/frame.IIII.depth_meters.hdf5   "dataset" [H,W]

One scene is one camera trajectory (``cam_XX``). Conventions converted:

- Orientations map OpenGL camera axes (x right, y up, looking along -z) to the world: R @
  diag(1, -1, -1) gives the OpenCV camera. Positions are in asset units, times
  ``meters_per_asset_unit``.
- ``depth_meters`` is the Euclidean DISTANCE from the camera centre along each pixel's ray, in
  metres; planar z = distance / ||K^-1 [u, v, 1]||. NaN (no geometry) becomes 0.
- Intrinsics: 60 degrees horizontal field of view, square pixels, principal point at the image
  centre (W/2 in Hypersim's 0.5-centre convention; (W - 1)/2 here). A scene that carries
  ``metadata_camera_parameters.csv`` (tilt-shift / off-centre cameras) is refused in one line
  naming that file, never read with the default pinhole.
- Needs h5py (``pip install h5py``); without it the scene is refused in one line.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

from gaspprobe.errors import DataError
from gaspprobe.scenes.formats import base
from gaspprobe.scenes.formats.base import SceneFormat

FOV_X = math.pi / 3


def detect(path: Path) -> bool:
    return (bool(re.match(r"^cam_\d+$", path.name)) and path.parent.name == "_detail"
            and (path / "camera_keyframe_orientations.hdf5").is_file())


def _h5py(path: Path):
    try:
        import h5py
    except ImportError:
        raise DataError("reading Hypersim's HDF5 files needs h5py (pip install h5py)", path=path) from None
    return h5py


def read_h5(path: Path, shape_tail: tuple[int, ...] | None = None) -> np.ndarray:
    h5py = _h5py(path)
    try:
        with h5py.File(path, "r") as fh:
            if "dataset" not in fh:
                raise DataError("no 'dataset' in the HDF5 file", path=path)
            a = np.asarray(fh["dataset"][()])
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except OSError as e:
        raise DataError(f"unreadable HDF5 ({e})", path=path) from None
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"dataset: expected floats, got dtype {a.dtype}", path=path)
    if shape_tail is not None and tuple(a.shape[1:]) != shape_tail:
        raise DataError(f"dataset: expected shape [N, {', '.join(map(str, shape_tail))}], got {list(a.shape)}", path=path)
    return a.astype(np.float64)


def meters_per_asset_unit(root: Path) -> float:
    p = root / "_detail" / "metadata_scene.csv"
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("parameter_name") == "meters_per_asset_unit":
                    v = float(row["parameter_value"])
                    if not (math.isfinite(v) and v > 0):
                        raise ValueError
                    return v
    except FileNotFoundError:
        raise DataError("file not found (meters_per_asset_unit)", path=p) from None
    except (ValueError, TypeError, KeyError):
        raise DataError("meters_per_asset_unit: not a positive number", path=p) from None
    raise DataError("no meters_per_asset_unit row", path=p)


def intrinsics(H: int, W: int) -> np.ndarray:
    f = (W / 2.0) / math.tan(FOV_X / 2)
    return base.edge_to_centre(base.K_from(f, f, W / 2.0, H / 2.0))


def scene_name(path: Path) -> str:
    return f"{path.parent.parent.name}_{path.name}"


def read(path: Path, *, metric: bool | None = None):
    path = Path(path)
    root = path.parent.parent
    cam = path.name
    _h5py(path / "camera_keyframe_orientations.hdf5")
    for cp in (root / "_detail" / "metadata_camera_parameters.csv", root / "metadata_camera_parameters.csv"):
        if cp.is_file():  # tilt-shift / off-centre cameras: refused, never read with the default pinhole
            raise DataError("per-scene camera parameters (Hypersim's tilt-shift cameras) are not supported: "
                            "this reader assumes the 60-degree centred pinhole and refuses rather than guess",
                            path=cp)
    mpau = meters_per_asset_unit(root)
    Rs = read_h5(path / "camera_keyframe_orientations.hdf5", (3, 3))
    ts = read_h5(path / "camera_keyframe_positions.hdf5", (3,))
    cdir = root / "images" / f"scene_{cam}_final_preview"
    gdir = root / "images" / f"scene_{cam}_geometry_hdf5"
    images = sorted(cdir.glob("frame.*.tonemap.jpg"), key=lambda p: base.natural_key(p.name)) if cdir.is_dir() else []
    if not images:
        raise DataError("no frames (frame.IIII.tonemap.jpg)", path=cdir)
    frames = []
    for ip in images:
        try:
            i = int(ip.name.split(".")[1])
        except ValueError:
            raise DataError("expected frame.IIII.tonemap.jpg", path=ip) from None
        if i >= len(Rs) or i >= len(ts):
            raise DataError(f"frame {i}: no camera keyframe (orientations has {len(Rs)})", path=path)
        R = base.check_rotation(Rs[i], path / "camera_keyframe_orientations.hdf5", f"keyframe {i}")
        c2w = base.pose(R, ts[i] * mpau) @ base.OPENGL_TO_OPENCV
        rgb = base.read_rgb(ip)
        H, W = rgb.shape[:2]
        K = intrinsics(H, W)
        dp = gdir / f"frame.{i:04d}.depth_meters.hdf5"
        dist = read_h5(dp)
        base.check_size(dist, (H, W), dp)
        dist = np.where(np.isfinite(dist) & (dist > 0), dist, 0.0)
        frames.append({"rgb": rgb, "depth": base.ray_to_planar(dist, K), "K": K, "c2w": c2w, "id": i, "file": ip})
    return base.make_scene(scene_name(path), frames, metric=True if metric is None else metric, path=path)


def write(scene, path: Path, *, cam: str = "cam_00", mpau: float = 0.0254) -> Path:
    """Test writer: ``path`` is the ai_VVV_NNN folder; returns its ``_detail/<cam>`` (the scene)."""
    import h5py

    path = Path(path)
    rgb, depth, K, c2w = base.scene_arrays(scene)
    H, W = rgb.shape[1:3]
    if not np.allclose(K, intrinsics(H, W), atol=1e-4):
        raise ValueError("hypersim: the layout has fixed intrinsics (60 degrees horizontal, centred)")
    det = path / "_detail"
    base.write_file(det / "metadata_scene.csv", f"parameter_name,parameter_value\nmeters_per_asset_unit,{mpau!r}\n")
    gl = c2w @ base.OPENGL_TO_OPENCV
    (det / cam).mkdir(parents=True, exist_ok=True)
    for name, data in (("orientations", gl[:, :3, :3]), ("positions", gl[:, :3, 3] / mpau)):
        with h5py.File(det / cam / f"camera_keyframe_{name}.hdf5", "w") as fh:
            fh.create_dataset("dataset", data=data.astype(np.float32))
    f = K[0, 0, 0]
    u = (np.arange(W) - K[0, 0, 2]) / f
    v = (np.arange(H) - K[0, 1, 2]) / f
    norm = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2 + 1.0)
    for i in range(rgb.shape[0]):
        base.write_file(path / "images" / f"scene_{cam}_final_preview" / f"frame.{i:04d}.tonemap.jpg",
                        base.image_bytes(rgb[i], "JPEG"))
        gp = path / "images" / f"scene_{cam}_geometry_hdf5" / f"frame.{i:04d}.depth_meters.hdf5"
        gp.parent.mkdir(parents=True, exist_ok=True)
        dist = np.where(depth[i] > 0, depth[i] * norm, np.nan)
        with h5py.File(gp, "w") as fh:
            fh.create_dataset("dataset", data=dist.astype(np.float32))
    return det / cam


FORMAT = SceneFormat(
    name="hypersim", detect=detect, read=read, write=write, scene_name=scene_name, metric=True, priority=80,
    summary="_detail/cam_XX/camera_keyframe_*.hdf5 (OpenGL, asset units) + depth_meters.hdf5 (ray distance)",
    depth_precision="float32 HDF5, ray distance converted to planar z")
