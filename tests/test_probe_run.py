"""Integration tests of the probe runner on hand-built scenes with known ground truth.

The scene: a textured fronto-parallel plane at depth d, cameras translated along x by 0.5 m per
frame (fx = 64 px, d = 2 m), so a point shifts by exactly fx * t / d = 16 px = 2 tokens of an 8x8
grid of 8-px tokens per frame step, landing on token centres (never on box borders). The GT
target of source token (r, c) at gap g is (r, c - 2g) (and (r, c + 2g) in reverse), written out by
hand here, independent of the scenes package. Fake adapters then produce feature maps with a
known answer.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from gaspprobe import io
from gaspprobe.errors import ConfigError, DataError
from gaspprobe.models.adapter import LayerCapture, TokenGrid, layer_names
from gaspprobe.probing.run import probe
from gaspprobe.scenes.types import Scene

R = C = 8
T = R * C


def plane_scene(name="plane", frames=3, depth=2.0, size=64, seed=0) -> Scene:
    g = torch.Generator().manual_seed(seed)
    F = frames
    rgb = torch.randint(0, 256, (F, size, size, 3), generator=g, dtype=torch.uint8)
    dep = torch.full((F, size, size), float(depth))
    f = 64.0 * size / 64
    K = torch.tensor([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]]).expand(F, 3, 3).clone()
    c2w = torch.eye(4).expand(F, 4, 4).clone()
    c2w[:, 0, 3] = 0.5 * torch.arange(F) * depth / 2.0  # shift of 2 tokens per frame at any depth
    return Scene(rgb=rgb, depth=dep, K=K, cam_to_world=c2w, name=name)


def gt_target(src: torch.Tensor, gap_signed: int) -> torch.Tensor:
    """Hand GT: token (r, c) of frame i -> (r, c - 2*(j - i)) in frame j (-1 if out of frame)."""
    r, c = src // C, src % C - 2 * gap_signed
    return torch.where((c >= 0) & (c < C), r * C + c, torch.full_like(c, -1))


class FakeAdapter:
    """An adapter whose layer features come from ``make(scene, layer_index, mode)``."""

    def __init__(self, make, num_layers=2, name="fake"):
        self.make = make
        self._n = num_layers
        self.model_id = name
        self.model = None
        self.last_grid = None
        self.attention_scale = 1.0
        self.scene = None
        self.calls = 0

    def layer_names(self):
        return layer_names(self._n)

    def token_grid(self, frame_size, n_frames):
        return TokenGrid.regular(n_frames, R, C, frame_size)

    def set_scene(self, scene):
        self.scene = scene

    def capture(self, frames, *, mode="hidden", layers=None, per_frame=False):
        self.calls += 1
        self.last_grid = self.token_grid(tuple(frames.shape[1:3]), frames.shape[0])
        for li, name in enumerate(self.layer_names()):
            if layers is not None and name not in layers:
                continue
            out = self.make(self.scene, li, mode)
            if mode == "hidden":
                yield LayerCapture(name, feats=out)
            else:
                yield LayerCapture(name, query=out[0], key=out[1])


def coded(codes: torch.Tensor, dim: int, sink: int) -> torch.Tensor:
    """One-hot ``codes`` [F, T] plus a small constant component; token ``sink`` of every frame
    gets twice as much of it, so a source whose code appears nowhere in the target frame
    predicts ``sink`` (never a tie left to argmax)."""
    f = torch.nn.functional.one_hot(codes, dim).float()
    extra = torch.full(codes.shape + (1,), 0.1)
    extra[:, sink] = 0.2
    return torch.cat([f, extra], -1)


def world_codes(F: int) -> torch.Tensor:
    """Token (r, c) of frame k sees world column w = c + 2k: code r * 100 + w (same 3D point,
    same code, in every frame)."""
    t = torch.arange(T)
    return torch.stack([t // C * 100 + t % C + 2 * k for k in range(F)])


def half_right_features(scene, li, mode):
    """Layer 'vision': every token carries its world code (all matches right). Layer 'llm.0':
    tokens in odd columns carry a code unique to their frame, so exactly the matches from an even
    source column are right (a shift of 2g keeps the column parity), i.e. half of them."""
    F = scene.num_frames
    codes = world_codes(F)
    if li == 1:
        own = 1000 + torch.arange(F)[:, None] * T + torch.arange(T)[None]
        codes = torch.where((torch.arange(T) % C)[None] % 2 == 1, own, codes)
    f = coded(codes, 1000 + 8 * T, sink=0).reshape(F, R, C, -1)  # frames <= 8
    return f if mode == "hidden" else (f, f)


def test_known_feature_maps_give_exact_accuracy_per_gap(tmp_path):
    sc = plane_scene(frames=3)
    ad = FakeAdapter(half_right_features, num_layers=1)
    res = probe(ad, [sc], None, gaps=[1, 2], pairs_per_gap=4, modes=["hidden"], depth_probe=False,
                out=tmp_path / "run")
    s = res.summary
    # hand counts: gap 1: pairs (0,1),(1,0),(1,2),(2,1): 8 rows x 6 cols each; gap 2: (0,2),(2,0): 8 x 4
    n_g1, n_g2 = 4 * 48, 2 * 32
    assert s["n_matches"] == n_g1 + n_g2 and s["n_pairs"] == 6
    assert s["accuracy"]["r0"]["vision"] == 1.0
    # layer llm.0: the odd SOURCE columns carry a wrong code; a source at an odd column finds nothing
    # equal, and (one-hot codes being orthogonal) its argmax is token 0 of the target frame
    t = res.table
    row = t[(t.metric == "hidden/acc_r0") & t.scene.isna() & (t.layer == "llm.0") & t.gap.isna()]
    # expected: matches whose source column is even and whose target column keeps an even code too
    exp_hits = 0
    for (i, j) in [(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0)]:
        src = torch.arange(T)
        tg = gt_target(src, j - i)
        ok = tg >= 0
        src, tg = src[ok], tg[ok]
        exp_hits += int(((src % C) % 2 == 0).sum())  # target column parity equals source parity
    assert row.n.item() == n_g1 + n_g2
    assert row.value.item() == pytest.approx(exp_hits / (n_g1 + n_g2))
    assert row.value.item() == pytest.approx(0.5)
    # per-gap rows agree with hand counts
    g1 = t[(t.metric == "hidden/acc_r0") & t.scene.isna() & (t.layer == "vision") & (t.gap == 1)]
    assert g1.n.item() == n_g1 and g1.value.item() == 1.0
    assert s["chance"] == pytest.approx(1 / T)


def test_r1_tolerance_counts_neighbours_through_the_runner():
    sc = plane_scene(frames=2)

    def off_by_one(scene, li, mode):
        # frame 1 token (r, c) carries the code of world column c + 3 instead of c + 2, so world
        # column w sits one column left of its GT position; the sink is token 63 = (7, 7)
        t = torch.arange(T)
        codes = torch.stack([t // C * 100 + t % C, t // C * 100 + t % C + 3])
        return coded(codes, 1000, sink=T - 1).reshape(2, R, C, -1)

    ad = FakeAdapter(off_by_one, num_layers=0)
    res = probe(ad, [sc], None, gaps=[1], pairs_per_gap=1, both_directions=False, modes=["hidden"],
                depth_probe=False)
    # sources (r, c) with c >= 2 have GT column c-2; the code of world column c sits at column
    # c-3, which exists for c >= 3: off by exactly one column. c = 2 finds no code: predicts the
    # sink (7, 7), more than one patch from its GT (r, 0).
    n = 8 * 6
    hits_r1 = 8 * 5  # c in 3..7
    assert res.summary["accuracy"]["r0"]["vision"] == 0.0
    assert res.summary["accuracy"]["r1"]["vision"] == pytest.approx(hits_r1 / n)


def test_empty_cases_have_n0_and_no_nan_in_means(tmp_path):
    one = plane_scene("one_frame", frames=1)
    two = plane_scene("two", frames=2)
    ad = FakeAdapter(half_right_features, num_layers=1)
    res = probe(ad, [one, two], None, gaps=[1, 4], pairs_per_gap=2, modes=["hidden", "attention"],
                depth_probe=True, out=tmp_path / "r")
    t = res.table
    nan_rows = t[t.value.isna()]
    assert (nan_rows.n == 0).all() and (t[t.n == 0].value.isna()).all()
    one_rows = t[(t.scene == "one_frame") & t.metric.str.startswith("hidden/acc")]
    assert len(one_rows) and (one_rows.n == 0).all()
    alone = probe(ad, [two], None, gaps=[1, 4], pairs_per_gap=2, modes=["hidden"], depth_probe=False)
    assert res.summary["accuracy"] == alone.summary["accuracy"]
    assert res.summary["peak_accuracy"] == alone.summary["peak_accuracy"]
    # gap 4 does not fit: it is absent from the per-gap summary; robustness needs 2 gaps -> null
    assert list(res.summary["accuracy_by_gap"]) == ["1"] and res.summary["robustness"] is None
    s = io.read_json(tmp_path / "r" / "summary.json")
    assert s == res.summary  # NaN became null in both


def test_depth_probe_recovers_log_depth_on_held_out_scenes():
    scenes = [plane_scene(f"d{d}", frames=2, depth=d, seed=i) for i, d in enumerate([1.5, 4.0, 2.5, 3.0])]

    def depth_feats(scene, li, mode):
        g = torch.Generator().manual_seed(li)
        noise = torch.randn(scene.num_frames, R, C, 3, generator=g)
        d = scene.depth[0, 0, 0]
        logd = torch.log(d).expand(scene.num_frames, R, C, 1)
        f = torch.cat([logd * 2.0 + 1.0, noise], -1) if li == 0 else torch.cat([noise, 0 * logd + 1], -1)
        return f if mode == "hidden" else (f, f)

    ad = FakeAdapter(depth_feats, num_layers=0)  # the "vision" layer only
    res = probe(ad, scenes, None, gaps=[1], modes=["hidden"], ridge_lambda=1e-9, depth_train_fraction=0.5)
    dp = res.summary["depth_probe"]["vision"]
    assert res.summary["depth_train_scenes"] == ["d1.5", "d4.0"]
    assert dp["absrel"] == pytest.approx(0.0, abs=1e-5) and dp["delta1"] == 1.0
    assert dp["n"] == 2 * 2 * T
    ad2 = FakeAdapter(lambda s, li, m: depth_feats(s, 1, m), num_layers=0)  # no depth information
    res2 = probe(ad2, scenes, None, gaps=[1], modes=["hidden"], ridge_lambda=1e-3)
    assert res2.summary["depth_probe"]["vision"]["absrel"] > 0.1


def test_rerun_is_cached_and_mismatch_is_an_error(tmp_path):
    sc = [plane_scene("a", frames=3), plane_scene("b", frames=3, seed=1)]
    ad = FakeAdapter(half_right_features, num_layers=1)
    out = tmp_path / "run"
    r1 = probe(ad, sc, "quick", out=out)
    assert ad.calls == 2
    assert io.read_manifest(out, kind="probe")["status"] == "complete"
    for f in ("probe.parquet", "probe.csv", "summary.json", "accuracy_vs_layer.png", "accuracy_vs_gap.png"):
        assert (out / f).is_file(), f
    r2 = probe(ad, sc, "quick", out=out)
    assert r2.cached and ad.calls == 2
    assert r2.summary == r1.summary
    pd.testing.assert_frame_equal(r2.table, r1.table)
    with pytest.raises(DataError, match=r"run: holds a probe run with a different config\.seed;"):
        probe(ad, sc, "quick", out=out, seed=1)
    r3 = probe(ad, sc, "quick", out=out, seed=1, overwrite=True)
    assert not r3.cached and ad.calls == 4


def test_same_seed_same_numbers_and_table_schema():
    sc = [plane_scene("a", frames=6), plane_scene("b", frames=6, seed=1)]
    ad = FakeAdapter(lambda s, li, m: torch.randn(s.num_frames, R, C, 4, generator=torch.Generator().manual_seed(li))
                     if m == "hidden" else (torch.randn(s.num_frames, R, C, 4), torch.randn(s.num_frames, R, C, 4)),
                     num_layers=2)
    a = probe(ad, sc, None, modes=["hidden"], gaps=[1, 2, 4])
    b = probe(ad, sc, None, modes=["hidden"], gaps=[1, 2, 4])
    pd.testing.assert_frame_equal(a.table, b.table)
    c = probe(ad, sc, None, modes=["hidden"], gaps=[1, 2, 4], seed=3)
    assert a.summary["n_matches"] != c.summary["n_matches"] or not a.table.equals(c.table)
    assert list(a.table.columns) == ["model", "scene", "layer", "gap", "metric", "value", "n", "patch_unit"]
    assert set(a.table.patch_unit) == {"llm_token"}
    assert str(a.table.gap.dtype) == "Int64"
    assert a.summary["layers"] == ["vision", "llm.0", "llm.1"]
    assert a.summary["peak_layer"] in ("llm.0", "llm.1")


def test_bad_inputs_are_one_line_errors(tmp_path):
    ad = FakeAdapter(half_right_features, num_layers=1)
    with pytest.raises(ConfigError, match="unknown key 'gapz'"):
        probe(ad, [plane_scene()], None, gapz=[1])
    with pytest.raises(DataError, match="no scenes"):
        probe(ad, [], None)
    with pytest.raises(DataError, match="names must be unique"):
        probe(ad, [plane_scene(), plane_scene()], None)
    from gaspprobe.errors import ModelError

    with pytest.raises(ModelError, match="expected a model id"):
        probe(object(), [plane_scene()], None)
    with pytest.raises(ModelError, match="bad oracle"):
        probe("oracle:xyz:big", [plane_scene()], None)

    def wrong_shape(scene, li, mode):
        return torch.zeros(scene.num_frames, 4, 4, 3)

    with pytest.raises(ModelError, match=r"expected a capture of shape \[3,8,8,D\]"):
        probe(FakeAdapter(wrong_shape, num_layers=0), [plane_scene()], None, modes=["hidden"])


def test_oracles_on_the_hand_scene():
    sc = [plane_scene("a", frames=4), plane_scene("b", frames=4, depth=3.0, seed=1)]
    xyz = probe("oracle:xyz:8x8", sc, None, gaps=[1, 2], depth_probe=False)
    assert xyz.summary["peak_accuracy"] == 1.0
    assert xyz.summary["attention"]["peak_accuracy"] == 1.0
    assert xyz.summary["robustness"] == pytest.approx(1.0)
    assert not math.isnan(xyz.summary["chance"])


def test_layer_subset_and_unknown_layer():
    ad = FakeAdapter(half_right_features, num_layers=1)
    res = probe(ad, [plane_scene()], None, gaps=[1], layers=["llm.0"], depth_probe=False)
    assert res.summary["layers"] == ["llm.0"] and res.summary["attention"]["layers"] == ["llm.0"]
    assert res.summary["peak_accuracy"] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match=r"layers: unknown \['llm.7'\].*known: vision, llm.0"):
        probe(ad, [plane_scene()], None, layers=["llm.7"])


def test_front_door_api_is_the_runner(tmp_path):
    import gaspprobe

    res = gaspprobe.probe("oracle:xyz:8x8", [plane_scene()], "quick", gaps=[1])
    assert res.summary["peak_accuracy"] == 1.0 and res.recipe.frames_per_clip == 8


def test_scene_folder_description_tracks_regeneration(tmp_path):
    from gaspprobe.probing.run import describe_scenes
    from gaspprobe.scenes import make_scenes

    make_scenes(tmp_path / "s", n_scenes=1, frames=2, size=32, seed=0)
    a = describe_scenes(tmp_path / "s")
    assert a["path"] == str((tmp_path / "s").resolve()) and a["manifest"]["config"]["seed"] == 0
    m = io.read_json(tmp_path / "s" / "manifest.json")
    m["created"] = "2099-01-01T00:00:00Z"  # a regenerated set
    io.atomic_write_json(tmp_path / "s" / "manifest.json", m)
    assert describe_scenes(tmp_path / "s") != a
    assert describe_scenes([plane_scene("x"), plane_scene("y")]) == ["x", "y"]
