"""Speed of the probe's own work, measured (not a test).

1. ``overhead``: on each tiny model family, the probe's own work per scene (ground truth:
   ``patch_matches_many`` for all sampled pairs + ``patch_depth``; NN matching of every layer; the
   depth probe's ridge statistics) as a fraction of the model's forward time for the same clip
   (target <= 0.10). Forward time = consuming ``adapter.capture`` with no work per layer (hidden
   and attention mode separately); probe work is timed on the captured features with the same
   functions the runner calls. Median of repeats after a warm-up, one torch thread.
2. ``wide``: a 7B-width matching step: D = 3584, 8 frames x 256 tokens (16x16), 28 layers, the
   default recipe's pairs for an 8-frame clip (gaps 1, 2, 4; 4 pairs each, both directions), with
   ~60% of the source tokens visible; matching per layer and per scene (x 28 layers), and the
   depth probe's statistics update per layer (float32 products for D > 1024).

Run: ``python benchmarks/perf/probe.py [--quick]``; ``run(quick=False) -> dict``.
"""

from __future__ import annotations

import statistics
import sys
import time


def _median(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def overhead(arch: str, *, frames: int = 8, size: int = 448, repeats: int = 3, scene=None) -> dict:
    """Probe work / forward time on the tiny ``arch`` model for one ``frames``-frame clip."""
    import torch

    from gaspprobe.models.testing import tiny_adapter
    from gaspprobe.probing.depth import RidgeStats, valid_tokens
    from gaspprobe.probing.match import match_tokens
    from gaspprobe.probing.recipe import Recipe
    from gaspprobe.probing.run import attention_scale
    from gaspprobe.probing.temporal import sample_pairs
    from gaspprobe.scenes import generate_scene, patch_depth, patch_matches_many

    ad = tiny_adapter(arch)
    sc = scene if scene is not None else generate_scene(0, frames=frames, size=size)
    rcp = Recipe(frames_per_clip=frames)
    F = sc.num_frames
    grid = ad.token_grid(sc.size, F)
    pairs = sample_pairs(F, rcp.gaps, rcp.pairs_per_gap, seed=0)
    pt = torch.tensor([[i, j] for i, j, _ in pairs])

    def forward(mode):
        for cap in ad.capture(sc.rgb, mode=mode):
            del cap

    t_fwd = {m: _median(lambda m=m: forward(m), repeats) for m in ("hidden", "attention")}

    def gt():
        ms = patch_matches_many(sc, pt, grid, depth_tol=rcp.depth_tol)
        return ms, patch_depth(sc, grid)

    t_gt = _median(gt, repeats)
    ms, depth = gt()
    src, tgt = [m.src for m in ms], [m.tgt for m in ms]
    hid = [c.feats.float() for c in ad.capture(sc.rgb, mode="hidden")]
    att = [(c.query.float(), c.key.float()) for c in ad.capture(sc.rgb, mode="attention") if c.query is not None]
    scale = attention_scale(ad)

    def match_hidden():
        stats = {}
        for li, f in enumerate(hid):
            match_tokens(f, f, pt, src, tgt, cosine=True, temperature=rcp.conf_temperature)
            x, d = valid_tokens(f, depth)
            stats.setdefault(li, RidgeStats(x.shape[-1])).update(x, torch.log(d))

    def match_att():
        for q, k in att:
            match_tokens(q, k, pt, src, tgt, cosine=False, logit_scale=scale)

    t_mh = _median(match_hidden, repeats)
    t_ma = _median(match_att, repeats)
    n_matches = sum(int(s.numel()) for s in src)
    return {
        "arch": arch, "frames": F, "tokens_per_frame": grid.tokens_per_frame, "layers": len(hid),
        "pairs": len(pairs), "matches": n_matches,
        "forward_hidden_s": t_fwd["hidden"], "forward_attention_s": t_fwd["attention"],
        "gt_s": t_gt, "match_depth_hidden_s": t_mh, "match_attention_s": t_ma,
        # the runner computes GT once per scene and shares it between the modes
        "overhead_hidden": (t_gt + t_mh) / t_fwd["hidden"],
        "overhead_attention": t_ma / t_fwd["attention"],
        "overhead_both": (t_gt + t_mh + t_ma) / (t_fwd["hidden"] + t_fwd["attention"]),
    }


def wide(*, D: int = 3584, frames: int = 8, rows: int = 16, cols: int = 16, layers: int = 28,
         repeats: int = 3, device: str = "cpu") -> dict:
    """A 7B-width matching step, timed per layer and per scene (x ``layers``) on ``device``."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    from gaspprobe.probing.depth import RidgeStats
    from gaspprobe.probing.match import match_tokens
    from gaspprobe.probing.temporal import sample_pairs

    g = torch.Generator().manual_seed(0)
    T = rows * cols
    feats = torch.randn(frames, rows, cols, D, generator=g).to(device)
    pairs = sample_pairs(frames, [1, 2, 4, 8, 16, 24], 4, seed=0)
    pt = torch.tensor([[i, j] for i, j, _ in pairs])
    src = [torch.nonzero(torch.rand(T, generator=g) < 0.6).squeeze(1) for _ in pairs]
    tgt = [torch.randint(0, T, (s.numel(),), generator=g) for s in src]
    y = (torch.rand(frames * T, generator=g) + 1.0).to(device)

    def m():
        match_tokens(feats, feats, pt, src, tgt, cosine=True)
        sync()

    st = RidgeStats(D)

    def r():
        st.update(feats.reshape(-1, D), y)
        sync()

    t_match = _median(m, repeats)
    t_ridge = _median(r, max(1, repeats - 1))
    return {
        "device": device, "D": D, "frames": frames, "tokens_per_frame": T, "pairs": len(pairs),
        "matches": sum(int(s.numel()) for s in src), "layers": layers,
        "match_per_layer_s": t_match, "match_per_scene_s": t_match * layers,
        "depth_stats_per_layer_s": t_ridge, "depth_stats_per_scene_s": t_ridge * layers,
    }


def run(quick: bool = False) -> dict:
    """All figures: ``{"overhead": {arch: {...}}, "wide": {...}}`` (seconds and ratios)."""
    import torch

    torch.set_num_threads(1)
    from gaspprobe.models.registry import supported

    reps = 2 if quick else 5
    archs = supported()
    if quick:
        archs = [a for a in archs if a == "qwen2_5_vl"] or archs[:1]
    out = {"overhead": {}, "wide": None, "threads": torch.get_num_threads()}
    for a in archs:
        try:
            out["overhead"][a] = overhead(a, repeats=reps)
        except Exception as e:  # a family whose tiny build is unavailable here: say so, don't hide it
            out["overhead"][a] = {"error": f"{type(e).__name__}: {e}"}
    out["wide"] = wide(repeats=2 if quick else 3, layers=28)
    if torch.cuda.is_available():
        out["wide_cuda"] = wide(repeats=5, layers=28, device="cuda")
    return out


def _print(res: dict) -> None:
    print(f"probe overhead on tiny models (threads={res['threads']}); target <= 0.10 of forward time")
    for a, r in res["overhead"].items():
        if "error" in r:
            print(f"  {a:16s} unavailable: {r['error']}")
            continue
        print(f"  {a:16s} F={r['frames']} T={r['tokens_per_frame']} L={r['layers']} pairs={r['pairs']} "
              f"matches={r['matches']} | fwd hidden {r['forward_hidden_s'] * 1e3:.1f} ms, attention "
              f"{r['forward_attention_s'] * 1e3:.1f} ms | GT {r['gt_s'] * 1e3:.1f} ms, match+depth "
              f"{r['match_depth_hidden_s'] * 1e3:.1f} ms, match att {r['match_attention_s'] * 1e3:.1f} ms | "
              f"ratio hidden {r['overhead_hidden']:.3f}, attention {r['overhead_attention']:.3f}, "
              f"both {r['overhead_both']:.3f}")
    for w in [res["wide"]] + ([res["wide_cuda"]] if "wide_cuda" in res else []):
        _print_wide(w)


def _print_wide(w: dict) -> None:
    print(f"7B-width step on {w['device']}: D={w['D']}, {w['frames']} frames x {w['tokens_per_frame']} tokens, {w['pairs']} pairs, "
          f"{w['matches']} matches: matching {w['match_per_layer_s'] * 1e3:.1f} ms/layer = "
          f"{w['match_per_scene_s']:.2f} s/scene ({w['layers']} layers); depth stats "
          f"{w['depth_stats_per_layer_s'] * 1e3:.0f} ms/layer = {w['depth_stats_per_scene_s']:.1f} s/scene")


if __name__ == "__main__":
    _print(run(quick="--quick" in sys.argv))
