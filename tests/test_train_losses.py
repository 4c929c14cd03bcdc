"""Unit tests for GASP heads, losses, configs and the clip plan (no models, no scenes)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as Fn

from gaspprobe.errors import ConfigError, DataError
from gaspprobe.training.config import TrainConfig, parse_layers
from gaspprobe.training.data import ClipPlan, regular_boxes, split_scenes
from gaspprobe.training.heads import CorrespondenceHead, HeadBank
from gaspprobe.training.losses import MatchSet, depth_consistency, gasp_loss, info_nce, resample


def _matchset(B=2, F=3, N=5, M=9, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pairs = [(b, i, j) for b in range(B) for i in range(F) for j in range(i + 1, F)]
    pb, pi, pj = (torch.tensor(x) for x in zip(*pairs))
    P = len(pairs)
    return MatchSet(pair_b=pb, pair_i=pi, pair_j=pj,
                    pair=torch.randint(P, (M,), generator=g), src=torch.randint(N, (M,), generator=g),
                    tgt=torch.randint(N, (M,), generator=g),
                    depth=(torch.rand(M, generator=g, dtype=dtype) * 3 + 0.5),
                    token_depth=torch.rand(B, F, N, generator=g, dtype=dtype) * 3 + 0.5, grid=(1, N))


def _emb(B=2, F=3, N=5, e=4, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return Fn.normalize(torch.randn(B, F, N, e, generator=g, dtype=dtype), dim=-1)


def _naive_info_nce(emb, m, tau):
    """Loop reference: per match, CE of the source row over frame j and of the target column."""
    tot = 0.0
    for k in range(m.num_matches):
        p = int(m.pair[k])
        b, i, j = int(m.pair_b[p]), int(m.pair_i[p]), int(m.pair_j[p])
        s, t = int(m.src[k]), int(m.tgt[k])
        row = torch.stack([emb[b, i, s] @ emb[b, j, q] for q in range(emb.shape[2])]) / tau
        col = torch.stack([emb[b, i, q] @ emb[b, j, t] for q in range(emb.shape[2])]) / tau
        lf = -(row[t] - torch.logsumexp(row, 0))
        lb = -(col[s] - torch.logsumexp(col, 0))
        tot = tot + 0.5 * (lf + lb)
    return tot / m.num_matches


def _naive_depth(emb, m, tau, eps=1e-6):
    tot = 0.0
    for k in range(m.num_matches):
        p = int(m.pair[k])
        b, i, j = int(m.pair_b[p]), int(m.pair_i[p]), int(m.pair_j[p])
        s = int(m.src[k])
        w = [math.exp(float(emb[b, i, s] @ emb[b, j, q]) / tau) for q in range(emb.shape[2])]
        d_hat = sum(wq * float(m.token_depth[b, j, q]) for q, wq in enumerate(w)) / sum(w)
        d = float(m.depth[k])
        tot += abs(d - d_hat) / (d + d_hat + eps)
    return tot / m.num_matches


def test_info_nce_matches_naive_loop():
    m, emb = _matchset(), _emb()
    loss, det = info_nce(emb, m, 0.1)
    assert loss.item() == pytest.approx(_naive_info_nce(emb, m, 0.1).item(), rel=1e-10)
    assert det["n"] == 9


def test_pair_weighting_is_mean_over_pairs_of_pair_means():
    m, emb = _matchset(M=15), _emb()
    loss, _ = info_nce(emb, m, 0.1, weighting="pair")
    per_pair = []
    for p in m.pair.unique().tolist():
        sel = (m.pair == p).nonzero().squeeze(1)
        sub = MatchSet(m.pair_b, m.pair_i, m.pair_j, m.pair[sel], m.src[sel], m.tgt[sel], m.depth[sel],
                       m.token_depth, m.grid)
        per_pair.append(_naive_info_nce(emb, sub, 0.1))
    assert loss.item() == pytest.approx(torch.stack(per_pair).mean().item(), rel=1e-10)
    dl, _ = depth_consistency(emb, m, 0.1, weighting="pair")
    ref = []
    for p in m.pair.unique().tolist():
        sel = (m.pair == p).nonzero().squeeze(1)
        sub = MatchSet(m.pair_b, m.pair_i, m.pair_j, m.pair[sel], m.src[sel], m.tgt[sel], m.depth[sel],
                       m.token_depth, m.grid)
        ref.append(_naive_depth(emb, sub, 0.1))
    assert dl.item() == pytest.approx(sum(ref) / len(ref), rel=1e-9)


def test_depth_matches_naive_loop_and_hand_case():
    m, emb = _matchset(), _emb()
    loss, _ = depth_consistency(emb, m, 0.2)
    assert loss.item() == pytest.approx(_naive_depth(emb, m, 0.2), rel=1e-9)
    # hand case: one pair, 2 tokens; source 0 is identical to target token 1 and orthogonal to 0
    emb = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]], dtype=torch.float64)
    m = MatchSet(pair_b=torch.tensor([0]), pair_i=torch.tensor([0]), pair_j=torch.tensor([1]),
                 pair=torch.tensor([0]), src=torch.tensor([0]), tgt=torch.tensor([1]),
                 depth=torch.tensor([2.0], dtype=torch.float64),
                 token_depth=torch.tensor([[[1.0, 1.0], [4.0, 2.0]]], dtype=torch.float64), grid=(1, 2))
    tau = 0.5
    p1 = math.exp(1 / tau) / (math.exp(1 / tau) + 1)        # weight on target token 1 (depth 2)
    d_hat = p1 * 2.0 + (1 - p1) * 4.0
    loss, _ = depth_consistency(emb, m, tau, eps=0.0)
    assert loss.item() == pytest.approx(abs(2.0 - d_hat) / (2.0 + d_hat), rel=1e-12)
    # invalid target depth is masked: with token 0 of frame j invalid, d_hat = depth of token 1 = 2
    m.token_depth[0, 1, 0] = 0.0
    loss, _ = depth_consistency(emb, m, tau, eps=0.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


def test_depth_loss_is_scale_invariant_so_non_metric_scenes_train_as_is():
    """Non-metric depth (COLMAP / MVS scale, CO3D) is metric up to one scale per scene: GT depth
    and token depths scale together, and the relative error |d - d_hat| / (d + d_hat) does not move."""
    import dataclasses

    m, emb = _matchset(), _emb()
    base, _ = depth_consistency(emb, m, 0.2, eps=0.0)
    for s in (0.01, 7.0, 1000.0):
        ms = dataclasses.replace(m, depth=m.depth * s, token_depth=m.token_depth * s)
        assert depth_consistency(emb, ms, 0.2, eps=0.0)[0].item() == pytest.approx(base.item(), rel=1e-12)
    # whereas a wrong relative scale between the two (a unit slip) changes it
    bad = dataclasses.replace(m, depth=m.depth * 1000.0)
    assert abs(depth_consistency(emb, bad, 0.2, eps=0.0)[0].item() - base.item()) > 0.1


def test_losses_gradcheck():
    m = _matchset(N=4, M=6)
    x = torch.randn(2, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    f = lambda x: info_nce(Fn.normalize(x, dim=-1), m, 0.3)[0]  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    g = lambda x: depth_consistency(Fn.normalize(x, dim=-1), m, 0.3)[0]  # noqa: E731
    assert torch.autograd.gradcheck(g, (x,))


def test_zero_matches_zero_loss_no_nan():
    m = _matchset(M=0)
    x = _emb().clone().requires_grad_(True)
    total, det = gasp_loss({"llm.0": x, "llm.1": x * 1}, {"token": m}, temperature=0.07)
    assert total.item() == 0.0 and det["n_matches"] == 0
    total.backward()
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()


def test_perfect_embeddings_give_high_accuracy_low_loss():
    # Frames are permutations of each other; embeddings are one-hot token identities.
    N, F = 6, 3
    perms = [torch.arange(N), torch.randperm(N), torch.randperm(N)]
    emb = torch.stack([torch.eye(N)[p] for p in perms])[None]           # token q of frame f = e_{perm_f[q]}
    pairs = [(0, 0, 1), (0, 0, 2), (0, 1, 2)]
    pb, pi, pj = (torch.tensor(x) for x in zip(*pairs))
    inv = [torch.argsort(p) for p in perms]
    src = torch.arange(N).repeat(3)
    pair = torch.arange(3).repeat_interleave(N)
    tgt = torch.cat([inv[j][perms[i][torch.arange(N)]] for _, i, j in pairs])
    m = MatchSet(pb, pi, pj, pair, src, tgt, torch.ones(3 * N), torch.ones(1, F, N), grid=(2, 3))
    loss, det = info_nce(emb, m, 0.05)
    assert det["acc"] == 1.0
    assert loss.item() < 1e-6
    wrong = MatchSet(pb, pi, pj, pair, src, (tgt + 1) % N, torch.ones(3 * N), torch.ones(1, F, N), grid=(2, 3))
    assert info_nce(emb, wrong, 0.05)[1]["acc"] == 0.0


def test_gasp_loss_details_and_layer_weights():
    m = _matchset()
    embs = {"llm.0": _emb(seed=1), "llm.1": _emb(seed=2)}
    l0 = info_nce(embs["llm.0"], m, 0.1)[0].item()
    l1 = info_nce(embs["llm.1"], m, 0.1)[0].item()
    d0 = depth_consistency(embs["llm.0"], m, 0.1)[0].item()
    d1 = depth_consistency(embs["llm.1"], m, 0.1)[0].item()
    total, det = gasp_loss(embs, {"token": m}, temperature=0.1, lambda_corr=1.0, lambda_depth=0.5,
                           layer_weights={"llm.0": 3.0})
    assert det["llm.0/corr"] == pytest.approx(l0) and det["llm.1/depth"] == pytest.approx(d1)
    assert det["corr"] == pytest.approx(0.75 * l0 + 0.25 * l1)
    assert total.item() == pytest.approx(0.75 * l0 + 0.25 * l1 + 0.5 * (0.75 * d0 + 0.25 * d1))
    assert {"llm.0/acc", "llm.1/acc", "loss", "depth"} <= set(det)


def test_resample_coarse_is_area_mean():
    emb = torch.randn(1, 1, 16, 3, dtype=torch.float64)                  # 4x4 grid
    out = resample(emb, (4, 4), (2, 2))
    ref = emb[0, 0].reshape(2, 2, 2, 2, 3).permute(0, 2, 1, 3, 4).reshape(4, 4, 3).mean(1)
    assert torch.allclose(out[0, 0], Fn.normalize(ref, dim=-1))
    assert resample(emb, (4, 4), (8, 8)).shape == (1, 1, 64, 3)


def test_svd_init_head_equals_projection_on_top_query_directions():
    torch.manual_seed(0)
    d, e = 16, 4
    wq = torch.randn(12, d)
    head = CorrespondenceHead(d, e)
    k = head.init_from_query(wq)
    assert k == 4
    U, S, Vh = torch.linalg.svd(wq, full_matrices=False)
    x = torch.randn(7, d)
    # independent expectation: U_k^T W_q x
    assert torch.allclose(head(x), x @ wq.T @ U[:, :e], atol=1e-5)
    # when rank < e the extra outputs are zero at init
    head = CorrespondenceHead(d, e)
    assert head.init_from_query(torch.randn(2, d)) == 2
    assert torch.allclose(head(x)[:, 2:], torch.zeros(7, 2), atol=1e-6)


def test_head_bank_save_load_roundtrip(tmp_path):
    bank = HeadBank(["llm.0", "llm.2"], 8, 3)
    bank.init("random", generator=torch.Generator().manual_seed(3))
    p = bank.save(tmp_path / "heads.safetensors", {"init": "random"})
    back = HeadBank.load(p)
    assert back.layers == ["llm.0", "llm.2"]
    for n in bank.layers:
        for a, b in zip(bank[n].parameters(), back[n].parameters()):
            assert torch.equal(a, b)
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.safetensors"):
        HeadBank.load(tmp_path / "bad.safetensors")


def test_config_validation_and_layer_specs():
    assert parse_layers("all", 3) == ["llm.0", "llm.1", "llm.2"]
    assert parse_layers("vision,llm.1-llm.2", 4) == ["vision", "llm.1", "llm.2"]
    assert parse_layers("llm.-1", 4) == ["llm.3"]
    with pytest.raises(ConfigError, match="layers"):
        parse_layers("llm.7", 4)
    with pytest.raises(ConfigError, match="frames_per_clip"):
        TrainConfig(frames_per_clip=1)
    with pytest.raises(ConfigError, match="caption_file"):
        TrainConfig(lambda_lm=1.0)
    from gaspprobe.config import from_dict

    with pytest.raises(ConfigError, match="temprature"):
        from_dict(TrainConfig, {"temprature": 0.1})


def test_clip_plan_deterministic_and_in_window():
    plan = ClipPlan([10, 20, 5], frames_per_clip=4, clip_window=3, clips_per_scene=5, seed=1)
    again = ClipPlan([10, 20, 5], frames_per_clip=4, clip_window=3, clips_per_scene=5, seed=1)
    clips = [plan.clip(p) for p in range(40)]                            # crosses an epoch (15)
    assert clips == [again.clip(p) for p in range(40)]
    assert clips[:15] != clips[15:30]                                    # re-drawn each epoch
    for c in clips:
        assert len(set(c.frames)) == 4 and list(c.frames) == sorted(c.frames)
        assert max(c.frames) - min(c.frames) <= 6
        assert max(c.frames) < [10, 20, 5][c.scene]
    # two processes split each global batch without overlap
    b0, b1 = plan.batch(2, 3, 0, 2), plan.batch(2, 3, 1, 2)
    assert b0 + b1 != [] and sorted(map(str, b0 + b1)) == sorted(map(str, [plan.clip(12 + q) for q in range(6)]))
    with pytest.raises(DataError, match="frames_per_clip"):
        ClipPlan([3], frames_per_clip=4, clip_window=3, clips_per_scene=1, seed=0)


def test_split_and_boxes():
    tr, va = split_scenes(list(range(10)), 0.2, seed=0)
    assert len(va) == 2 and sorted(tr + va) == list(range(10))
    assert split_scenes(list(range(10)), 0.2, seed=0) == (tr, va)
    assert split_scenes([1], 0.5, 0) == ([1], [])
    b = regular_boxes((0, 0, 4, 2), 1, 2)
    assert b.tolist() == [[0, 0, 2, 2], [2, 0, 4, 2]]


def test_example_config_file_equals_headline_config():
    import tomllib
    from pathlib import Path

    from gaspprobe.config import from_dict
    from gaspprobe.training.headline import HEADLINE_CONFIG

    p = Path(__file__).resolve().parents[1] / "docs" / "train_example.toml"
    data = tomllib.loads(p.read_text())
    assert data == HEADLINE_CONFIG
    from_dict(TrainConfig, data, where=p)                  # valid keys and types
