"""The paper's diagnostic on hand-built scenes with known answers: PCK in patches (r, headline_r,
patch unit), frame stride, feature sources (q/k/v captures, oracles on the model's grid), gap-
balanced mean and robustness, refusals before the model runs.

Scene: a textured fronto-parallel plane at 2 m, the camera moving 0.5 m along x per frame
(fx = 64 px), so a point moves exactly 2 tokens of an 8x8 grid (8-px tokens) per frame, landing on
token centres. Token (r, c) of frame i sees world column w = c + 2i; features built from w give a
known prediction: the exact GT, or the GT shifted by k columns.
"""

from __future__ import annotations

import pytest
import torch

from gaspprobe.errors import ConfigError, ModelError
from gaspprobe.models.adapter import LayerCapture, TokenGrid, layer_names
from gaspprobe.probing.run import probe
from gaspprobe.scenes.types import Scene

R = C = 8


def plane(name="p", frames=6, seed=0) -> Scene:
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (frames, 64, 64, 3), generator=g, dtype=torch.uint8)
    K = torch.tensor([[64.0, 0, 31.5], [0, 64.0, 31.5], [0, 0, 1.0]]).expand(frames, 3, 3).clone()
    c2w = torch.eye(4).expand(frames, 4, 4).clone()
    c2w[:, 0, 3] = 0.5 * torch.arange(frames)
    return Scene(rgb=rgb, depth=torch.full((frames, 64, 64), 2.0), K=K, cam_to_world=c2w, name=name)


def world_onehot(F: int, shift: int = 0, frame_index=None) -> torch.Tensor:
    """[F, R, C, R*W]: one-hot of (row, world column + shift); frame_index = the scene frame of each
    clip frame (default 0..F-1)."""
    idx = torch.arange(F) if frame_index is None else torch.as_tensor(frame_index)
    W = C + 2 * int(idx.max()) + 8
    out = torch.zeros(F, R, C, R * W)
    for f in range(F):
        for r in range(R):
            for c in range(C):
                w = c + 2 * int(idx[f]) + shift
                if 0 <= w < W:
                    out[f, r, c, r * W + w] = 1.0
    return out


class Fake:
    """Captures: hidden = exact world one-hots; 'v' = the same (a q/k/v-style source in feats);
    attention: queries exact, keys shifted by ``layer index + 1`` columns, so llm.0 predicts one
    token off and llm.1 two tokens off."""

    def __init__(self, merge=1, capture_modes=None):
        self.model_id = "fake"
        self.model = None
        self.last_grid = None
        self.attention_scale = 1.0
        self.frames_index = None
        self.spec = type("Spec", (), {"merge_size": merge})()
        if capture_modes is not None:
            self.capture_modes = capture_modes
        self.modes_asked = []

    def layer_names(self):
        return layer_names(2)

    def token_grid(self, frame_size, n_frames):
        return TokenGrid.regular(n_frames, R, C, frame_size)

    def set_scene(self, clip):
        self.clip = clip

    def capture(self, frames, *, mode="hidden", layers=None, per_frame=False):
        self.modes_asked.append(mode)
        F = frames.shape[0]
        self.last_grid = self.token_grid(tuple(frames.shape[1:3]), F)
        # which scene frame each clip frame is (the clip's camera x / 0.5 m)
        idx = (self.clip.cam_to_world[:, 0, 3] / 0.5).round().long()
        for li, name in enumerate(self.layer_names()):
            if mode != "hidden" and name == "vision":
                continue
            if mode in ("hidden", "v"):
                yield LayerCapture(name, feats=world_onehot(F, 0, idx))
            else:
                yield LayerCapture(name, query=world_onehot(F, 0, idx),
                                   key=world_onehot(F, -(li), idx))  # llm.0: shift 1, llm.1: shift 2


def pooled(res, metric, layer, gap=None):
    t = res.table
    t = t[t.scene.isna() & (t.metric == metric) & (t.layer == layer)]
    t = t[t.gap.isna()] if gap is None else t[t.gap == gap]
    assert len(t) == 1, (metric, layer, gap)
    return float(t.value.iloc[0]), int(t.n.iloc[0])


def expected(shift: int, r: int, gaps, scale: int = 1) -> float:
    """Hand PCK@r for keys shifted by ``shift`` columns, one pair per gap in both directions:
    GT targets of (i -> i+g) are columns [0, C-2g), of (i+g -> i) columns [2g, C); the prediction
    is the GT column + shift, or token 0 (row 0, col 0: all logits tie at 0) when that is off
    the frame. Tolerance r in patches of ``scale`` per token."""
    hits = n = 0
    rt = r // scale
    for g in gaps:
        cols = list(range(0, C - 2 * g)) + list(range(2 * g, C))
        for row in range(R):
            for c in cols:
                pc = c + shift
                pr, pc = (row, pc) if 0 <= pc < C else (0, 0)
                hits += max(abs(pr - row), abs(pc - c)) <= rt
                n += 1
    return hits / n


def test_tolerances_in_tokens_and_headline_peak():
    kw = dict(modes=["attention"], gaps=[1, 2], pairs_per_gap=1, depth_probe=False)
    res = probe(Fake(), [plane()], None, tolerances=[0, 1, 2], headline_r=2, **kw)
    for layer, shift in (("llm.0", 1), ("llm.1", 2)):  # keys shifted: predictions 1 / 2 tokens off
        for r in (0, 1, 2):
            assert pooled(res, f"attention/acc_r{r}", layer)[0] == pytest.approx(expected(shift, r, [1, 2])), (layer, r)
    assert expected(1, 0, [1, 2]) < 0.05 and expected(1, 1, [1, 2]) > 0.85
    s = res.summary
    # the peak is chosen on r=2 (llm.0: 0.94 vs llm.1: 0.79 at r=2); at r=0 both are ~0
    assert s["headline_r"] == 2 and s["peak_layer"] == "llm.0"
    assert s["peak_accuracy"] == pytest.approx(expected(1, 2, [1, 2]))
    assert s["patch_unit"] == "llm_token" and set(res.table.patch_unit) == {"llm_token"}
    # chance at r=2 on an 8x8 grid, border-clipped, lies between 9/64 (corner) and 25/64
    assert 9 / 64 <= s["headline_chance"] <= 25 / 64
    # the default headline (r=0) picks on r=0 instead
    assert probe(Fake(), [plane()], None, tolerances=[0, 1, 2], **kw).summary["peak_accuracy"] == pytest.approx(
        max(expected(1, 0, [1, 2]), expected(2, 0, [1, 2])))


def test_vision_patch_unit_divides_by_the_merge():
    res = probe(Fake(merge=2), [plane()], None, modes=["attention"], gaps=[1], tolerances=[0, 1, 2],
                patch_unit="vision_patch", depth_probe=False, pairs_per_gap=1)
    # one token = 2x2 vision patches: 1 token off = 2 patches off -> r1 misses, r2 hits
    for r in (0, 1, 2):
        assert pooled(res, f"attention/acc_r{r}", "llm.0")[0] == pytest.approx(expected(1, r, [1], scale=2))
    assert expected(1, 1, [1], scale=2) == expected(1, 0, [1]) < expected(1, 2, [1], scale=2)
    assert res.summary["patch_scale"] == 2 and set(res.table.patch_unit) == {"vision_patch"}
    # chance at r=1 vision patch = the exact token's
    assert res.summary["chance_r1"] == pytest.approx(res.summary["chance"])


def test_frame_stride_and_gt_counts():
    sc = plane(frames=7)
    res = probe(Fake(), [sc], None, modes=["hidden"], gaps=[1], frame_stride=2, pairs_per_gap=1,
                depth_probe=False, fps=30.0)
    # clip = frames 0, 2, 4, 6: clip gap 1 = 2 scene frames = 4 tokens of shift; one pair both ways
    acc, n = pooled(res, "hidden/acc_r0", "llm.0", 1)
    assert n == 2 * R * (C - 4) and acc == 1.0
    assert res.summary["frame_stride"] == 2 and res.summary["fps"] == 30.0


def test_q_k_v_sources_and_oracles_on_the_model_grid():
    ad = Fake()
    res = probe(ad, [plane()], None, modes=["v", "oracle:xyz", "oracle:random", "hidden"], gaps=[1, 2],
                depth_probe=False)
    assert ad.modes_asked == ["hidden", "v"]  # registry order; oracles need no forward
    assert pooled(res, "v/acc_r0", "llm.1")[0] == 1.0
    xyz, n = pooled(res, "oracle:xyz/acc_r0", "llm.0")
    assert xyz == 1.0 and n == pooled(res, "hidden/acc_r0", "llm.0")[1]
    rnd = pooled(res, "oracle:random/acc_r0", "llm.0")[0]
    assert rnd < 0.2  # chance is 1/64
    assert res.summary["mode"] == "hidden" and res.summary["oracle:xyz"]["peak_accuracy"] == 1.0


def test_gap_balanced_and_robustness_beside_pooled():
    res = probe(Fake(), [plane(frames=4)], None, modes=["attention"], gaps=[1, 2], tolerances=[0, 1],
                headline_r=1, depth_probe=False)
    s = res.summary
    by = {int(g): v for g, v in s["accuracy_by_gap"].items()}
    assert s["gap_balanced_accuracy"] == pytest.approx(sum(by.values()) / len(by))
    assert s["robustness"] == pytest.approx(by[2] / by[1])
    assert s["robustness_max_gap"] == 2 and s["robustness_at_max_gap"] == pytest.approx(by[2] / by[1])
    assert s["normalized_by_layer"]["llm.0"]["1"] == 1.0


def test_refusals_before_any_forward():
    ad = Fake(capture_modes=("hidden", "attention"))
    with pytest.raises(ModelError, match="modes: feature source 'v' needs capture mode 'v', which fake cannot hook"):
        probe(ad, [plane()], None, modes=["v"], depth_probe=False)
    assert ad.modes_asked == []
    with pytest.raises(ConfigError, match="gaps: Δt up to 24 needs clips of 25 frames; scene p gives 6"):
        probe(ad, [plane()], "paper")
    with pytest.raises(ConfigError, match="modes: unknown feature source 'qq'"):
        probe(ad, [plane()], None, modes=["qq"])
    with pytest.raises(ConfigError, match="tolerances"):
        probe(ad, [plane()], None, tolerances=[0, 1.5])
