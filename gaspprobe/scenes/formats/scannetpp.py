"""ScanNet++ DSLR scenes: nerfstudio transforms + images + depth rendered from the laser-scan mesh.

Layout (``scannetpp`` toolkit: ``common/scene_release.py``, ``common/render.py``)::

    <scene_id>/dslr/nerfstudio/transforms.json   nerfstudio conventions; ``frames`` + ``test_frames``
    <scene_id>/dslr/resized_images/DSC01752.JPG  ``file_path`` is relative to this folder
    <scene_id>/dslr/render_depth/DSC01752.png    uint16 millimetres, 0 = invalid (rendered, metric)

Conventions converted: those of :mod:`~gaspprobe.scenes.formats.nerfstudio` (OpenGL c2w -> OpenCV,
cx/cy - 0.5). The released DSLR camera is ``OPENCV_FISHEYE`` (k1..k4): with OpenCV installed the
frame is undistorted to the pinhole with the same fx, fy, cx, cy (colour bilinear, depth nearest),
otherwise the scene is refused with one line naming transforms.json and ``camera_model``. The
toolkit's ``dslr.undistort_dslr`` output (``camera_model`` PINHOLE) is read as it is. Frames
flagged ``"is_bad": true`` are skipped with one warning. The iPhone stream is not read here.
"""

from __future__ import annotations

import json
from pathlib import Path

from gaspprobe.scenes.formats import base
from gaspprobe.scenes.formats.base import SceneFormat
from gaspprobe.scenes.formats.nerfstudio import read_transforms, transforms_dict


def _dslr(path: Path) -> Path:
    """The scene's dslr/ folder (the scene folder, or dslr/ itself when pointed at directly)."""
    return path if path.name == "dslr" and not (path / "dslr").is_dir() else path / "dslr"


def detect(path: Path) -> bool:
    return (_dslr(path) / "nerfstudio" / "transforms.json").is_file()


def scene_name(path: Path) -> str:
    return _dslr(Path(path)).parent.name


def read(path: Path, *, metric: bool | None = None):
    path = Path(path)
    d = _dslr(path)
    return read_transforms(d / "nerfstudio" / "transforms.json", name=scene_name(path), image_dir=d / "resized_images",
                           depth_dir=d / "render_depth", depth_ext=(".png",), depth_scale=1e-3,
                           frame_keys=("frames", "test_frames"), metric=True if metric is None else metric)


def write(scene, path: Path, *, camera_model: str = "PINHOLE") -> Path:
    """Test writer: DSC%05d.JPG images, render_depth/*.png (uint16 mm), transforms.json whose last
    frame sits in ``test_frames`` (as the release splits them)."""
    path = Path(path)
    d = path / "dslr"
    rgb, depth, _, _ = base.scene_arrays(scene)
    name = lambda f: f"DSC{f + 1:05d}.JPG"  # noqa: E731
    for f in range(rgb.shape[0]):
        base.write_file(d / "resized_images" / name(f), base.image_bytes(rgb[f], "JPEG"))
        base.write_file(d / "render_depth" / f"DSC{f + 1:05d}.png", base.png16_bytes(base.metres_to_mm(depth[f])))
    extra = {"k1": 0.0, "k2": 0.0, "k3": 0.0, "k4": 0.0} if camera_model == "OPENCV_FISHEYE" else {}
    meta = transforms_dict(scene, file_path=name, camera_model=camera_model,
                           extra={**extra, "has_mask": False})
    for fr in meta["frames"]:
        fr["is_bad"] = False
    meta["test_frames"] = meta["frames"][-1:]
    meta["frames"] = meta["frames"][:-1]
    base.write_file(d / "nerfstudio" / "transforms.json", json.dumps(meta, indent=2))
    return path


FORMAT = SceneFormat(
    name="scannetpp", detect=detect, read=read, write=write, scene_name=scene_name, metric=True, priority=90,
    summary="dslr/nerfstudio/transforms.json + dslr/resized_images + dslr/render_depth (uint16 mm)",
    depth_precision="1 mm (uint16 PNG)")
