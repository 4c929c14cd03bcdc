"""Scenes: the Scene contract, exact camera geometry, ground-truth patch matches, procedural
rooms rendered by a torch ray caster, the ScanNet-layout reader/writer, and readers for the real
datasets' layouts (``formats``: one module per format, one registry line each).

Where to start: :func:`generate_scene` / :func:`make_scenes` to get scenes, :func:`load_scenes`
to read a scene, a folder of scenes or a dataset root of any registered format from disk, :func:`patch_matches` for ground-truth correspondences between two frames.
Conventions are stated once in :mod:`gaspprobe.scenes.types`. Submodules: ``geometry`` (unproject,
transform, project), ``correspondence`` (patch matches, token 3D points, patch depth),
``render`` (ray caster), ``synthetic`` (rooms, objects, camera paths), ``scannet`` (disk I/O),
``formats`` (the format registry), ``index`` (find / read / check / convert / index any format).
Names are imported lazily so that ``import gaspprobe.scenes`` does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from gaspprobe.scenes.types import Object3D, Scene

_LAZY = {
    "unproject": "geometry", "transform": "geometry", "project": "geometry", "invert_pose": "geometry",
    "relative_pose": "geometry", "pixel_grid": "geometry", "look_at": "geometry",
    "PatchMatches": "correspondence", "patch_matches": "correspondence", "patch_matches_many": "correspondence",
    "BoxIndex": "correspondence", "token_world_points": "correspondence",
    "patch_depth": "correspondence", "box_median_depth": "correspondence", "regular_boxes": "correspondence",
    "DEPTH_TOL": "correspondence",
    "load_scene": "index", "load_scenes": "index", "find_scenes": "index", "describe": "index",
    "convert": "index", "write_index": "index", "detect_format": "index", "require_metric": "index",
    "LazyScene": "index", "SceneCache": "index",
    "save_scene": "scannet", "check_scene": "scannet", "SceneWarning": "scannet",
    "FORMATS": "formats",
    "generate_scene": "synthetic", "make_scenes": "synthetic", "VOCAB": "synthetic", "COLORS": "synthetic",
    "World": "render",
}

_ALIAS = {"detect_format": "detect"}

__all__ = ["Object3D", "Scene", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'gaspprobe.scenes' has no attribute {name!r}")
    val = getattr(import_module(f"gaspprobe.scenes.{mod}"), _ALIAS.get(name, name))
    globals()[name] = val
    return val


def __dir__() -> list[str]:
    return sorted(__all__)
