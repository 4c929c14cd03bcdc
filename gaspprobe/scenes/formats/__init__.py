"""Scene formats: one module per on-disk layout, one registry line each.

Each module defines ``FORMAT``, a :class:`~gaspprobe.scenes.formats.base.SceneFormat` carrying
``detect(path) -> bool`` (is this folder one scene of the format?), ``read(path) -> Scene`` (into
the contract of :mod:`gaspprobe.scenes.types`: OpenCV camera, camera-to-world, integer pixel
centres, planar depth, ``metric``) and ``write(scene, path)`` (the tests' oracle: lays a Scene out
exactly as the dataset does). Adding a format is one module plus one line below; the round-trip
tests in ``tests/test_scene_formats.py`` run over every registered format.

Where to start: :func:`gaspprobe.scenes.index.load_scenes` reads any folder, whatever its format.
"""

from __future__ import annotations

from gaspprobe.registry import Registry
from gaspprobe.scenes.formats.base import SceneFormat

FORMATS: Registry[SceneFormat] = Registry("scene format")
FORMATS.register("scannet", "gaspprobe.scenes.formats.scannet:FORMAT")
FORMATS.register("scannetpp", "gaspprobe.scenes.formats.scannetpp:FORMAT")
FORMATS.register("arkitscenes", "gaspprobe.scenes.formats.arkitscenes:FORMAT")
FORMATS.register("co3dv2", "gaspprobe.scenes.formats.co3dv2:FORMAT")
FORMATS.register("hypersim", "gaspprobe.scenes.formats.hypersim:FORMAT")
FORMATS.register("tartanair", "gaspprobe.scenes.formats.tartanair:FORMAT")
FORMATS.register("dl3dv", "gaspprobe.scenes.formats.dl3dv:FORMAT")
FORMATS.register("nerfstudio", "gaspprobe.scenes.formats.nerfstudio:FORMAT")
FORMATS.register("colmap", "gaspprobe.scenes.formats.colmap:FORMAT")


def by_priority() -> list[SceneFormat]:
    """Every format, most specific first (the order detection tries them)."""
    return sorted((FORMATS.get(n) for n in FORMATS.names()), key=lambda f: (-f.priority, f.name))


__all__ = ["FORMATS", "SceneFormat", "by_priority"]
