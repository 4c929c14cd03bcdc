"""Unit tests of the probe's pure parts (no models, no scenes): matching, accuracy at r,
Spearman, ridge depth probe, robustness, pair sampling, recipes, oracle feature lifts.

Expectations are independent: hand-built feature maps with a known answer, scipy/numpy
references, brute-force loops written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gaspprobe.errors import ConfigError
from gaspprobe.probing.depth import RidgeStats, depth_scores
from gaspprobe.probing.match import chance_within, hits_within, match_tokens, spearman
from gaspprobe.probing.recipe import Recipe, load_recipe, recipes_dir
from gaspprobe.probing.temporal import robustness, sample_pairs


# --------------------------------------------------------------------------- matching
def _one_hot_frames(T: int, src_feat_targets: torch.Tensor, src_tokens: torch.Tensor) -> torch.Tensor:
    """Frame 1: token t has feature e_t. Frame 0: token src_tokens[k] has e_{src_feat_targets[k]}."""
    f = torch.zeros(2, T, T)
    f[1] = torch.eye(T)
    f[0, src_tokens] = torch.nn.functional.one_hot(src_feat_targets, T).float()
    return f


def test_hand_built_features_give_exactly_half():
    T = 16  # a 4x4 grid
    src = torch.arange(0, 12)
    gt = torch.tensor([5, 6, 7, 9, 10, 11, 13, 14, 15, 1, 2, 3])
    # the first half points at the GT token, the second half at a token far from it
    wrong = (gt + 8) % T
    feat_t = torch.cat([gt[:6], wrong[6:]])
    feats = _one_hot_frames(T, feat_t, src)
    m = match_tokens(feats, feats, torch.tensor([[0, 1]]), [src], [gt], cosine=True)
    assert m.pred.tolist() == feat_t.tolist()
    assert hits_within(m.pred, m.gt, 4, 0).double().mean().item() == 0.5
    assert m.pair.tolist() == [0] * 12


def test_matching_several_pairs_and_directions_against_a_loop():
    g = torch.Generator().manual_seed(1)
    F, T, D = 4, 12, 5
    feats = torch.randn(F, T, D, generator=g)
    pairs = torch.tensor([[0, 1], [1, 0], [2, 3], [3, 1]])
    src = [torch.randint(0, T, (n,), generator=g) for n in (5, 0, 7, 3)]
    tgt = [torch.randint(0, T, (s.numel(),), generator=g) for s in src]
    m = match_tokens(feats, feats, pairs, src, tgt, cosine=True, max_elements=2 * T)  # tiny chunks
    exp = []
    for p, (i, j) in enumerate(pairs.tolist()):
        for s in src[p].tolist():
            sims = [float(torch.nn.functional.cosine_similarity(feats[i, s], feats[j, t], dim=0))
                    for t in range(T)]
            exp.append(int(np.argmax(sims)))
    assert m.pred.tolist() == exp
    assert m.pair.tolist() == [0] * 5 + [2] * 7 + [3] * 3


def test_attention_mode_uses_raw_dot_products_and_scaled_confidence():
    # cosine and dot product disagree here: a long key wins the dot product
    q = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    k = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.1], [5.0, 4.0]]])
    pairs = torch.tensor([[0, 1]])
    hid = match_tokens(k, k, pairs, [torch.tensor([1])], [torch.tensor([0])], cosine=True)
    att = match_tokens(q, k, pairs, [torch.tensor([0])], [torch.tensor([0])], cosine=False, logit_scale=0.5)
    assert att.pred.tolist() == [1]
    ref = torch.softmax(torch.tensor([1.0, 5.0]) * 0.5, 0).max()
    assert att.conf.item() == pytest.approx(ref.item(), rel=1e-6)
    assert hid.pred.numel() == 1


def test_confidence_is_softmax_max_with_temperature():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 9, 4, generator=g)
    src = torch.arange(9)
    m = match_tokens(feats, feats, torch.tensor([[0, 1]]), [src], [src], cosine=True, temperature=0.07)
    f = torch.nn.functional.normalize(feats, dim=-1)
    ref = torch.softmax(f[0] @ f[1].T / 0.07, dim=1).max(dim=1).values
    assert torch.allclose(m.conf, ref, atol=1e-6)


def test_no_matches_gives_empty_result():
    feats = torch.randn(2, 4, 3)
    m = match_tokens(feats, feats, torch.tensor([[0, 1]]), [torch.zeros(0, dtype=torch.long)],
                     [torch.zeros(0, dtype=torch.long)])
    assert len(m) == 0
    m = match_tokens(feats, feats, torch.zeros(0, 2, dtype=torch.long), [], [])
    assert len(m) == 0


def test_hits_within_r1_hand_case_and_brute_force():
    cols = 5
    gt = torch.tensor([12, 12, 12, 12, 0, 4])
    pred = torch.tensor([12, 18, 6, 14, 6, 8])  # same, diag, diag, two cols away, diag, down-left
    assert hits_within(pred, gt, cols, 0).tolist() == [True, False, False, False, False, False]
    assert hits_within(pred, gt, cols, 1).tolist() == [True, True, True, False, True, True]
    # row wrap-around must not count: token 4 (row 0, col 4) vs 5 (row 1, col 0) are 4 cols apart
    assert hits_within(torch.tensor([5]), torch.tensor([4]), cols, 1).tolist() == [False]
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 35, (200,), generator=g), torch.randint(0, 35, (200,), generator=g)
    for r in (0, 1, 2):
        exp = [max(abs(x // cols - y // cols), abs(x % cols - y % cols)) <= r for x, y in zip(a.tolist(), b.tolist())]
        assert hits_within(a, b, cols, r).tolist() == exp


def test_chance_within_counts_neighbours_at_borders():
    rows, cols = 4, 5
    gt = torch.tensor([0, 7, 19])  # a corner, an interior token, the last corner
    assert torch.allclose(chance_within(gt, rows, cols, 0), torch.full((3,), 1 / 20))
    assert torch.allclose(chance_within(gt, rows, cols, 1), torch.tensor([4, 9, 4]) / 20.0)


# --------------------------------------------------------------------------- spearman
def test_spearman_matches_scipy_with_ties_and_binary():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, generator=g)
    y = (torch.rand(300, generator=g) < x).double()  # binary, correlated
    rho, n = spearman(x, y)
    assert n == 300
    assert rho == pytest.approx(stats.spearmanr(x.numpy(), y.numpy()).statistic, abs=1e-10)
    xt = torch.randint(0, 5, (100,), generator=g).double()  # heavy ties on both sides
    yt = torch.randint(0, 3, (100,), generator=g).double()
    assert spearman(xt, yt)[0] == pytest.approx(stats.spearmanr(xt.numpy(), yt.numpy()).statistic, abs=1e-10)


def test_spearman_undefined_is_nan_with_n0():
    assert spearman(torch.rand(10), torch.ones(10)) == (pytest.approx(float("nan"), nan_ok=True), 0)
    rho, n = spearman(torch.zeros(0), torch.zeros(0))
    assert math.isnan(rho) and n == 0


# --------------------------------------------------------------------------- depth probe
def test_ridge_matches_numpy_lstsq_and_closed_form():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)) * np.array([1, 10, 0.1, 3, 1, 1]) + 2.0
    y = X @ rng.normal(size=6) + 0.7 + 0.01 * rng.normal(size=200)
    st = RidgeStats(6)
    for a in range(0, 200, 37):  # streamed in uneven batches
        st.update(torch.from_numpy(X[a:a + 37]), torch.from_numpy(y[a:a + 37]))
    w, b = st.solve(0.0)
    A = np.hstack([X, np.ones((200, 1))])
    ref = np.linalg.lstsq(A, y, rcond=None)[0]
    assert np.allclose(w.numpy(), ref[:6], atol=1e-6) and b == pytest.approx(ref[6], abs=1e-6)
    # ridge with an unpenalised bias: centred normal equations with lambda * mean diag
    lam = 0.3
    Xc, yc = X - X.mean(0), y - y.mean()
    G = Xc.T @ Xc
    w_ref = np.linalg.solve(G + lam * np.trace(G) / 6 * np.eye(6), Xc.T @ yc)
    w2, b2 = st.solve(lam)
    assert np.allclose(w2.numpy(), w_ref, atol=1e-8)
    assert b2 == pytest.approx(y.mean() - X.mean(0) @ w_ref, abs=1e-8)
    assert RidgeStats(3).solve(0.1) is None


def test_depth_scores_hand_values():
    gt = torch.tensor([1.0, 2.0, 4.0, 0.0])  # the 0 is invalid and ignored
    pred = torch.tensor([1.1, 3.0, 4.0, 9.0])
    s = depth_scores(pred, gt)
    assert s.n == 3
    assert s.absrel == pytest.approx((0.1 + 0.5 + 0.0) / 3)
    assert s.delta1 == pytest.approx(2 / 3)  # 1.5 >= 1.25 fails
    e = depth_scores(torch.ones(2), torch.zeros(2))
    assert e.n == 0 and math.isnan(e.absrel)


# --------------------------------------------------------------------------- temporal
def test_robustness_on_a_hand_table():
    acc = {1: 0.8, 2: 0.6, 4: 0.4, 8: float("nan")}
    n = {1: 100, 2: 50, 4: 10, 8: 0}
    rob, ratios = robustness(acc, n)
    assert rob == pytest.approx((0.6 / 0.8 + 0.4 / 0.8) / 2)
    assert ratios == pytest.approx({1: 1.0, 2: 0.75, 4: 0.5})
    # g_min without matches is skipped: the base becomes the next gap
    rob2, _ = robustness({1: 0.0, 2: 0.5, 4: 0.25}, {1: 0, 2: 10, 4: 10})
    assert rob2 == pytest.approx(0.5)
    assert math.isnan(robustness({1: 0.5}, {1: 10})[0])
    assert math.isnan(robustness({1: 0.0, 2: 0.5}, {1: 10, 2: 10})[0])


def test_sample_pairs_gaps_counts_and_determinism():
    p = sample_pairs(10, [1, 4, 8, 16], 3, seed=5)
    assert p == sample_pairs(10, [1, 4, 8, 16], 3, seed=5)
    assert p != sample_pairs(10, [1, 4, 8, 16], 3, seed=6)
    by_gap = {}
    for i, j, g in p:
        assert abs(i - j) == g and 0 <= i < 10 and 0 <= j < 10
        by_gap.setdefault(g, []).append((i, j))
    assert sorted(by_gap) == [1, 4, 8]  # 16 does not fit in 10 frames
    assert len(by_gap[1]) == 6 and len(by_gap[8]) == 4  # gap 8: only 2 starts, both directions
    assert len(set(by_gap[1])) == 6
    assert sample_pairs(1, [1, 2], 4, seed=0) == []
    one_way = sample_pairs(10, [2], 3, seed=0, both_directions=False)
    assert all(j == i + 2 for i, j, _ in one_way) and len(one_way) == 3


# --------------------------------------------------------------------------- recipes
def test_gasp_recipe_file_equals_defaults_and_quick_loads():
    assert (recipes_dir() / "gasp.toml").is_file()
    assert load_recipe("gasp") == Recipe() == load_recipe(None)
    q = load_recipe("quick")
    assert q.modes == ["hidden"] and q.frames_per_clip == 8
    assert load_recipe(recipes_dir() / "quick.toml") == q


def test_recipe_overrides_and_errors(tmp_path):
    r = load_recipe("gasp", gaps=[4, 1, 4], modes=["attention", "hidden"], seed=None)
    assert r.gaps == [1, 4] and r.modes == ["hidden", "attention"] and r.seed == 0
    with pytest.raises(ConfigError, match=r"unknown key 'gapz' \(did you mean 'gaps'\?\)"):
        load_recipe("gasp", gapz=[1])
    p = tmp_path / "r.toml"
    p.write_text("pairs_per_gap = 'many'\n")
    with pytest.raises(ConfigError, match=r"r.toml: pairs_per_gap: expected int"):
        load_recipe(p)
    p.write_text("modes = ['hiden']\n")
    with pytest.raises(ConfigError, match=r"r.toml: modes"):
        load_recipe(p)
    with pytest.raises(ConfigError, match=r"unknown recipe 'nope'.*gasp"):
        load_recipe("nope")
    with pytest.raises(ConfigError, match="tolerances: must include 0"):
        load_recipe(None, tolerances=[1])
    assert "\n" not in str(ConfigError("x"))


# --------------------------------------------------------------------------- oracle feature lifts
def test_oracle_lifts_rank_tokens_by_3d_distance():
    from gaspprobe.probing.oracle import _xyz_capture

    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(2, 12, 12, 3, generator=g) * torch.tensor([8.0, 6.0, 3.0])
    xyz[0] = xyz[1] + 0.03 * torch.randn(12, 12, 3, generator=g)  # sources near the targets
    valid = torch.ones(2, 12, 12, dtype=torch.bool)
    valid[1, 0, :4] = False  # invalid target tokens must never be predicted
    t = xyz[1].reshape(-1, 3)
    d = torch.cdist(xyz[0].reshape(-1, 3), t)
    d[:, valid[1].reshape(-1) == 0] = float("inf")
    nearest = d.argmin(1)
    src = torch.arange(144)
    h = _xyz_capture("x", xyz, valid, "hidden")
    mh = match_tokens(h.feats, h.feats, torch.tensor([[0, 1]]), [src], [nearest], cosine=True)
    a = _xyz_capture("x", xyz, valid, "attention")
    ma = match_tokens(a.query, a.key, torch.tensor([[0, 1]]), [src], [nearest], cosine=False)
    assert (ma.pred == nearest).all()  # exact by construction
    assert (mh.pred == nearest).double().mean() >= 0.99
    assert not torch.isin(mh.pred, torch.arange(4)).any() and not torch.isin(ma.pred, torch.arange(4)).any()


def test_attention_scale_from_adapter_or_config():
    from types import SimpleNamespace as NS

    from gaspprobe.errors import ModelError
    from gaspprobe.probing.run import attention_scale

    assert attention_scale(NS(attention_scale=0.25)) == 0.25
    cfg = NS(text_config=NS(num_attention_heads=4, hidden_size=128, head_dim=None))
    assert attention_scale(NS(model=NS(config=cfg))) == pytest.approx(1 / (4 * math.sqrt(32)))
    cfg = NS(num_attention_heads=8, hidden_size=256, head_dim=64)  # explicit head_dim wins
    assert attention_scale(NS(model=NS(config=cfg))) == pytest.approx(1 / (8 * 8))
    with pytest.raises(ModelError, match="cannot tell the attention scale"):
        attention_scale(NS(model=NS(config=NS()), model_id="m"))


def test_a_folder_named_like_a_recipe_does_not_shadow_it(tmp_path, monkeypatch):
    """Regression: `gaspprobe loop --preset paper --out paper` made ./paper a folder, and the
    recipe name 'paper' was then read as that path ("paper: file not found")."""
    from gaspprobe.probing.recipe import load_recipe

    (tmp_path / "paper").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_recipe("paper").headline_r == 2
