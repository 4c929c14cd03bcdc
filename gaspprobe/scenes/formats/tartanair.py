"""TartanAir trajectories: left camera images, depth .npy in metres, poses in NED axes.

Layout (castacks/tartanair_tools ``data_type.md``)::

    <env>/<Easy|Hard>/<P000>/image_left/000000_left.png          640x480
    <env>/<Easy|Hard>/<P000>/depth_left/000000_left_depth.npy    float32 metres (sky: ~10^4)
    <env>/<Easy|Hard>/<P000>/pose_left.txt                       "tx ty tz qx qy qz qw" per frame

Conventions converted:

- Poses are camera(body)-to-world in NED: body x forward, y right, z down; world x north, y east,
  z down. Camera-to-world in the contract is W @ T_ned @ P, where P takes OpenCV camera axes to the
  body's (x_cam = y_body, y_cam = z_body, z_cam = x_body) and W = diag(1, -1, -1) turns the NED
  world z-up (x north, y west, z up). The quaternion is (qx, qy, qz, qw): w LAST.
- Intrinsics are fixed by the dataset: fx = fy = 320, cx = 320, cy = 240 at 640x480 (90 degrees
  horizontal field of view). AirSim renders a symmetric frustum, so the principal point is the image
  centre: cx = 320 in edge coordinates, 319.5 with integer pixel centres. Other image sizes scale.
- Depth is metric z-depth; values above 1000 m (sky) become 0 (invalid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gaspprobe.errors import DataError
from gaspprobe.scenes.formats import base
from gaspprobe.scenes.formats.base import SceneFormat

# OpenCV camera axes -> NED body axes (columns: where cam x, y, z point in the body frame)
CAM_TO_BODY = np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
NED_TO_ZUP = np.diag([1.0, -1.0, -1.0, 1.0])
MAX_DEPTH = 1000.0


def detect(path: Path) -> bool:
    return (path / "pose_left.txt").is_file() and (path / "image_left").is_dir()


def intrinsics(H: int, W: int) -> np.ndarray:
    return base.edge_to_centre(base.K_from(320.0 * W / 640, 320.0 * H / 480, W / 2, H / 2))


def scene_name(path: Path) -> str:
    """<env>_<Easy|Hard>_<P000> inside the release's tree, else the folder's name."""
    if path.parent.name.lower() in ("easy", "hard"):
        return "_".join([path.parent.parent.name, path.parent.name, path.name])
    return path.name


def read(path: Path, *, metric: bool | None = None):
    path = Path(path)
    pp = path / "pose_left.txt"
    try:
        rows = [ln.split() for ln in pp.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"unreadable ({type(e).__name__})", path=pp) from None
    images = sorted((p for p in (path / "image_left").glob("*_left.png")), key=lambda p: base.natural_key(p.name))
    if not images:
        raise DataError("no frames (*_left.png)", path=path / "image_left")
    if len(rows) != len(images):
        raise DataError(f"{len(rows)} poses but image_left/ has {len(images)} frames", path=pp)
    frames = []
    for idx, (ip, row) in enumerate(zip(images, rows)):
        what = f"line {idx + 1} (tx ty tz qx qy qz qw)"
        try:
            v = [float(x) for x in row]
        except ValueError:
            raise DataError(f"{what}: not numeric", path=pp) from None
        if len(v) != 7:
            raise DataError(f"{what}: expected 7 numbers, got {len(v)}", path=pp)
        R = base.quat_to_rotmat(v[6], v[3], v[4], v[5], path=pp, what=what)
        T_ned = base.pose(R, v[:3])
        if not np.isfinite(T_ned).all():
            raise DataError(f"{what}: not finite", path=pp)
        rgb = base.read_rgb(ip)
        H, W = rgb.shape[:2]
        n = ip.stem.split("_")[0]
        depth = base.read_depth_npy(path / "depth_left" / f"{n}_left_depth.npy", (H, W), max_depth=MAX_DEPTH)
        frames.append({"rgb": rgb, "depth": depth, "K": intrinsics(H, W), "c2w": NED_TO_ZUP @ T_ned @ CAM_TO_BODY,
                       "id": idx, "file": ip})
    return base.make_scene(scene_name(path), frames, metric=True if metric is None else metric, path=path)


def write(scene, path: Path) -> Path:
    """Test writer; the scene's K must be TartanAir's (fx = W/2 = 4/3 fy... i.e. 90 degrees, centred)."""
    path = Path(path)
    rgb, depth, K, c2w = base.scene_arrays(scene)
    H, W = rgb.shape[1:3]
    if not np.allclose(K, intrinsics(H, W), atol=1e-4):
        raise ValueError("tartanair: the layout has fixed intrinsics (fx = 320 W/640, fy = 320 H/480, centred)")
    lines = []
    for f in range(rgb.shape[0]):
        base.write_file(path / "image_left" / f"{f:06d}_left.png", base.image_bytes(rgb[f]))
        dp = path / "depth_left" / f"{f:06d}_left_depth.npy"
        dp.parent.mkdir(parents=True, exist_ok=True)
        np.save(dp, depth[f].astype(np.float32))
        T = np.linalg.inv(NED_TO_ZUP) @ c2w[f] @ np.linalg.inv(CAM_TO_BODY)
        w, x, y, z = base.rotmat_to_quat(T[:3, :3])
        lines.append(" ".join(repr(float(a)) for a in [*T[:3, 3], x, y, z, w]))
    base.write_file(path / "pose_left.txt", "\n".join(lines) + "\n")
    return path


FORMAT = SceneFormat(
    name="tartanair", detect=detect, read=read, write=write, scene_name=scene_name, metric=True, priority=60,
    summary="image_left/*_left.png + depth_left/*_left_depth.npy (m) + pose_left.txt (NED, qx qy qz qw)",
    depth_precision="float32 (.npy)")
