"""ScanNet frame exports (SensReader) and every scene gaspprobe writes: the reader and writer in
:mod:`gaspprobe.scenes.scannet`, behind the format registry. Already in the contract: OpenCV
camera-to-world ``pose/<i>.txt``, integer-centred K (cx = 319.5 for 640), uint16 mm depth."""

from __future__ import annotations

from pathlib import Path

from gaspprobe.scenes.formats.base import SceneFormat


def detect(path: Path) -> bool:
    # colour/ alone marks a scene (as before): a scene missing depth/ or pose/ is reported as broken,
    # not silently skipped as "not a scene"
    from gaspprobe.scenes.scannet import is_scene_dir

    return is_scene_dir(path)


def read(path: Path, *, metric: bool | None = None):
    from gaspprobe.scenes.scannet import load_scene

    s = load_scene(path)
    if metric is not None:
        s.metric = metric
    return s


def read_frames(path: Path, frames, *, metric: bool | None = None):
    # the training loader's read: a clip's frames, without the instance maps nobody trains on
    from gaspprobe.scenes.scannet import load_scene

    s = load_scene(path, frames=list(frames), with_instance=False)
    if metric is not None:
        s.metric = metric
    return s


def write(scene, path: Path) -> Path:
    from gaspprobe.scenes.scannet import save_scene

    return save_scene(scene, path, overwrite=True)


FORMAT = SceneFormat(
    name="scannet", detect=detect, read=read, write=write, metric=True, priority=100, read_frames=read_frames,
    summary="color/<i>.jpg|png, depth/<i>.png (uint16 mm), pose/<i>.txt (OpenCV c2w), intrinsic/",
    depth_precision="1 mm (uint16 PNG)")
