"""The probe end to end on the tiny random model of every supported family (integration tier).

Independent expectation: even a random VLM carries pixel appearance through its image tokens
(feasibility.md: ~0.35 at the embeddings on rich textures), so on rendered rooms the hidden-state
accuracy of the ``vision`` layer must be far above chance; a token grid that put features at the
wrong (row, col) would fall to chance."""

from __future__ import annotations

import math

import pytest

from gaspprobe.models.registry import supported
from gaspprobe.probing.run import probe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rooms():
    from gaspprobe.scenes import generate_scene

    return [generate_scene(s, frames=5, size=192) for s in range(2)]


@pytest.mark.parametrize("arch", supported())
def test_tiny_family_end_to_end(arch, rooms, tmp_path):
    from gaspprobe.models.testing import tiny_adapter

    ad = tiny_adapter(arch)
    res = probe(ad, rooms, None, gaps=[1, 2, 4], pairs_per_gap=2, out=tmp_path / "run")
    s = res.summary
    assert s["layers"] == ad.layer_names()
    assert s["n_matches"] > 50 and s["n_scenes"] == 2
    for r in ("r0", "r1"):
        for layer, v in s["accuracy"][r].items():
            assert 0.0 <= v <= 1.0, (r, layer, v)
    assert s["accuracy"]["r1"]["vision"] >= s["accuracy"]["r0"]["vision"]
    assert s["accuracy"]["r0"]["vision"] > 3 * s["chance"]
    assert s["peak_layer"].startswith("llm.")
    assert s["peak_accuracy"] == max(v for k, v in s["accuracy"]["r0"].items() if k.startswith("llm."))
    att = s["attention"]
    assert set(att["accuracy"]["r0"]) == {n for n in ad.layer_names() if n.startswith("llm.")}
    assert set(s["depth_probe"]) == set(ad.layer_names())
    assert all(d["n"] > 0 and d["absrel"] >= 0 and 0 <= d["delta1"] <= 1 for d in s["depth_probe"].values())
    t = res.table
    assert not t[(t.n > 0)].value.isna().any() and t[(t.n == 0)].value.isna().all()
    assert all(math.isfinite(v) for v in s["confidence_spearman"].values() if v is not None)
    again = probe(ad, rooms, None, gaps=[1, 2, 4], pairs_per_gap=2, out=tmp_path / "run")
    assert again.cached and again.summary == s


def test_every_feature_source_on_tiny_qwen(rooms):
    """q, k, v (before/after rotary), attention and the oracles all run through the same matcher on
    the model's own grid: the same GT matches for every source, accuracies in [0, 1], the
    xyz oracle far above the model and the random oracle near chance."""
    from gaspprobe.models.testing import tiny_adapter
    from gaspprobe.probing.features import ORDER

    ad = tiny_adapter("qwen2_5_vl")
    res = probe(ad, rooms, None, modes=list(ORDER), gaps=[1, 2], depth_probe=False)
    t = res.table
    pooled = t[t.scene.isna() & t.gap.isna() & t.metric.str.endswith("/acc_r0")]
    ns = set(pooled.n)
    assert len(ns) == 1 and ns.pop() == res.summary["n_matches"]
    assert set(pooled.metric.str.split("/").str[0]) == set(ORDER)
    assert pooled.value.between(0, 1).all()
    s = res.summary
    assert s["oracle:xyz"]["peak_accuracy"] > 2 * s["peak_accuracy"]
    n = s["n_matches"]
    assert abs(s["oracle:random"]["peak_accuracy"] - s["chance"]) < 4 * math.sqrt(s["chance"] / n) + 1e-9
    assert "vision" not in s["q"]["accuracy"]["r0"] and "vision" in s["accuracy"]["r0"]


def test_qkv_a_family_cannot_hook_is_refused_before_the_weights_load(rooms, monkeypatch, tmp_path):
    from gaspprobe import models
    from gaspprobe.errors import ModelError
    from gaspprobe.models.registry import adapter_class
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.probing.features import preflight

    d = tiny_model_dir("qwen2_5_vl")
    preflight(d, ["hidden", "v", "q_rope"])  # the real family can: no error, no weights read
    cls = adapter_class("qwen2_5_vl")
    monkeypatch.setattr(cls, "capture_modes", lambda self: ("hidden", "attention"))

    def no_load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(models, "load", no_load)
    with pytest.raises(ModelError, match="modes: feature source 'v' needs capture mode 'v', which .* cannot hook"):
        probe(str(d), rooms, None, modes=["hidden", "v"], out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
