"""ARKitScenes (3DOD) frames: low-resolution wide camera, LiDAR depth, a 60 Hz trajectory.

Layout (apple/ARKitScenes ``DATA.md``, ``threedod/benchmark_scripts/utils/tenFpsDataLoader.py``)::

    <video_id>/<video_id>_frames/lowres_wide/<video_id>_<t.ttt>.png          RGB 256x192
    <video_id>/<video_id>_frames/lowres_depth/<video_id>_<t.ttt>.png         uint16 millimetres
    <video_id>/<video_id>_frames/lowres_wide_intrinsics/<video_id>_<t.ttt>.pincam   "w h fx fy cx cy"
    <video_id>/<video_id>_frames/lowres_wide.traj     "t ax ay az tx ty tz" per line

Conventions converted:

- A ``.traj`` line is WORLD-TO-DEVICE: axis-angle (radians) and translation (metres); inverted for
  camera-to-world. The camera is OpenCV-like (Apple's loader back-projects with plain K and
  positive depth), and ``.pincam`` intrinsics are used as they are (integer pixel centres).
- Frame and trajectory timestamps do not match exactly: a frame takes the NEAREST trajectory line
  within 5 ms (Apple's loader); a frame with none is skipped with one warning (the dataset has
  such frames). A ``.pincam`` is matched by name, else within 1 ms.
- Depth is metric (LiDAR, mm). Portrait-captured videos are not rotated upright here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gaspprobe.errors import DataError
from gaspprobe.scenes.formats import base
from gaspprobe.scenes.formats.base import SceneFormat

POSE_TOL = 0.005  # s, nearest trajectory line (Apple's loader)
PINCAM_TOL = 0.001  # s


def _frames_dir(path: Path) -> Path:
    d = path / f"{path.name}_frames"
    return d if d.is_dir() else path


def detect(path: Path) -> bool:
    d = _frames_dir(path)
    return (d / "lowres_wide.traj").is_file() and (d / "lowres_wide").is_dir()


def _ts(p: Path) -> float:
    try:
        return float(p.stem.rsplit("_", 1)[-1])
    except ValueError:
        raise DataError("expected <video_id>_<timestamp>.png", path=p) from None


def read_traj(p: Path) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps [N], world-to-device [N,4,4]) of a .traj file."""
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError("file not found", path=p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"unreadable ({type(e).__name__})", path=p) from None
    ts, Ts = [], []
    for k, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        t = ln.split()
        try:
            v = [float(x) for x in t]
        except ValueError:
            raise DataError(f"line {k}: not numeric", path=p) from None
        if len(v) != 7 or not np.isfinite(v).all():
            raise DataError(f"line {k}: expected 7 finite numbers (timestamp, axis-angle, translation)", path=p)
        ts.append(v[0])
        Ts.append(base.pose(base.rotvec_to_rotmat(v[1:4]), v[4:7]))
    if not ts:
        raise DataError("no trajectory lines", path=p)
    order = np.argsort(ts)
    return np.asarray(ts)[order], np.stack(Ts)[order]


def _pincam(d: Path, ip: Path, ts: float) -> tuple[Path, list[float]]:
    pdir = d / "lowres_wide_intrinsics"
    p = pdir / (ip.stem + ".pincam")
    if not p.is_file():
        near = [q for q in pdir.glob("*.pincam") if abs(_ts(q) - ts) <= PINCAM_TOL + 1e-9] if pdir.is_dir() else []
        if not near:
            raise DataError(f"no intrinsics for frame {ip.name} (expected {p.name})", path=pdir)
        p = min(near, key=lambda q: abs(_ts(q) - ts))
    try:
        v = [float(x) for x in p.read_text(encoding="utf-8").split()]
    except (OSError, UnicodeDecodeError, ValueError):
        raise DataError("expected one line 'w h fx fy cx cy'", path=p) from None
    if len(v) != 6:
        raise DataError(f"expected 6 numbers 'w h fx fy cx cy', got {len(v)}", path=p)
    return p, v


def scene_name(path: Path) -> str:
    """The video id (the ``_frames`` suffix dropped when the frames folder itself is the scene)."""
    d = _frames_dir(Path(path))
    return d.name[: -len("_frames")] if d.name.endswith("_frames") else d.name


def read(path: Path, *, metric: bool | None = None):
    path = Path(path)
    d = _frames_dir(path)
    vid = scene_name(path)
    tp = d / "lowres_wide.traj"
    tts, w2cs = read_traj(tp)
    images = sorted((p for p in (d / "lowres_wide").glob("*.png") if not p.name.startswith(".")), key=_ts)
    if not images:
        raise DataError("no frames (*.png)", path=d / "lowres_wide")
    frames, skipped = [], []
    for idx, ip in enumerate(images):
        ts = _ts(ip)
        j = int(np.clip(np.searchsorted(tts, ts), 1, len(tts) - 1)) if len(tts) > 1 else 0
        j = min((j - 1, j) if len(tts) > 1 else (0,), key=lambda k: abs(tts[k] - ts))
        if abs(tts[j] - ts) > POSE_TOL:
            skipped.append(ip.name)
            continue
        pp, (w, h, fx, fy, cx, cy) = _pincam(d, ip, ts)
        rgb = base.read_rgb(ip)
        H, W = rgb.shape[:2]
        if (int(w), int(h)) != (W, H):
            raise DataError(f"w h = {int(w)} {int(h)} but the image is {W}x{H}", path=pp)
        K = base.check_K(base.K_from(fx, fy, cx, cy), pp, "fx fy")
        depth = base.read_depth_mm(d / "lowres_depth" / ip.name, (H, W))
        frames.append({"rgb": rgb, "depth": depth, "K": K, "c2w": base.invert(w2cs[j]), "id": idx, "file": ip})
    if skipped and not frames:
        raise DataError(f"no frame has a trajectory line within {POSE_TOL * 1000:.0f} ms (first: {skipped[0]})", path=tp)
    if skipped:
        base.warn(f"{tp}: skipped {len(skipped)} frame(s) with no trajectory line within "
                  f"{POSE_TOL * 1000:.0f} ms, first {skipped[0]}")
    return base.make_scene(vid, frames, metric=True if metric is None else metric, path=d)


def write(scene, path: Path, *, t0: float = 6845.817, dt: float = 0.1, pose_offset: float = 0.0021) -> Path:
    """Test writer. Frame f is stamped t0 + f*dt (3 decimals, as the release names files); its pose
    is written at +``pose_offset`` s and, as distractors at the trajectory's 60 Hz, the next frame's
    pose 1/60 s before and after (a reader that does not take the nearest line gets them)."""
    path = Path(path)
    vid = path.name
    d = path / f"{vid}_frames"
    rgb, depth, K, c2w = base.scene_arrays(scene)
    H, W = rgb.shape[1:3]
    lines = []
    F = rgb.shape[0]
    for f in range(F):
        ts = round(t0 + f * dt, 3)
        stem = f"{vid}_{ts:.3f}"
        base.write_file(d / "lowres_wide" / f"{stem}.png", base.image_bytes(rgb[f]))
        base.write_file(d / "lowres_depth" / f"{stem}.png", base.png16_bytes(base.metres_to_mm(depth[f])))
        k = K[f]
        base.write_file(d / "lowres_wide_intrinsics" / f"{stem}.pincam",
                        f"{W} {H} " + " ".join(repr(float(x)) for x in (k[0, 0], k[1, 1], k[0, 2], k[1, 2])) + "\n")
        for off, g in ((pose_offset, f), (pose_offset - 1 / 60, (f + 1) % F), (pose_offset + 1 / 60, (f + 1) % F)):
            w2c = base.invert(c2w[g])
            r = base.rotmat_to_rotvec(w2c[:3, :3])
            lines.append((ts + off, f"{ts + off:.8f} " + " ".join(repr(float(x)) for x in [*r, *w2c[:3, 3]])))
    base.write_file(d / "lowres_wide.traj", "\n".join(s for _, s in sorted(lines)) + "\n")
    return path


FORMAT = SceneFormat(
    name="arkitscenes", detect=detect, read=read, write=write, scene_name=scene_name, metric=True, priority=80,
    summary="<id>_frames/lowres_wide + lowres_depth (uint16 mm) + *.pincam + lowres_wide.traj (world->device)",
    depth_precision="1 mm (uint16 PNG)")
