"""nerfstudio ``transforms.json`` folders (``ns-process-data`` output, Polycam/Record3D exports).

Layout::

    <scene>/transforms.json      camera_model, fl_x, fl_y, cx, cy, w, h, [k1 k2 k3 k4 p1 p2],
                                 frames: [{file_path, transform_matrix, [depth_file_path], [fl_x ...]}]
    <scene>/images/frame_00001.png
    <scene>/depth/frame_00001.png    uint16 millimetres (``depth_unit_scale_factor`` 1e-3), or .npy

Conventions converted (docs.nerf.studio, "data conventions"):

- ``transform_matrix`` is camera-to-world in the OpenGL/Blender camera (x right, y up, looking
  along -z): right-multiplied by diag(1, -1, -1, 1) to get the OpenCV camera.
- nerfstudio casts the ray of pixel (u, v) through (u + 0.5, v + 0.5) (``pixel_offset`` 0.5): its
  cx, cy put the centre of pixel (0, 0) at (0.5, 0.5); the contract's K has it at (0, 0), so
  cx, cy are reduced by 0.5 (after any rescaling to a downscaled image folder, where the
  0.5 convention scales exactly and the integer one does not).
- Intrinsics may be global or per frame (a frame's keys win). A missing ``fl_x`` is refused with
  the file and field named. Distorted cameras (OPENCV with non-zero k/p, OPENCV_FISHEYE) are
  undistorted with OpenCV when it is installed, else refused.
- ``applied_transform`` only rotates the world; it is ignored (matches do not depend on it).
- Depth is read as planar z. It is metric by default (sensor exports); pass ``metric=False`` when
  it came from an uncalibrated reconstruction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gaspprobe.errors import DataError
from gaspprobe.scenes.formats import base
from gaspprobe.scenes.formats.base import SceneFormat

INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2", "camera_model")


def detect(path: Path) -> bool:
    return (path / "transforms.json").is_file()


def _camera(meta: dict, frame: dict, tp: Path, where: str) -> dict[str, Any]:
    cam = {k: meta[k] for k in INTRINSIC_KEYS if k in meta}
    cam.update({k: frame[k] for k in INTRINSIC_KEYS if k in frame})
    if "fl_x" not in cam:
        if "camera_angle_x" in meta:  # Blender synthetic scenes: horizontal field of view
            cam["camera_angle_x"] = base.field(meta, "camera_angle_x", tp)
        else:
            raise DataError(f"missing field 'fl_x' (no intrinsics for {where}: expected fl_x, fl_y, cx, cy "
                            "globally or per frame)", path=tp)
    for k in ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2"):
        if k in cam:
            base.field(cam, k, tp)
    cam.setdefault("camera_model", "OPENCV")
    return cam


def _c2w(v: Any, tp: Path, what: str) -> np.ndarray:
    """4x4 (or 3x4, bottom row implied) camera-to-world."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: not a numeric matrix", path=tp) from None
    if a.shape == (3, 4):
        a = np.vstack([a, [0.0, 0.0, 0.0, 1.0]])
    return base.matrix(a, (4, 4), tp, what)


def _resolve_image(root: Path, image_dir: Path | None, rel: str) -> Path:
    """The frame's image; a missing ``images/x`` falls back to ``images_2|4|8/x`` (downscaled
    copies that ns-process-data and DL3DV ship beside the full-size folder)."""
    p = (image_dir or root) / rel
    if p.is_file():
        return p
    parts = Path(rel).parts
    if len(parts) >= 2 and parts[0] == "images":
        for n in (2, 4, 8):
            q = root / f"images_{n}" / Path(*parts[1:])
            if q.is_file():
                return q
    return p


def read_transforms(tp: Path, *, name: str, image_dir: Path | None = None, depth_dir: Path | None = None,
                    depth_ext: tuple[str, ...] = (".png", ".npy"), metric: bool = True,
                    frame_keys: tuple[str, ...] = ("frames",), depth_scale: float | None = None):
    """Read a transforms.json and its images and depth into a Scene (see the module docstring).

    Args:
        tp: the transforms.json.
        name: the scene's name.
        image_dir: folder that ``file_path`` is relative to (default: the json's folder).
        depth_dir: where ``<image stem><ext>`` depth files live when frames have no ``depth_file_path``.
        metric: recorded on the Scene.
        frame_keys: lists of frames to read (ScanNet++ keeps held-out views in ``test_frames``).
        depth_scale: metres per PNG unit (default the json's ``depth_unit_scale_factor`` or 1e-3).
    """
    meta = base.read_json(tp)
    if not isinstance(meta, dict):
        raise DataError("expected a JSON object with 'frames'", path=tp)
    root = tp.parent
    frames: list[dict] = []
    for key in frame_keys:
        v = meta.get(key, [])
        if not isinstance(v, list) or not all(isinstance(f, dict) for f in v):
            raise DataError(f"field {key!r}: expected a list of frame objects", path=tp)
        frames += v
    if not frames:
        raise DataError("field 'frames': no frames", path=tp)
    scale = depth_scale if depth_scale is not None else float(meta.get("depth_unit_scale_factor", 1e-3))
    for f in frames:
        if not isinstance(f.get("file_path"), str):
            raise DataError("a frame has no 'file_path'", path=tp)
    frames = sorted(frames, key=lambda f: base.natural_key(f["file_path"]))
    out, bad = [], []
    for idx, fr in enumerate(frames):
        rel = fr["file_path"]
        if fr.get("is_bad") is True:  # ScanNet++ flags blurry/unregistered DSLR views
            bad.append(rel)
            continue
        cam = _camera(meta, fr, tp, f"frame {rel!r}")
        T = _c2w(fr.get("transform_matrix"), tp, f"frame {rel!r}: transform_matrix")
        base.check_rotation(T[:3, :3], tp, f"frame {rel!r}: transform_matrix")
        ip = _resolve_image(root, image_dir, rel)
        rgb = base.read_rgb(ip)
        H, W = rgb.shape[:2]
        w = float(cam.get("w", W))
        h = float(cam.get("h", H))
        if "camera_angle_x" in cam:
            fx = fy = 0.5 * w / np.tan(0.5 * float(cam["camera_angle_x"]))
        else:
            fx = float(cam["fl_x"])
            fy = float(cam.get("fl_y", fx))
        K_edge = base.K_from(fx, fy, float(cam.get("cx", w / 2)), float(cam.get("cy", h / 2)))
        if (W, H) != (w, h):  # a downscaled image folder: scale in the 0.5-centre convention, where it is exact
            K_edge = np.diag([W / w, H / h, 1.0]) @ K_edge
        K = base.check_K(base.edge_to_centre(K_edge), tp, f"frame {rel!r}: fl_x/fl_y")
        depth = _read_depth(fr, root, depth_dir, ip, depth_ext, (H, W), scale, tp, rel)
        model = str(cam["camera_model"]).upper()
        ks = [float(cam.get(k, 0.0)) for k in ("k1", "k2", "k3", "k4", "p1", "p2")]
        if model in base.FISHEYE_MODELS:
            rgb, depth = base.undistort(rgb, depth, K, ks[:4], True, tp, f"camera_model {model!r}")
        elif model in ("OPENCV", "FULL_OPENCV", "SIMPLE_RADIAL", "RADIAL"):
            if any(ks):
                k1, k2, k3, _k4, p1, p2 = ks
                rgb, depth = base.undistort(rgb, depth, K, [k1, k2, p1, p2, k3], False, tp,
                                            f"camera_model {model!r} with distortion k1..p2")
        elif model not in base.PINHOLE_MODELS:
            raise DataError(f"field 'camera_model': {model!r} is not a pinhole or undistortable camera", path=tp)
        out.append({"rgb": rgb, "depth": depth, "K": K, "c2w": T @ base.OPENGL_TO_OPENCV, "id": idx, "file": ip})
    if bad:
        base.warn(f"{tp}: skipped {len(bad)} frame(s) flagged is_bad, first {bad[0]}")
    return base.make_scene(name, out, metric=metric, path=tp)


def _read_depth(fr: dict, root: Path, depth_dir: Path | None, ip: Path, exts: tuple[str, ...],
                size: tuple[int, int], scale: float, tp: Path, rel: str) -> np.ndarray:
    if isinstance(fr.get("depth_file_path"), str):
        dp = root / fr["depth_file_path"]
    else:
        cands = [depth_dir / (ip.stem + e) for e in exts] if depth_dir is not None else []
        found = [c for c in cands if c.is_file()]
        if not found:
            where = depth_dir if depth_dir is not None else root
            raise DataError(f"frame {rel!r}: no depth (no 'depth_file_path' and no {ip.stem}"
                            f"{'|'.join(exts)} in {where})", path=tp)
        dp = found[0]
    if dp.suffix.lower() == ".npy":
        return base.read_depth_npy(dp, size)
    a = base.read_png16(dp)
    base.check_size(a, size, dp)
    return a.astype(np.float32) * np.float32(scale)


def read(path: Path, *, metric: bool | None = None):
    """One nerfstudio scene folder (``path/transforms.json``)."""
    path = Path(path)
    return read_transforms(path / "transforms.json", name=path.name, depth_dir=path / "depth",
                           metric=True if metric is None else metric)


def transforms_dict(scene, *, file_path, depth_path=None, camera_model: str = "OPENCV",
                    extra: dict | None = None) -> dict:
    """The transforms.json of ``scene`` (OpenGL c2w, 0.5-centre intrinsics), as nerfstudio writes it."""
    rgb, depth, K, c2w = base.scene_arrays(scene)
    H, W = rgb.shape[1:3]
    Ks = [base.centre_to_edge(k) for k in K]
    same = all(np.allclose(k, Ks[0], rtol=0, atol=1e-9) for k in Ks)
    meta: dict[str, Any] = {"camera_model": camera_model, "w": W, "h": H}
    cam = lambda k: {"fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2])}  # noqa: E731
    if same:
        meta.update(cam(Ks[0]))
    if camera_model == "OPENCV":
        meta.update({"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0})
    meta.update(extra or {})
    frames = []
    for f in range(rgb.shape[0]):
        fr: dict[str, Any] = {"file_path": file_path(f),
                              "transform_matrix": (c2w[f] @ base.OPENGL_TO_OPENCV).tolist()}
        if depth_path is not None:
            fr["depth_file_path"] = depth_path(f)
        if not same:
            fr.update(cam(Ks[f]))
        frames.append(fr)
    meta["frames"] = frames
    return meta


def write(scene, path: Path) -> Path:
    """Test writer: images/frame_%05d.png, depth/frame_%05d.png (uint16 mm), transforms.json."""
    import json

    path = Path(path)
    rgb, depth, _, _ = base.scene_arrays(scene)
    for f in range(rgb.shape[0]):
        base.write_file(path / "images" / f"frame_{f + 1:05d}.png", base.image_bytes(rgb[f]))
        base.write_file(path / "depth" / f"frame_{f + 1:05d}.png", base.png16_bytes(base.metres_to_mm(depth[f])))
    meta = transforms_dict(scene, file_path=lambda f: f"images/frame_{f + 1:05d}.png",
                           depth_path=lambda f: f"depth/frame_{f + 1:05d}.png")
    base.write_file(path / "transforms.json", json.dumps(meta, indent=2))
    return path


FORMAT = SceneFormat(
    name="nerfstudio", detect=detect, read=read, write=write, metric=True, priority=20,
    summary="transforms.json (OpenGL c2w, 0.5-centred cx/cy) + images/ + depth (uint16 mm or .npy)",
    depth_precision="1 mm (uint16 PNG) or float (.npy)")
