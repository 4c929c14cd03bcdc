"""Training validation measures what the probe measures: checked against a naive reference.

The reference below is written independently of gaspprobe's matcher and tables: ground truth
straight from ``scenes.patch_matches`` (not the trainer's cache), a Python loop of cosine
argmaxes per source token, plain sums for pooled accuracy, ``max`` for the peak layer and the
robustness formula spelled out.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup():
    from gaspprobe.models.testing import tiny_adapter
    from gaspprobe.scenes import generate_scene
    from gaspprobe.training.data import MatchCache
    from gaspprobe.training.heads import HeadBank
    from gaspprobe.training.loop import GaspModule

    ad = tiny_adapter("qwen2_5_vl")
    scenes = [generate_scene(500 + s, frames=6, size=112) for s in range(2)]
    grid = ad.token_grid(scenes[0].size, 6)
    boxes = grid.frame_boxes(0)
    layers = ad.layer_names()[1:]
    module = GaspModule(ad, ad.model, HeadBank(layers, ad.hidden_size, 8), layers)
    cache = MatchCache(scenes, boxes, (grid.rows, grid.cols), (), None, max_gap=4)
    return ad, scenes, boxes, module, cache


def test_val_pairs_hand_listed():
    from gaspprobe.training.validation import val_pairs

    # 6 frames, 2 start frames per gap spread evenly over [0, 6 - g): g=1 -> 0, 4; g=2 -> 0, 3; g=4 -> 0, 1
    want = [(1, 0, 1), (1, 1, 0), (1, 4, 5), (1, 5, 4), (2, 0, 2), (2, 2, 0), (2, 3, 5), (2, 5, 3),
            (4, 0, 4), (4, 4, 0), (4, 1, 5), (4, 5, 1)]
    assert val_pairs(6, [1, 2, 4, 8], 2) == want
    assert val_pairs(3, [1, 2], 1) == [(1, 0, 1), (1, 1, 0), (2, 0, 2), (2, 2, 0)]


def test_validation_equals_naive_reference(setup):
    from types import SimpleNamespace

    from gaspprobe.scenes import patch_matches
    from gaspprobe.training.validation import val_pairs, val_rows, validate

    ad, scenes, boxes, module, cache = setup
    cfg = SimpleNamespace(val_frames=6, val_gaps=[1, 2, 4], val_pairs_per_gap=2)
    val = validate(module, cache, cfg, step=7)
    got = val.summary
    cols = cache.boxes["token"][1][1]

    hits: dict = {}
    hits2: dict = {}
    n: dict = {}
    for sc in scenes:
        with torch.no_grad():
            feats = ad.image_features(sc.rgb[:6][None])
        for g, i, j in val_pairs(6, cfg.val_gaps, 2):
            pm = patch_matches(sc, i, j, (boxes, boxes))
            if pm.src.numel() == 0:
                continue
            n[g] = n.get(g, 0) + pm.src.numel()
            for name, f in feats.items():
                f = f[0].reshape(6, -1, f.shape[-1])
                for s, t in zip(pm.src.tolist(), pm.tgt.tolist()):
                    sims = [torch.nn.functional.cosine_similarity(f[i, s], f[j, k], dim=0).item()
                            for k in range(f.shape[1])]
                    pred = max(range(len(sims)), key=lambda k: sims[k])
                    hits[(name, g)] = hits.get((name, g), 0) + (pred == t)
                    near = max(abs(pred // cols - t // cols), abs(pred % cols - t % cols)) <= 2   # PCK@2
                    hits2[(name, g)] = hits2.get((name, g), 0) + near
    names = list(feats)
    total = sum(n.values())
    acc = {name: sum(hits.get((name, g), 0) for g in n) / total for name in names}
    peak = max([x for x in names if x.startswith("llm.")], key=lambda x: acc[x])
    gaps = sorted(n)
    by_gap = {g: hits.get((peak, g), 0) / n[g] for g in gaps}
    rob = sum(by_gap[g] / by_gap[gaps[0]] for g in gaps[1:]) / (len(gaps) - 1)

    assert got.step == 7 and got.n == total and got.n_by_gap == n
    assert got.accuracy == pytest.approx(acc, abs=1e-12)
    assert got.peak_layer == peak and got.peak_accuracy == pytest.approx(acc[peak])
    assert got.robustness == pytest.approx(rob)
    assert 0 < total and any(0 < a < 1 for a in acc.values())       # not a degenerate case
    for name in names:                                   # r=2 (PCK@2patch), pooled and per gap
        assert val.by_r[2][name][0] == pytest.approx(sum(hits2.get((name, g), 0) for g in n) / total)
        for g in gaps:
            assert val.by_r[2][name][g] == pytest.approx(hits2.get((name, g), 0) / n[g])
        assert val.by_r[0][name][0] == pytest.approx(acc[name])
    assert any(val.by_r[2][x][0] > val.by_r[0][x][0] for x in names)
    rows = val_rows(val)
    assert rows[-1]["layer"] == "summary" and rows[-1]["peak_layer"] == peak
    assert {(r["layer"], r["gap"]) for r in rows[:-1]} == {(x, g) for x in names for g in [0, *gaps]}


def test_batch_accuracy_equals_naive_reference(setup):
    from gaspprobe.training.data import Clip
    from gaspprobe.training.validation import batch_accuracy

    ad, scenes, boxes, module, cache = setup
    clips = [Clip(0, (0, 2, 3)), Clip(1, (1, 4, 5))]
    m = cache.matches(clips)["token"]
    torch.manual_seed(0)
    feats = torch.randn(2, 3, boxes.shape[0], 16)
    feats[:, 1:] = feats[:, :1] + 0.8 * torch.randn(2, 2, boxes.shape[0], 16)   # partly matchable
    got, cnt = batch_accuracy(feats, m)
    hit = 0
    for k in range(m.num_matches):
        p = int(m.pair[k])
        b, i, j = int(m.pair_b[p]), int(m.pair_i[p]), int(m.pair_j[p])
        q = feats[b, i, int(m.src[k])]
        sims = torch.nn.functional.cosine_similarity(q[None], feats[b, j], dim=1)
        hit += int(sims.argmax()) == int(m.tgt[k])
    assert cnt == m.num_matches > 0
    assert got == pytest.approx(hit / cnt) and 0 < got < 1
    empty = dataclasses.replace(m, pair=m.pair[:0], src=m.src[:0], tgt=m.tgt[:0], depth=m.depth[:0])
    assert math.isnan(batch_accuracy(feats, empty)[0]) and batch_accuracy(feats, empty)[1] == 0
