"""Token grids at REAL checkpoint settings against an independent expectation: gradient-coded frames.

Every registered family (``gaspprobe.models.registry.ADAPTERS``; new families are covered by
themselves) is built at its real checkpoint's processor and vision geometry
(:func:`gaspprobe.models.testing.real_adapter`: tiny widths, real sizes, pinpoints, tiles, patch,
merge and shuffle factors). Frames are gradient-coded: red = the pixel's x, green = its y, blue
marks the frame (255 / 200; padding added by a processor has another blue). The expectation comes
from the MODEL, not from the adapter's arithmetic:

* the vision tower's self-attention is replaced by an attention function that returns zeros (a
  registered ``AttentionInterface``), so no token mixes with another: each LLM image token then
  depends only on the processed pixels it really came from (its patches, merged, pixel-shuffled,
  pooled or interpolated by the model's own code);
* the gradient of one image token's LLM input (the ``vision`` capture) with respect to
  ``pixel_values`` gives those pixels (its support);
* the mean red/green over the support, decoded back through the processor's normalisation, is where
  in the ORIGINAL frame the token's pixels came from.

The adapter's box (from ``grid.boxes`` / ``seq_index``, and the extra views with their own boxes:
OneVision's base view, Idefics3's global view) must have its centre within 0.10 token of that.
Tokens whose support touches padding are skipped (their pixels encode no frame position).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaspprobe.models.base import _StopForward
from gaspprobe.models.testing import real_adapter, real_settings

pytestmark = pytest.mark.slow

SIZES = [(448, 448), (480, 640), (968, 1296), (800, 450)]  # (H, W); the last one portrait
TOL = 0.10  # in tokens
_FRAME_BLUE = (255, 200, 160)
_NOATTN = "gaspprobe_test_noattn"


def coded_frames(F: int, H: int, W: int) -> np.ndarray:
    """uint8 [F,H,W,3]: red = round(255 (x+0.5)/W), green = the same for y, blue = frame code."""
    x = np.round(255 * (np.arange(W) + 0.5) / W)
    y = np.round(255 * (np.arange(H) + 0.5) / H)
    out = np.empty((F, H, W, 3), np.uint8)
    out[..., 0] = x[None, None, :]
    out[..., 1] = y[None, :, None]
    for f in range(F):
        out[f, ..., 2] = _FRAME_BLUE[f]
    return out


def _register_noattn() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def noattn(module, query, key, value, attention_mask, **kwargs):
        # [B, H, S, dh] in, [B, S, H, dh] out: attention contributes nothing, so tokens never mix
        return query.transpose(1, 2).mul(0), None

    AttentionInterface.register(_NOATTN, noattn)
    AttentionMaskInterface.register(_NOATTN, sdpa_mask)


def _vision_config(model):
    cfg = model.config
    return getattr(cfg, "vision_config", None)


def _channels(pv: torch.Tensor, n_ch: int = 3) -> torch.Tensor:
    """[..., C, h, w] or flattened patches [N, C*T*p*p] -> [C, M] (channel first, everything else flat)."""
    if pv.ndim == 2:  # Qwen / GLM: each row is one patch, (C, T, p, p) flattened
        return pv.reshape(pv.shape[0], n_ch, -1).transpose(0, 1).reshape(n_ch, -1)
    return pv.movedim(-3, 0).reshape(n_ch, -1)


def token_sources(ad, inputs, positions: list[tuple[int, int]], seed: int = 0, *,
                  video: bool = False) -> dict:
    """{(row, seq pos): (frames, x, y, extent)} decoded from the pixels each token came from
    (``frames``: the frame codes in its support, a sorted tuple; None when its support touches
    padding). ``video``: the tokens of the video path (its pixels: ``pixel_values_videos``, or
    ``pixel_values`` where the processor merges them, as InternVL's does)."""
    key = "pixel_values_videos" if video and "pixel_values_videos" in inputs else "pixel_values"
    model = ad.model
    vc = _vision_config(model)
    old = vc._attn_implementation
    _register_noattn()
    vc._attn_implementation = _NOATTN
    pv = inputs[key].detach().clone().float().requires_grad_(True)
    run = dict(inputs)
    run[key] = pv
    ids = inputs["input_ids"]
    tid = ad.video_seq_token_id if video else ad.image_token_id
    idx = torch.stack([(ids[b] == tid).nonzero().squeeze(-1) for b in range(ids.shape[0])])
    got = {}

    def emit(name, a, b):
        got[name] = a

    undo = ad._install(model, ["vision"], "hidden", idx, emit)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:  # gradients to the pixels only: no weight gradients to compute
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            try:
                model(**run, use_cache=False)
            except _StopForward:
                pass
    finally:
        undo()
        vc._attn_implementation = old
        for p in trainable:
            p.requires_grad_(True)
    h = got["vision"]  # [B, N, D]
    ip = ad.processor.video_processor if video else ad.processor.image_processor
    mean = torch.tensor(getattr(ip, "image_mean", None) or [0.0] * 3)
    std = torch.tensor(getattr(ip, "image_std", None) or [1.0] * 3)
    if not getattr(ip, "do_normalize", True):
        mean, std = torch.zeros(3), torch.ones(3)
    rgb = (_channels(pv.detach()) * std[:, None] + mean[:, None]) * 255  # [3, M], 0..255
    H, W = ad.last_grid_frame_size
    w = torch.randn(h.shape[-1], generator=torch.Generator().manual_seed(seed))
    out = {}
    grads = _token_grads(h, pv, idx, positions, w)
    for (b, pos), g in zip(positions, grads):
        sup = _channels(g).abs().sum(0) > 0
        vals = rgb[:, sup]
        assert 0 < vals.shape[1] < 0.5 * rgb.shape[1], f"token {pos}: support of {vals.shape[1]} px: tokens mix"
        blue = vals[2]
        near = torch.stack([(blue - code).abs() < 3 for code in _FRAME_BLUE])  # [codes, M]
        frame = tuple(f for f in range(len(_FRAME_BLUE)) if near[f].any()) if near.any(0).all() else None
        if frame is None:  # padding (or the blur of a frame/padding border) in its pixels
            out[(b, pos)] = None
            continue
        # red = 255 (i+0.5)/W, and i+0.5 is pixel i's centre in edge coordinates
        xs, ys = vals[0] * W / 255, vals[1] * H / 255
        out[(b, pos)] = (frame, xs.mean().item(), ys.mean().item(),
                         (xs.min().item(), ys.min().item(), xs.max().item(), ys.max().item()))
    return out


def _token_grads(h, pv, idx, positions, w, chunk: int = 8):
    """d(h[b, n] . w)/d pixel_values for each (row b, sequence position) token, a few per backward
    (vmapped cotangents); one by one where an operation has no batching rule."""
    ns = [(b, int((idx[b] == pos).nonzero())) for b, pos in positions]
    out = []
    for i in range(0, len(ns), chunk):
        part = ns[i:i + chunk]
        go = torch.zeros((len(part), *h.shape), dtype=h.dtype)
        for j, (b, n) in enumerate(part):
            go[j, b, n] = w
        try:
            (g,) = torch.autograd.grad(h, pv, grad_outputs=go, retain_graph=True, is_grads_batched=True)
            out += list(g)
        except RuntimeError:  # pragma: no cover - an op without a batching rule
            for j in range(len(part)):
                out.append(torch.autograd.grad(h, pv, grad_outputs=go[j], retain_graph=True)[0])
    return out


def grid_views(grid) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(view name, boxes [F?, r, c, 4], seq_index [F, r, c]) of the grid and its extra views."""
    views = [("grid", grid.boxes, grid.seq_index)]
    for k, v in grid.extra.items():
        if isinstance(v, dict) and "boxes" in v and "seq_index" in v:
            views.append((k, v["boxes"], v["seq_index"]))
    return views


def check(ad, frames: np.ndarray, per_frame: bool, rs: np.random.RandomState) -> dict:
    F, H, W = frames.shape[:3]
    inputs, grid, _ = ad.prepare_capture(frames, per_frame=per_frame)
    ad.last_grid_frame_size = (H, W)
    picks = []  # (view, frame, box, (row, seq pos))
    for name, boxes, seq in grid_views(grid):
        seq = seq if seq.ndim == 3 else seq[None]
        Fv, R, C = seq.shape
        bx = boxes if boxes.ndim == 4 else boxes[None].expand(Fv, R, C, 4)
        # the far corner (where an even-split error is largest), the origin, then random tokens
        cells = {(Fv - 1, R - 1, C - 1), (0, 0, 0)} if name == "grid" else {(Fv - 1, R - 1, C - 1)}
        inside = ((bx[..., 0] >= 0) & (bx[..., 1] >= 0) & (bx[..., 2] <= W) & (bx[..., 3] <= H)).nonzero().tolist()
        want = len(cells) + (3 if name == "grid" else 1)
        while len(cells) < want and inside:  # random tokens among those away from padding
            cells.add(tuple(inside[int(rs.randint(len(inside)))]))
        for f, r, c in sorted(cells):
            row = f if per_frame else 0
            picks.append((name, f, bx[f, r, c], (row, int(seq[f, r, c]))))
    src = token_sources(ad, inputs, [p[3] for p in picks])
    worst, checked, blended = 0.0, 0, 0
    for name, f, box, key in picks:
        s = src[key]
        if s is None:
            continue
        frame, x, y, (sx0, sy0, sx1, sy1) = s
        assert frame == (f,), f"{name} token at {key}: its pixels are frame {frame}, the grid says {f}"
        x0, y0, x1, y1 = box.tolist()
        tw, th = x1 - x0, y1 - y0
        if (sx1 - sx0) > 1.25 * tw or (sy1 - sy0) > 1.25 * th:
            # a blend of cells (OneVision's bilinear shrink of a large canvas): the pixels' plain mean
            # is not the blend's centre; the box centre must lie between the cells it blends
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            assert sx0 <= cx <= sx1 and sy0 <= cy <= sy1, (name, key, (cx, cy), (sx0, sy0, sx1, sy1))
            blended += 1
            continue
        ex, ey = abs(x - (x0 + x1) / 2) / tw, abs(y - (y0 + y1) / 2) / th
        worst = max(worst, ex, ey)
        checked += 1
        assert ex <= TOL and ey <= TOL, (f"{name} token {key} frame {f}: pixels centred at ({x:.1f}, {y:.1f}), "
                                         f"box {[round(v, 1) for v in (x0, y0, x1, y1)]}: off by ({ex:.2f}, {ey:.2f}) token")
    assert checked + blended >= 3, f"only {checked} tokens away from padding"
    return {"worst": worst, "checked": checked, "blended": blended}


_XFAIL: dict = {}  # (arch, per_frame) -> pytest.mark.xfail kwargs, for a family failure reported to its owner


def _cases():
    for arch, ck in real_settings():
        for per_frame in (False, True):
            marks = [pytest.mark.xfail(**_XFAIL[(arch, per_frame)])] if (arch, per_frame) in _XFAIL else []
            yield pytest.param(arch, ck, per_frame, marks=marks,
                               id=f"{arch}-{ck or 'tiny'}-{'per_frame' if per_frame else 'all_frames'}")


@pytest.mark.parametrize("arch,checkpoint,per_frame", list(_cases()))
def test_grid_matches_decoded_pixels_at_real_settings(arch, checkpoint, per_frame):
    ad = real_adapter(arch, checkpoint)
    rs = np.random.RandomState(0)
    report = {}
    # per frame, each frame is a one-image sample: the single-image layout (OneVision's anyres) at
    # a landscape size and the large one (where OneVision shrinks); all four sizes all-frames
    for H, W in (SIZES[1:3] if per_frame else SIZES):
        report[(H, W)] = check(ad, coded_frames(2, H, W), per_frame, rs)
    print(arch, checkpoint, "per_frame" if per_frame else "all_frames", report)


def test_decoder_catches_an_even_split():
    """The expectation is sharp enough to see the bug it was written for: OneVision's 384-px view
    split into 27 even cells (instead of 27 patches of 14 px) is off by more than 0.10 token."""
    ad = real_adapter("llava_onevision")
    frames = coded_frames(2, 480, 640)
    inputs, grid, _ = ad.prepare_capture(frames)
    ad.last_grid_frame_size = (480, 640)
    M, off = 640, (640 - 480) // 2
    r = c = 26  # the last cell, where the drift is largest
    even = torch.tensor([c * M / 27, r * M / 27 - off, (c + 1) * M / 27, (r + 1) * M / 27 - off])
    src = token_sources(ad, inputs, [(0, int(grid.seq_index[0, 20, c]))])
    _, x, _, _ = next(iter(src.values()))  # a plain (kept) cell: multi-image views are never shrunk
    assert abs(x - (even[0] + even[2]) / 2) / (even[2] - even[0]) > TOL
    x0, _, x1, _ = grid.boxes[0, 20, c].tolist()
    assert abs(x - (x0 + x1) / 2) / (x1 - x0) <= TOL


# --------------------------------------------------------------------------- video path
def _video_cases():
    from gaspprobe.models.registry import ADAPTERS

    return [pytest.param(a, c, id=f"{a}-{c or 'tiny'}") for a, c in real_settings()
            if "video" in ADAPTERS.get(a).modalities()]


@pytest.mark.parametrize("arch,checkpoint", _video_cases())
def test_video_grid_matches_decoded_pixels_at_real_settings(arch, checkpoint):
    """Video input (the family's own video processor): every checked token's pixels come from the
    frames ``grid.extra["frames"]`` names for its temporal slice (Qwen: two frames per slice, an odd
    count repeating the last) and are centred within 0.10 token of its box, at the four sizes."""
    from gaspprobe.models.video import ensure_torchvision

    if not ensure_torchvision():
        pytest.skip("transformers' video processors need torchvision (gaspprobe.models.video)")
    ad = real_adapter(arch, checkpoint)
    rs = np.random.RandomState(1)
    for H, W in SIZES:
        frames = coded_frames(3, H, W)
        inputs, grid, _ = ad.prepare_capture(frames, modality="video")
        ad.last_grid_frame_size = (H, W)
        T, R, C = grid.shape
        covers = grid.extra["frames"]
        assert covers.shape[0] == T and int(covers.max()) == 2 and int(covers.min()) == 0
        cells = {(T - 1, R - 1, C - 1), (0, 0, 0)}
        while len(cells) < 6:
            cells.add((int(rs.randint(T)), int(rs.randint(R)), int(rs.randint(C))))
        picks = [(t, r, c, (0, int(grid.seq_index[t, r, c]))) for t, r, c in sorted(cells)]
        src = token_sources(ad, inputs, [p[3] for p in picks], video=True)
        checked = 0
        for t, r, c, key in picks:
            s = src[key]
            if s is None:
                continue
            frames_seen, x, y, (sx0, sy0, sx1, sy1) = s
            assert frames_seen == tuple(sorted(set(covers[t].tolist()))), (arch, (H, W), t, frames_seen)
            x0, y0, x1, y1 = grid.boxes[t, r, c].tolist()
            if grid.extra.get("pooling") == "bilinear":
                # a bilinear blend of two patches (OneVision): the pixels' plain mean is not the blend's
                # centre; the box centre must lie between the patches it blends, its size their step
                # (between the two patch centres: within a quarter of the two-patch extent of its middle)
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                okx = abs(cx - (sx0 + sx1) / 2) <= (sx1 - sx0) / 4 + 1.0
                oky = abs(cy - (sy0 + sy1) / 2) <= (sy1 - sy0) / 4 + 1.0
                assert okx and oky, (arch, (H, W), (t, r, c), (cx, cy), (sx0, sy0, sx1, sy1))
                checked += 1
                continue
            ex, ey = abs(x - (x0 + x1) / 2) / (x1 - x0), abs(y - (y0 + y1) / 2) / (y1 - y0)
            assert ex <= TOL and ey <= TOL, (arch, (H, W), (t, r, c), (x, y), (x0, y0, x1, y1))
            checked += 1
        assert checked >= 3, f"{arch} {(H, W)}: only {checked} tokens away from padding"
