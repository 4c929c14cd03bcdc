"""DL3DV-10K scenes: nerfstudio transforms + COLMAP model per scene, depth from an MVS release.

Layout (DL3DV-10K README; scene folders are named by a 64-hex-digit hash)::

    <hash>/transforms.json                nerfstudio; intrinsics for the FULL-size images,
                                          file_path "images/frame_00001.png"
    <hash>/images_4/frame_00001.png       a downscaled copy (images_2, images_4, images_8)
    <hash>/colmap/sparse/0/{cameras,images,points3D}.bin
    <hash>/depth/frame_00001.npy          float depth in the reconstruction's scale (NOT metric)

DL3DV ships no dense depth: ``depth/`` is whatever multi-view-stereo release the user holds (CUT3R's
is not metric), named by the image stem. Conventions converted: nerfstudio's (OpenGL c2w, cx/cy -
0.5), with intrinsics rescaled to the image folder actually present (in the 0.5-centre convention,
where scaling is exact, before the half-pixel shift). Without transforms.json the COLMAP model is
read instead (world-to-camera quaternions). ``metric`` is False.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from gaspprobe.scenes.formats import base
from gaspprobe.scenes.formats.base import SceneFormat

_HASH = re.compile(r"^[0-9a-f]{64}$")


def detect(path: Path) -> bool:
    return bool(_HASH.match(path.name)) and ((path / "transforms.json").is_file()
                                            or (path / "nerfstudio" / "transforms.json").is_file()
                                            or (path / "colmap" / "sparse" / "0").is_dir())


def read(path: Path, *, metric: bool | None = None):
    from gaspprobe.scenes.formats.colmap import read_colmap
    from gaspprobe.scenes.formats.nerfstudio import read_transforms

    path = Path(path)
    m = False if metric is None else metric
    for tp in (path / "transforms.json", path / "nerfstudio" / "transforms.json"):
        if tp.is_file():
            return read_transforms(tp, name=path.name, image_dir=path if tp.parent == path else None,
                                   depth_dir=path / "depth", depth_ext=(".npy", ".png"), metric=m)
    img = next((path / d for d in ("images", "images_2", "images_4", "images_8") if (path / d).is_dir()), path / "images")
    return read_colmap(path, name=path.name, model=path / "colmap" / "sparse" / "0", image_dir=img,
                       depth_dir=path / "depth", metric=m)


def scene_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def write(scene, path: Path, *, downscale: int = 4) -> Path:
    """Test writer: the scene's frames as ``images_<downscale>/``, transforms.json and a binary COLMAP
    model for images ``downscale`` times larger, depth/*.npy float32. ``path``'s name should be a
    64-hex hash (:func:`scene_hash`) for detection."""
    from gaspprobe.scenes.formats.colmap import model_entries, write_model
    from gaspprobe.scenes.formats.nerfstudio import transforms_dict

    path = Path(path)
    rgb, depth, _, _ = base.scene_arrays(scene)
    s = float(downscale)
    for f in range(rgb.shape[0]):
        base.write_file(path / f"images_{downscale}" / f"frame_{f + 1:05d}.png", base.image_bytes(rgb[f]))
        dp = path / "depth" / f"frame_{f + 1:05d}.npy"
        dp.parent.mkdir(parents=True, exist_ok=True)
        np.save(dp, depth[f].astype(np.float32))
    meta = transforms_dict(scene, file_path=lambda f: f"images/frame_{f + 1:05d}.png")
    H, W = scene.size
    meta.update(w=W * downscale, h=H * downscale)
    for k in ("fl_x", "fl_y", "cx", "cy"):  # full-size intrinsics (0.5-centre convention scales exactly)
        for d in [meta, *meta["frames"]]:
            if k in d:
                d[k] = d[k] * s
    base.write_file(path / "transforms.json", json.dumps(meta, indent=2))
    cams, ims = model_entries(scene)
    for c in cams:
        c["width"], c["height"] = W * downscale, H * downscale
        c["params"] = [p * s for p in c["params"]]
    write_model(path / "colmap" / "sparse" / "0", cams, ims, binary=True)
    return path


FORMAT = SceneFormat(
    name="dl3dv", detect=detect, read=read, write=write, metric=False, priority=70,
    summary="<hash>/transforms.json + images_N/ + colmap/sparse/0 + depth/*.npy (MVS, not metric)",
    depth_precision="float32 (.npy), scale of the reconstruction")
