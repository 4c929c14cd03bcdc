"""Lazy scenes: nothing is read until a frame is touched, an LRU cache bounds what stays in
memory, the scene index answers frame counts and sizes without reading, and a pickled lazy
scene carries its path, not its frames (what a data-loader worker receives)."""

from __future__ import annotations

import pickle
import tracemalloc

import pytest
import torch

from gaspprobe.scenes import Scene, generate_scene, load_scenes, patch_matches, write_index
from gaspprobe.scenes.formats import FORMATS
from gaspprobe.scenes.index import LazyScene, SceneCache


@pytest.fixture(scope="module")
def scene():
    return generate_scene(4, frames=4, size=(48, 64))


@pytest.fixture(scope="module")
def root(scene, tmp_path_factory):
    r = tmp_path_factory.mktemp("lazy") / "data"
    FORMATS.get("nerfstudio").write(scene, r / "capture")
    FORMATS.get("co3dv2").write(scene, r / "co3d" / "apple" / "1_2_3")
    FORMATS.get("scannet").write(scene, r / "scene0000_00")
    return r


def test_nothing_is_read_until_a_frame_is_touched(root, scene):
    cache = SceneCache(max_scenes=4)
    lazy = load_scenes(root, lazy=True, cache=cache)
    eager = load_scenes(root)
    assert all(isinstance(s, LazyScene) and isinstance(s, Scene) for s in lazy)
    assert [s.name for s in lazy] == [s.name for s in eager] == ["capture", "apple_1_2_3", "scene0000_00"]
    assert cache.reads == 0 and not any(s.loaded for s in lazy)
    for a, b in zip(lazy, eager):
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth) and torch.equal(a.K, b.K)
        assert a.metric is b.metric and a.num_frames == b.num_frames and a.size == b.size
        ma, mb = patch_matches(a, 0, 3, (6, 8)), patch_matches(b, 0, 3, (6, 8))
        assert torch.equal(ma.src, mb.src) and torch.equal(ma.tgt, mb.tgt)
        sub = a.subset([1, 2])
        assert type(sub) is Scene and torch.equal(sub.rgb, b.rgb[[1, 2]])
    assert cache.reads == 3


def test_index_answers_without_reading(root):
    write_index(root)
    cache = SceneCache(max_scenes=1)
    lazy = load_scenes(root, lazy=True, cache=cache)
    assert [(s.num_frames, s.size, s.metric) for s in lazy] == [(4, (48, 64), True), (4, (48, 64), False),
                                                               (4, (48, 64), True)]
    assert cache.reads == 0
    (root / "scenes.parquet").unlink()
    (root / "scenes.csv").unlink()


def test_lru_cache_rereads_evicted_scenes(root):
    cache = SceneCache(max_scenes=1)
    a, b, _ = load_scenes(root, lazy=True, cache=cache)
    a.rgb, b.rgb, a.rgb  # noqa: B018  (touch A, B, A: A was evicted by B)
    assert cache.reads == 3 and a.loaded and not b.loaded


def test_pickle_carries_the_path_not_the_frames(root, scene):
    (s,) = load_scenes(root / "capture", lazy=True, cache=SceneCache(1))
    s.rgb  # noqa: B018  (loaded)
    blob = pickle.dumps(s)
    assert len(blob) < 2000 < scene.rgb.numel()
    t = pickle.loads(blob)
    assert isinstance(t, LazyScene) and torch.equal(t.rgb, s.rgb)


def test_memory_flat_in_the_number_of_scenes(scene, tmp_path):
    def peak(n: int) -> int:
        r = tmp_path / f"n{n}"
        for k in range(n):
            FORMATS.get("nerfstudio").write(scene, r / f"s{k:03d}")
        load_scenes(r, lazy=True, cache=SceneCache(2))[0].rgb  # noqa: B018  (warm imports)
        tracemalloc.start()
        try:
            cache = SceneCache(max_scenes=2)
            for s in load_scenes(r, lazy=True, cache=cache):
                int(s.rgb.sum()) + int((s.depth > 0).sum())
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    p3, p15 = peak(3), peak(15)
    one_scene = scene.rgb.numel() + scene.depth.numel() * 4
    assert p15 < p3 + one_scene, (p3, p15, one_scene)  # eager loading would add 12 scenes' worth


def test_take_reads_only_the_frames_asked_for(tmp_path):
    """A lazy scene's ``take`` decodes only the requested frames (the training loader's path): with
    an unrequested frame's colour file corrupted, taking the others still works and equals the
    full scene's frames; the full read fails on the corrupt file."""
    import torch

    from gaspprobe.errors import DataError
    from gaspprobe.scenes import generate_scene, load_scenes, save_scene

    sc = generate_scene(5, frames=6, size=64)
    save_scene(sc, tmp_path / "s" / "scene0000_00")
    (tmp_path / "s" / "scene0000_00" / "color" / "4.png").write_bytes(b"not a png")
    lazy = load_scenes(tmp_path / "s", lazy=True)[0]
    part = lazy.take([1, 3, 5])
    assert part.num_frames == 3 and part.name == lazy.name
    assert torch.equal(part.rgb, sc.rgb[[1, 3, 5]])
    assert torch.allclose(part.depth, sc.depth[[1, 3, 5]], atol=1e-3)  # uint16 mm on disk
    assert torch.allclose(part.cam_to_world, sc.cam_to_world[[1, 3, 5]], atol=1e-5)
    assert not lazy.loaded  # nothing was read in full
    with pytest.raises(DataError):
        lazy.rgb  # the full read decodes frame 4
