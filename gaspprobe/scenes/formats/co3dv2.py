"""CO3Dv2 sequences: PyTorch3D NDC cameras and depth PNGs that hold float16 bits.

Layout (facebookresearch/co3d; pytorch3d ``implicitron/dataset/types.py``)::

    <root>/<category>/frame_annotations.jgz      gzipped JSON list, one entry per frame:
        {sequence_name, frame_number, image: {path, size: [H, W]},
         depth: {path, scale_adjustment, mask_path}, viewpoint: {R, T, focal_length,
         principal_point, intrinsics_format}}      (paths relative to <root>)
    <root>/<category>/<sequence>/images/frame000001.jpg
    <root>/<category>/<sequence>/depths/frame000001.jpg.geometric.png   uint16 PNG of float16 bits
    <root>/<category>/<sequence>/depth_masks/frame000001.png

One scene is one sequence folder. Conventions converted:

- PyTorch3D cameras act on ROW vectors: X_view = X_world R + T, with view axes +x left, +y up,
  +z forward. In column form X_view = R^T X_world + T; the OpenCV camera is diag(-1, -1, 1) X_view,
  so world-to-camera is (F R^T, F T) with F = diag(-1, -1, 1), inverted for camera-to-world.
- NDC intrinsics (``ndc_isotropic``: scale s = min(H, W) / 2 on both axes;
  ``ndc_norm_image_bounds``: s = (W / 2, H / 2)): fx = f_ndc s, cx = W/2 - p_ndc s. That is
  pytorch3d's ``opencv_from_cameras_projection``, whose principal point puts the centre of pixel 0
  at 0.5 (NDC +-1 are the image's outer edges): cx, cy are then reduced by 0.5.
- Depth: the PNG's uint16 values are reinterpreted as float16, times ``scale_adjustment``; pixels
  outside the depth mask become 0. NOT metric (reconstruction scale).
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import numpy as np

from gaspprobe.errors import DataError
from gaspprobe.scenes.formats import base
from gaspprobe.scenes.formats.base import SceneFormat

FLIP = np.diag([-1.0, -1.0, 1.0])


def detect(path: Path) -> bool:
    return (path / "images").is_dir() and (path.parent / "frame_annotations.jgz").is_file()


@functools.lru_cache(maxsize=4)
def _annotations(p: str, mtime: float) -> dict[str, list[dict]]:
    """Frame annotations grouped by sequence (cached: one file serves every sequence of a category)."""
    data = base.read_json(Path(p))
    if not isinstance(data, list):
        raise DataError("expected a list of frame annotations", path=p)
    out: dict[str, list[dict]] = {}
    for a in data:
        if not isinstance(a, dict) or not isinstance(a.get("sequence_name"), str):
            raise DataError("a frame annotation has no 'sequence_name'", path=p)
        out.setdefault(a["sequence_name"], []).append(a)
    return out


def ndc_to_K(focal, principal, H: int, W: int, fmt: str, path: Path, what: str) -> np.ndarray:
    """PyTorch3D NDC focal/principal point -> K with integer pixel centres."""
    if fmt == "ndc_isotropic":
        sx = sy = min(H, W) / 2.0
    elif fmt == "ndc_norm_image_bounds":
        sx, sy = W / 2.0, H / 2.0
    else:
        raise DataError(f"{what}: intrinsics_format {fmt!r} is not ndc_isotropic or ndc_norm_image_bounds", path=path)
    K_edge = base.K_from(focal[0] * sx, focal[1] * sy, W / 2.0 - principal[0] * sx, H / 2.0 - principal[1] * sy)
    return base.edge_to_centre(K_edge)


def read_float16_png(path: Path, size: tuple[int, int]) -> np.ndarray:
    a = base.read_png16(path, "depth (float16 bits)")
    base.check_size(a, size, path)
    return a.view(np.float16).astype(np.float32)


def scene_name(path: Path) -> str:
    return f"{path.parent.name}_{path.name}"


def read(path: Path, *, metric: bool | None = None):
    path = Path(path)
    ap = path.parent / "frame_annotations.jgz"
    anns = _annotations(str(ap), ap.stat().st_mtime).get(path.name)
    if not anns:
        raise DataError(f"no frame annotations for sequence {path.name!r}", path=ap)
    root = path.parent.parent
    frames = []
    for a in sorted(anns, key=lambda a: a.get("frame_number", 0)):
        what = f"frame {a.get('frame_number')} of {path.name!r}"
        img, dep, vp = a.get("image"), a.get("depth"), a.get("viewpoint")
        if not isinstance(img, dict) or not isinstance(vp, dict) or not isinstance(dep, dict):
            raise DataError(f"{what}: missing 'image', 'depth' or 'viewpoint'", path=ap)
        ip = root / base.field(img, "path", ap, str)
        rgb = base.read_rgb(ip)
        H, W = rgb.shape[:2]
        if list(img.get("size", [H, W])) != [H, W]:
            raise DataError(f"{what}: image.size {img.get('size')} (H, W) but the image is {H}x{W}", path=ap)
        R = base.matrix(vp.get("R"), (3, 3), ap, f"{what}: viewpoint.R")
        base.check_rotation(R, ap, f"{what}: viewpoint.R")
        T = base.matrix(vp.get("T"), (3,), ap, f"{what}: viewpoint.T")
        focal = base.matrix(vp.get("focal_length"), (2,), ap, f"{what}: viewpoint.focal_length")
        pp = base.matrix(vp.get("principal_point"), (2,), ap, f"{what}: viewpoint.principal_point")
        K = base.check_K(ndc_to_K(focal, pp, H, W, str(vp.get("intrinsics_format", "ndc_norm_image_bounds")), ap, what),
                         ap, f"{what}: viewpoint.focal_length")
        dp = root / base.field(dep, "path", ap, str)
        depth = read_float16_png(dp, (H, W)) * float(dep.get("scale_adjustment", 1.0))
        if isinstance(dep.get("mask_path"), str) and (root / dep["mask_path"]).is_file():
            from gaspprobe.scenes.scannet import _open_image

            m = np.asarray(_open_image(root / dep["mask_path"]).convert("L"))
            base.check_size(m, (H, W), root / dep["mask_path"], "depth mask")
            depth = np.where(m > 0, depth, 0.0)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        w2c = base.pose(FLIP @ R.T, FLIP @ T)
        frames.append({"rgb": rgb, "depth": depth, "K": K, "c2w": base.invert(w2c),
                       "id": int(a.get("frame_number", len(frames))), "file": ip})
    return base.make_scene(scene_name(path), frames,
                           metric=False if metric is None else metric, path=path)


def viewpoint(K: np.ndarray, c2w: np.ndarray, H: int, W: int) -> dict:
    """The CO3D viewpoint (ndc_isotropic) of an OpenCV camera; the inverse of :func:`read`'s maths."""
    s = min(H, W) / 2.0
    Ke = base.centre_to_edge(K)
    w2c = base.invert(c2w)
    return {"R": (w2c[:3, :3].T @ FLIP).tolist(), "T": (FLIP @ w2c[:3, 3]).tolist(),
            "focal_length": [Ke[0, 0] / s, Ke[1, 1] / s],
            "principal_point": [(W / 2.0 - Ke[0, 2]) / s, (H / 2.0 - Ke[1, 2]) / s],
            "intrinsics_format": "ndc_isotropic"}


def write(scene, path: Path) -> Path:
    """Test writer: ``path`` = <root>/<category>/<sequence>; the category's frame_annotations.jgz
    gains (or replaces) this sequence's entries."""
    path = Path(path)
    cat, seq = path.parent.name, path.name
    rgb, depth, K, c2w = base.scene_arrays(scene)
    H, W = rgb.shape[1:3]
    entries = []
    for f in range(rgb.shape[0]):
        n = f + 1
        rel = f"{cat}/{seq}"
        base.write_file(path / "images" / f"frame{n:06d}.jpg", base.image_bytes(rgb[f], "JPEG"))
        bits = np.asarray(depth[f], dtype=np.float16).view(np.uint16)
        base.write_file(path / "depths" / f"frame{n:06d}.jpg.geometric.png", base.png16_bytes(bits))
        base.write_file(path / "depth_masks" / f"frame{n:06d}.png",
                        base.image_bytes(((depth[f] > 0) * 255).astype(np.uint8)))
        entries.append({
            "sequence_name": seq, "frame_number": n, "frame_timestamp": f / 30.0,
            "image": {"path": f"{rel}/images/frame{n:06d}.jpg", "size": [H, W]},
            "depth": {"path": f"{rel}/depths/frame{n:06d}.jpg.geometric.png", "scale_adjustment": 1.0,
                      "mask_path": f"{rel}/depth_masks/frame{n:06d}.png"},
            "mask": {"path": f"{rel}/masks/frame{n:06d}.png", "mass": 0.0},
            "viewpoint": viewpoint(K[f], c2w[f], H, W), "meta": {}})
    ap = path.parent / "frame_annotations.jgz"
    old = [a for a in base.read_json(ap) if a.get("sequence_name") != seq] if ap.is_file() else []
    with gzip.open(ap, "wt", encoding="utf-8") as fh:
        json.dump(old + entries, fh)
    sp = path.parent / "sequence_annotations.jgz"
    olds = [a for a in base.read_json(sp) if a.get("sequence_name") != seq] if sp.is_file() else []
    with gzip.open(sp, "wt", encoding="utf-8") as fh:
        json.dump(olds + [{"sequence_name": seq, "category": cat, "video": None, "point_cloud": None,
                           "viewpoint_quality_score": 1.0}], fh)
    return path


FORMAT = SceneFormat(
    name="co3dv2", detect=detect, read=read, write=write, scene_name=scene_name, metric=False, priority=80,
    summary="<category>/frame_annotations.jgz (PyTorch3D NDC cameras) + <seq>/images + depths (float16 PNG)",
    depth_precision="float16 (relative 2^-11), reconstruction scale")
