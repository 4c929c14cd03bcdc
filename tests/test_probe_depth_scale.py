"""The depth probe on scenes whose depth is known only up to a scale (``Scene.metric`` False:
COLMAP / MVS reconstructions, CO3Dv2, DL3DV): fitted on centred log depth, scored after median
scaling, and marked in the summary, so an arbitrary per-scene scale never reads as metres."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gaspprobe.probing.depth import median_align, scale_invariant_target


def _scaled(scene, k: float, metric: bool):
    """The same scene in other units: depth and camera translations times ``k`` (a similarity, so
    every correspondence is unchanged)."""
    c2w = scene.cam_to_world.clone()
    c2w[:, :3, 3] *= k
    return dataclasses.replace(scene, depth=scene.depth * k, cam_to_world=c2w, metric=metric, objects=[])


def test_helpers_by_hand():
    d = torch.tensor([1.0, 2.0, 4.0])
    y = scale_invariant_target(d)
    assert torch.allclose(y, torch.log(d) - torch.log(d).mean())
    assert torch.allclose(scale_invariant_target(d * 7.5), y, atol=1e-6)  # any scale: the same target
    pred = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
    assert torch.allclose(median_align(pred, d), pred * (2.0 / 20.0))


@pytest.fixture(scope="module")
def setup():
    from gaspprobe.models.testing import tiny_adapter
    from gaspprobe.scenes.synthetic import generate_scene

    return tiny_adapter("qwen2_5_vl"), [generate_scene(i, frames=4, size=224) for i in range(4)]


def _probe(ad, scenes):
    from gaspprobe.probing.run import probe

    return probe(ad, scenes, "quick", frames_per_clip=4, gaps=[1, 2], modes=["hidden"], layers=["llm.1"]).summary


def test_non_metric_depth_scores_do_not_depend_on_each_scenes_scale(setup):
    ad, scenes = setup
    a = _probe(ad, [_scaled(s, k, metric=False) for s, k in zip(scenes, (1.0, 3.0, 0.2, 11.0))])
    b = _probe(ad, [_scaled(s, k, metric=False) for s, k in zip(scenes, (5.0, 0.5, 2.0, 1.0))])
    assert a["depth_metric"] is False and a["depth_scale_invariant_scenes"] == [s.name for s in scenes]
    da, db = a["depth_probe"]["llm.1"], b["depth_probe"]["llm.1"]
    assert da["n"] == db["n"] > 0
    assert da["absrel"] == pytest.approx(db["absrel"], rel=1e-4)
    assert da["delta1"] == pytest.approx(db["delta1"], abs=1e-6)
    # correspondences never depended on the units
    assert a["peak_accuracy"] == pytest.approx(b["peak_accuracy"], abs=1e-9)


def test_metric_scenes_keep_their_numbers_and_a_mixed_scale_set_would_mislead(setup):
    ad, scenes = setup
    metric = _probe(ad, scenes)
    assert metric["depth_metric"] is True and metric["depth_scale_invariant_scenes"] == []
    # the same per-scene scales read as metres: the held-out AbsRel is far worse than the
    # scale-invariant reading of the very same data
    wrong = _probe(ad, [_scaled(s, k, metric=True) for s, k in zip(scenes, (1.0, 3.0, 0.2, 11.0))])
    right = _probe(ad, [_scaled(s, k, metric=False) for s, k in zip(scenes, (1.0, 3.0, 0.2, 11.0))])
    assert wrong["depth_probe"]["llm.1"]["absrel"] > 2 * right["depth_probe"]["llm.1"]["absrel"]
