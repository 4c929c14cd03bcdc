"""Scenes: the Scene contract, exact camera geometry, ground-truth patch matches, procedural
rooms rendered by a torch ray caster, and the ScanNet-layout reader/writer.

Where to start: :func:`generate_scene` / :func:`make_scenes` to get scenes, :func:`load_scene`
to read one from disk, :func:`patch_matches` for ground-truth correspondences between two frames.
Conventions are stated once in :mod:`gaspprobe.scenes.types`. Submodules: ``geometry`` (unproject,
transform, project), ``correspondence`` (patch matches, token 3D points, patch depth),
``render`` (ray caster), ``synthetic`` (rooms, objects, camera paths), ``scannet`` (disk I/O).
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
    "load_scene": "scannet", "save_scene": "scannet", "load_scenes": "scannet", "check_scene": "scannet",
    "SceneWarning": "scannet",
    "generate_scene": "synthetic", "make_scenes": "synthetic", "VOCAB": "synthetic", "COLORS": "synthetic",
    "World": "render",
}

__all__ = ["Object3D", "Scene", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'gaspprobe.scenes' has no attribute {name!r}")
    val = getattr(import_module(f"gaspprobe.scenes.{mod}"), name)
    globals()[name] = val
    return val


def __dir__() -> list[str]:
    return sorted(__all__)
