"""Speed and memory of the probe, measured (not a test).

    python benchmarks/perf/probe.py [--quick] [--device cuda]

``run(quick=False, device="cpu") -> dict`` (used by ``gaspprobe perf``). One 8-frame 448x448
rendered room per tiny model family, the default recipe's pairs for that clip (gaps 1, 2, 4; 4
pairs each, both directions: 24 pairs). Median of repeats after a warm-up, one torch thread on CPU.

Top-level figures (worst family):

* ``own_work_fraction``: the probe's own work with the default recipe (ground truth:
  ``patch_matches_many`` + ``patch_depth``, computed once per scene; NN matching of every layer in
  both modes; the depth probe's ridge statistics) / the two forward passes it rides on (consuming
  ``adapter.capture`` in hidden and in attention mode, no work per layer). Target <= 0.10.
* ``overhead_ratio``: wall time of ``probe()`` on the scene (hidden mode, no depth probe) / the bare
  forward it needs (``prepare_capture`` + ``model(**inputs, use_cache=False, logits_to_keep=1)``).
* ``naive_speed_ratio``: a naive probe (``output_hidden_states=True``, all layers held, then a
  Python loop over layers and pairs, each a cosine NN by matrix product; same GT) / ``probe()``
  with the same work (hidden mode, no depth).
* ``naive_memory_ratio``: feature memory the naive probe holds (every layer's hidden states of the
  whole sequence) / what the probe holds at once (one layer's image-token features + its largest
  similarity block). On CUDA also the measured ``torch.cuda.max_memory_allocated`` above the
  weights (``naive_peak_extra_bytes``, ``probe_peak_extra_bytes``); on CPU there is no reliable
  per-tensor peak, so the ratio is computed from the tensors' sizes.

``layer`` (:func:`layer_ratio`): the probe's own work per layer / one Qwen2.5-VL-7B-shaped
decoder layer's forward on 16 frames x 16x16 tokens (target < 0.10): ``own_work_per_layer_fraction``.

``wide`` (and ``wide_cuda`` when a GPU is there): a 7B-width matching step, D = 3584, 8 frames x
256 tokens (16x16), 24 pairs, ~60% of source tokens visible: matching and depth statistics per
layer and per scene (x 28 layers).
"""

from __future__ import annotations

import sys


def _median(fn, repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    from gaspprobe.perf import median_seconds

    return median_seconds(fn, repeats, warmup=warmup, device=device)


def _bare(ad, inputs):
    import torch

    with torch.inference_mode():
        try:
            return ad.model(**inputs, use_cache=False, logits_to_keep=1)
        except TypeError:  # a family without logits_to_keep
            return ad.model(**inputs, use_cache=False)


def overhead(arch: str, *, frames: int = 8, size: int = 448, repeats: int = 3, scene=None,
             device: str = "cpu") -> dict:
    """All per-family figures for one ``frames``-frame clip on the tiny ``arch`` model."""
    import torch

    from gaspprobe.models import load
    from gaspprobe.models.testing import tiny_adapter, tiny_model_dir
    from gaspprobe.probing.depth import RidgeStats, valid_tokens
    from gaspprobe.probing.match import match_tokens
    from gaspprobe.probing.recipe import Recipe
    from gaspprobe.probing.run import attention_scale, probe
    from gaspprobe.probing.temporal import sample_pairs
    from gaspprobe.scenes import generate_scene, patch_depth, patch_matches_many

    ad = tiny_adapter(arch) if device == "cpu" else load(tiny_model_dir(arch), device=device, dtype="float32")
    sc = scene if scene is not None else generate_scene(0, frames=frames, size=size)
    rcp = Recipe(frames_per_clip=frames)
    F = sc.num_frames
    grid = ad.token_grid(sc.size, F)
    pairs = sample_pairs(F, rcp.gaps, rcp.pairs_per_gap, seed=0)
    pt = torch.tensor([[i, j] for i, j, _ in pairs])
    med = lambda fn, r=repeats: _median(fn, r, device=device)  # noqa: E731

    def forward(mode):
        for cap in ad.capture(sc.rgb, mode=mode):
            del cap

    t_fwd = {m: med(lambda m=m: forward(m)) for m in ("hidden", "attention")}

    def gt():
        return (patch_matches_many(sc, pt, grid, depth_tol=rcp.depth_tol, patch_depths=False),
                patch_depth(sc, grid))

    t_gt = med(gt)
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

    t_mh = med(match_hidden)
    t_ma = med(match_att)

    # end to end: probe() vs the bare forward it needs, and vs a naive probe
    light = Recipe(frames_per_clip=frames, modes=["hidden"], depth_probe=False)
    prepared = ad.prepare_capture(sc.rgb)
    inputs, pgrid, idx = prepared
    t_bare = med(lambda: _bare(ad, ad.prepare_capture(sc.rgb)[0]))
    t_probe = med(lambda: probe(ad, [sc], light), max(2, repeats - 1))

    def naive():
        ms_, _ = gt()
        inp = ad.prepare_capture(sc.rgb)[0]
        with torch.inference_mode():
            try:
                out = ad.model(**inp, use_cache=False, logits_to_keep=1, output_hidden_states=True)
            except TypeError:
                out = ad.model(**inp, use_cache=False, output_hidden_states=True)
        hs = out.hidden_states
        pos = idx[0].to(hs[0].device)
        held = sum(h.numel() * h.element_size() for h in hs)
        for h in hs:  # every layer, every pair, one at a time
            f = torch.nn.functional.normalize(h[0, pos].float(), dim=-1).reshape(F, -1, h.shape[-1])
            for (i, j), m in zip(pt.tolist(), ms_):
                (f[i][m.src.to(f.device)] @ f[j].T).argmax(1).cpu()
        return held

    t_naive = med(naive, max(2, repeats - 1))
    naive_held = naive()
    D = hid[0].shape[-1]
    T = grid.tokens_per_frame
    m_max = max(int(torch.bincount(pt[:, 1].repeat_interleave(torch.tensor([len(s) for s in src])),
                                   minlength=F).max()), 1)
    probe_held = F * T * D * 4 + F * m_max * T * 4
    out = {
        "arch": arch, "frames": F, "tokens_per_frame": T, "layers": len(hid), "pairs": len(pairs),
        "matches": sum(int(s.numel()) for s in src),
        "forward_hidden_s": t_fwd["hidden"], "forward_attention_s": t_fwd["attention"],
        "gt_s": t_gt, "match_depth_hidden_s": t_mh, "match_attention_s": t_ma,
        # the runner computes GT once per scene and shares it between the modes
        "own_work_fraction": (t_gt + t_mh + t_ma) / (t_fwd["hidden"] + t_fwd["attention"]),
        "own_work_fraction_without_gt": (t_mh + t_ma) / (t_fwd["hidden"] + t_fwd["attention"]),
        "bare_forward_s": t_bare, "probe_s": t_probe, "overhead_ratio": t_probe / t_bare,
        "naive_s": t_naive, "naive_speed_ratio": t_naive / t_probe,
        "naive_held_bytes": naive_held, "probe_held_bytes": probe_held,
        "naive_memory_ratio": naive_held / probe_held,
    }
    if device.startswith("cuda"):
        def peak(fn) -> int:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - base

        pn, pp = peak(naive), peak(lambda: probe(ad, [sc], light))
        out.update(naive_peak_extra_bytes=pn, probe_peak_extra_bytes=pp, naive_memory_ratio=pn / max(pp, 1))
    return out


def wide(*, D: int = 3584, frames: int = 8, rows: int = 16, cols: int = 16, layers: int = 28,
         repeats: int = 3, device: str = "cpu") -> dict:
    """A 7B-width matching step, timed per layer and per scene (x ``layers``) on ``device``."""
    import torch

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
    st = RidgeStats(D)
    t_match = _median(lambda: match_tokens(feats, feats, pt, src, tgt, cosine=True), repeats, device=device)
    t_ridge = _median(lambda: st.update(feats.reshape(-1, D), y), max(1, repeats - 1), device=device)
    return {
        "device": device, "D": D, "frames": frames, "tokens_per_frame": T, "pairs": len(pairs),
        "matches": sum(int(s.numel()) for s in src), "layers": layers,
        "match_per_layer_s": t_match, "match_per_scene_s": t_match * layers,
        "depth_stats_per_layer_s": t_ridge, "depth_stats_per_scene_s": t_ridge * layers,
    }


def layer_ratio(*, D: int = 3584, inter: int = 18944, heads: int = 28, kv_heads: int = 4, frames: int = 16,
                rows: int = 16, cols: int = 16, layers: int = 28, repeats: int = 1, device: str = "cpu") -> dict:
    """The probe's own work per layer / one 7B decoder layer's forward, at a realistic width.

    One Qwen2 decoder layer with Qwen2.5-VL-7B's shapes (D = 3584, MLP 18944, 28 heads, 4 KV heads;
    random weights, float32) runs on ``frames`` x ``rows`` x ``cols`` image tokens; the probe's work
    per layer is what the runner does when that layer's capture arrives: the NN matching of every
    GT match of the default recipe's pairs (gaps 1, 2, 4, 8 on a 16-frame clip, 4 pairs each, both
    directions, ~60% of tokens visible) and the depth probe's ridge update, plus the scene's ground
    truth (computed once per scene) divided over ``layers`` layers."""
    import torch
    from transformers import Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding

    from gaspprobe.probing.depth import RidgeStats
    from gaspprobe.probing.match import match_tokens
    from gaspprobe.probing.temporal import sample_pairs
    from gaspprobe.scenes import generate_scene, patch_matches_many
    from gaspprobe.models.adapter import TokenGrid

    cfg = Qwen2Config(hidden_size=D, intermediate_size=inter, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, num_hidden_layers=1)
    cfg._attn_implementation = "sdpa"
    layer = Qwen2DecoderLayer(cfg, 0).to(device).eval()
    rope = Qwen2RotaryEmbedding(cfg).to(device)
    N = frames * rows * cols
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, N, D, generator=g).to(device)
    pos = torch.arange(N, device=device)[None]
    pe = rope(x, pos)

    def fwd():
        with torch.inference_mode():
            layer(x, position_embeddings=pe, attention_mask=None, position_ids=pos)

    t_layer = _median(fwd, repeats, warmup=0 if device == "cpu" else 1, device=device)
    T = rows * cols
    feats = torch.randn(frames, rows, cols, D, generator=g).to(device)
    pairs = sample_pairs(frames, [1, 2, 4, 8, 16, 24], 4, seed=0)
    pt = torch.tensor([[i, j] for i, j, _ in pairs])
    src = [torch.nonzero(torch.rand(T, generator=g) < 0.6).squeeze(1) for _ in pairs]
    tgt = [torch.randint(0, T, (s.numel(),), generator=g) for s in src]
    y = (torch.rand(frames * T, generator=g) + 1.0).to(device)
    st = RidgeStats(D)
    t_match = _median(lambda: match_tokens(feats, feats, pt, src, tgt, cosine=True), 3, device=device)
    t_ridge = _median(lambda: st.update(feats.reshape(-1, D), y), 2, device=device)
    sc = generate_scene(0, frames=frames, size=448)
    grid = TokenGrid.regular(frames, rows, cols, sc.size)
    t_gt = _median(lambda: patch_matches_many(sc, pt, grid, patch_depths=False), 3)
    own = t_match + t_ridge + t_gt / layers
    return {"device": device, "D": D, "tokens": N, "pairs": len(pairs), "matches": sum(int(s.numel()) for s in src),
            "layer_forward_s": t_layer, "match_per_layer_s": t_match, "depth_stats_per_layer_s": t_ridge,
            "gt_per_scene_s": t_gt, "own_work_per_layer_s": own,
            "own_work_per_layer_fraction": own / t_layer,
            "match_only_fraction": t_match / t_layer}


def run(quick: bool = False, device: str = "cpu") -> dict:
    """All figures: worst-family ratios at the top, ``families`` {arch: {...}}, ``wide``."""
    import torch

    torch.set_num_threads(1)
    from gaspprobe.models.registry import supported

    reps = 2 if quick else 5
    archs = supported()
    if quick:
        archs = [a for a in archs if a == "qwen2_5_vl"] or archs[:1]
    fams: dict = {}
    for a in archs:
        try:
            fams[a] = overhead(a, repeats=reps, device=device)
        except Exception as e:  # a family whose tiny build is unavailable here: say so, don't hide it
            fams[a] = {"error": f"{type(e).__name__}: {e}"}
    ok = [f for f in fams.values() if "error" not in f]
    out: dict = {"threads": torch.get_num_threads(), "device": device}
    if ok:
        out["own_work_fraction"] = max(f["own_work_fraction"] for f in ok)
        out["own_work_fraction_without_gt"] = max(f["own_work_fraction_without_gt"] for f in ok)
        out["overhead_ratio"] = max(f["overhead_ratio"] for f in ok)
        out["naive_speed_ratio"] = min(f["naive_speed_ratio"] for f in ok)
        out["naive_memory_ratio"] = min(f["naive_memory_ratio"] for f in ok)
    out["families"] = fams
    out["wide"] = wide(repeats=2 if quick else 3, layers=28)
    out["layer"] = layer_ratio(frames=4 if quick else 16, device=device)
    out["own_work_per_layer_fraction"] = out["layer"]["own_work_per_layer_fraction"]
    if torch.cuda.is_available():
        out["wide_cuda"] = wide(repeats=5, layers=28, device="cuda")
    return out


def _print_wide(w: dict) -> None:
    print(f"7B-width step on {w['device']}: D={w['D']}, {w['frames']} frames x {w['tokens_per_frame']} tokens, "
          f"{w['pairs']} pairs, {w['matches']} matches: matching {w['match_per_layer_s'] * 1e3:.1f} ms/layer = "
          f"{w['match_per_scene_s']:.2f} s/scene ({w['layers']} layers); depth stats "
          f"{w['depth_stats_per_layer_s'] * 1e3:.0f} ms/layer = {w['depth_stats_per_scene_s']:.1f} s/scene")


def _print(res: dict) -> None:
    print(f"probe on tiny models (device={res['device']}, threads={res['threads']})")
    for a, r in res["families"].items():
        if "error" in r:
            print(f"  {a:16s} unavailable: {r['error']}")
            continue
        print(f"  {a:16s} F={r['frames']} T={r['tokens_per_frame']} L={r['layers']} pairs={r['pairs']} "
              f"matches={r['matches']} | fwd hidden {r['forward_hidden_s'] * 1e3:.1f} ms, attention "
              f"{r['forward_attention_s'] * 1e3:.1f} ms | GT {r['gt_s'] * 1e3:.1f} ms, match+depth "
              f"{r['match_depth_hidden_s'] * 1e3:.1f} ms, match att {r['match_attention_s'] * 1e3:.1f} ms | "
              f"own work {r['own_work_fraction']:.3f} ({r['own_work_fraction_without_gt']:.3f} without GT) | "
              f"probe/bare {r['overhead_ratio']:.2f} | naive/probe time {r['naive_speed_ratio']:.2f}, "
              f"memory {r['naive_memory_ratio']:.1f}")
    for k in ("own_work_fraction", "own_work_fraction_without_gt", "overhead_ratio", "naive_speed_ratio",
              "naive_memory_ratio"):
        if k in res:
            print(f"  worst family {k}: {res[k]:.3f}")
    for k in ("wide", "wide_cuda"):
        if k in res:
            _print_wide(res[k])
    if "layer" in res:
        w = res["layer"]
        print(f"7B layer ({w['device']}, {w['tokens']} image tokens): forward {w['layer_forward_s']:.2f} s; probe per "
              f"layer: matching {w['match_per_layer_s'] * 1e3:.0f} ms ({w['pairs']} pairs, {w['matches']} matches), "
              f"depth stats {w['depth_stats_per_layer_s'] * 1e3:.0f} ms, GT {w['gt_per_scene_s'] * 1e3:.0f} ms/scene "
              f"-> own work {w['own_work_per_layer_fraction']:.3f} of the layer's forward "
              f"(matching alone {w['match_only_fraction']:.3f})")


if __name__ == "__main__":
    if "--layer" in sys.argv:  # only the 7B-layer ratio
        import torch

        torch.set_num_threads(1)
        _print({"families": {}, "device": "cpu", "threads": 1,
                "layer": layer_ratio(frames=4 if "--quick" in sys.argv else 16)})
        sys.exit(0)
    dev = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    _print(run(quick="--quick" in sys.argv, device=dev))
